"""networking.k8s.io/v1 NetworkPolicy, complete, with the API server's validation rules."""

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource
from .selectors import LabelSelector


class IPBlock(Model):
    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")

    _check_cidr = v.field_check("cidr", v.check_cidr)

    @model_validator(mode="after")
    def _except_inside_cidr(self) -> "IPBlock":
        outer = ipaddress.ip_network(self.cidr, strict=False)
        for index, entry in enumerate(self.except_ or ()):
            try:
                v.check_cidr(entry)
            except ValueError as exc:
                raise ValueError(f"except[{index}]: {exc}") from None
            inner = ipaddress.ip_network(entry, strict=False)
            if inner.version != outer.version or not inner.subnet_of(outer) or inner.prefixlen <= outer.prefixlen:  # type: ignore[arg-type]
                raise ValueError(f"except[{index}]: {entry} must be a strict subset of cidr {self.cidr}")
        return self


class NetworkPolicyPeer(Model):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @model_validator(mode="after")
    def _one_kind_of_peer(self) -> "NetworkPolicyPeer":
        if self.ip_block is not None and (self.pod_selector is not None or self.namespace_selector is not None):
            raise ValueError("ipBlock may not be combined with podSelector or namespaceSelector in one peer")
        if self.ip_block is None and self.pod_selector is None and self.namespace_selector is None:
            raise ValueError("a peer must set at least one of podSelector, namespaceSelector, ipBlock")
        return self


class NetworkPolicyPort(Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    _check_port = v.field_check("port", v.check_int_or_port_name)

    @model_validator(mode="after")
    def _end_port_rules(self) -> "NetworkPolicyPort":
        if self.end_port is None:
            return self
        if self.port is None:
            raise ValueError("endPort: may not be specified when port is not specified")
        if isinstance(self.port, str):
            raise ValueError("endPort: may not be specified when port is a named port")
        v.check_port_number(self.end_port)
        if self.end_port < self.port:
            raise ValueError(f"endPort: {self.end_port} must be greater than or equal to port {self.port}")
        return self


class NetworkPolicyIngressRule(Model):
    from_: list[NetworkPolicyPeer] | None = Field(default=None, alias="from")
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicyEgressRule(Model):
    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicySpec(Model):
    pod_selector: LabelSelector
    policy_types: list[Literal["Ingress", "Egress"]] | None = None
    ingress: list[NetworkPolicyIngressRule] | None = None
    egress: list[NetworkPolicyEgressRule] | None = None

    @model_validator(mode="after")
    def _at_most_two_types(self) -> "NetworkPolicySpec":
        # The API server checks only the length: a repeated type is accepted as it is.
        if len(self.policy_types or ()) > 2:
            raise ValueError("policyTypes: may not specify more than two policyTypes")
        return self

    @property
    def effective_policy_types(self) -> tuple[str, ...]:
        """policyTypes without repeats, or the API server's default: Ingress, plus Egress iff
        the egress list has entries (``egress: []`` alone leaves egress unisolated)."""
        if self.policy_types:
            return tuple(dict.fromkeys(self.policy_types))
        return ("Ingress", "Egress") if self.egress else ("Ingress",)


class NetworkPolicy(Resource):
    API_VERSION: ClassVar[str] = "networking.k8s.io/v1"
    KIND: ClassVar[str] = "NetworkPolicy"
    PLURAL: ClassVar[str] = "networkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("netpol",)

    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    spec: NetworkPolicySpec
    status: dict[str, Any] | None = None
