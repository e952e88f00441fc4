"""discovery.k8s.io/v1 EndpointSlice: a Service's endpoints, in slices of at most 1,000.

The API server's rules for slices written by hand (selectorless Services): one address type
per slice, one address per endpoint, addresses of that type, at most 1,000 endpoints and 100
ports.
"""

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource
from .core import Protocol

AddressType = Literal["IPv4", "IPv6", "FQDN"]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MAX_ENDPOINTS = 1000
MAX_PORTS = 100


class EndpointConditions(Model):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class SliceEndpoint(Model):
    addresses: list[str]
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    target_ref: dict[str, Any] | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: dict[str, Any] | None = None
    deprecated_topology: dict[str, str] | None = None

    _check_hostname = v.field_check("hostname", v.check_dns1123_label)

    @model_validator(mode="after")
    def _one_address(self) -> "SliceEndpoint":
        if len(self.addresses) != 1:
            raise ValueError(f"addresses: must hold exactly one address, got {len(self.addresses)}")
        return self


class SlicePort(Model):
    name: str | None = None
    protocol: Protocol | None = "TCP"
    port: int | None = None
    app_protocol: str | None = None

    _check_port = v.field_check("port", v.check_port_number)

    @model_validator(mode="after")
    def _name_rule(self) -> "SlicePort":
        if self.name:
            try:
                v.check_dns1123_label(self.name)
            except ValueError as exc:
                raise ValueError(f"name: {exc}") from None
        return self


class EndpointSlice(Resource):
    API_VERSION: ClassVar[str] = "discovery.k8s.io/v1"
    KIND: ClassVar[str] = "EndpointSlice"
    PLURAL: ClassVar[str] = "endpointslices"

    api_version: Literal["discovery.k8s.io/v1"] = "discovery.k8s.io/v1"
    kind: Literal["EndpointSlice"] = "EndpointSlice"
    address_type: AddressType
    endpoints: list[SliceEndpoint] = Field(default_factory=list)
    ports: list[SlicePort] | None = None

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)

    @model_validator(mode="after")
    def _slice_rules(self) -> "EndpointSlice":
        if len(self.endpoints) > MAX_ENDPOINTS:
            raise ValueError(f"endpoints: at most {MAX_ENDPOINTS} endpoints per slice, got {len(self.endpoints)}")
        if len(self.ports or ()) > MAX_PORTS:
            raise ValueError(f"ports: at most {MAX_PORTS} ports per slice, got {len(self.ports or ())}")
        for index, endpoint in enumerate(self.endpoints):
            problem = _address_problem(self.address_type, endpoint.addresses[0])
            if problem:
                raise ValueError(f"endpoints[{index}]: addresses: {problem}")
        return self


def _address_problem(address_type: str, address: str) -> str | None:
    if address_type == "FQDN":
        try:
            v.check_dns1123_subdomain(address)
        except ValueError as exc:
            return str(exc)
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not a valid IP address"
    if f"IPv{ip.version}" != address_type:
        return f"{address} is not an {address_type} address"
    return None
