"""networking.k8s.io/v1 Ingress and IngressClass, with the API server's validation
(``pkg/apis/networking/validation``): a rule's host is a DNS-1123 subdomain, with ``*`` only
as the whole first label; every path has a pathType, and Exact and Prefix paths are absolute;
a backend names a Service (by port number or name) or a resource, never both; an Ingress
without rules needs a defaultBackend."""

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


class ServiceBackendPort(Model):
    number: int | None = None
    name: str | None = None

    _check_number = v.field_check("number", v.check_port_number)
    _check_name = v.field_check("name", v.check_port_name)

    @model_validator(mode="after")
    def _one(self) -> "ServiceBackendPort":
        if (self.number is None) == (self.name is None):
            raise ValueError("exactly one of number or name must be specified")
        return self


class IngressServiceBackend(Model):
    name: str
    port: ServiceBackendPort

    _check_name = v.field_check("name", v.check_dns1035_label)


class IngressBackend(Model):
    service: IngressServiceBackend | None = None
    resource: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> "IngressBackend":
        if (self.service is None) == (self.resource is None):
            raise ValueError("exactly one of service or resource must be specified")
        return self


class HTTPIngressPath(Model):
    path: str | None = None
    path_type: Literal["Exact", "Prefix", "ImplementationSpecific"] = Field(alias="pathType")
    backend: IngressBackend

    @model_validator(mode="after")
    def _absolute(self) -> "HTTPIngressPath":
        if self.path_type in ("Exact", "Prefix"):
            if not self.path or not self.path.startswith("/"):
                raise ValueError(f"path: must be an absolute path for pathType {self.path_type}")
            if "//" in self.path:
                raise ValueError("path: must not contain '//'")
        elif self.path is not None and self.path and not self.path.startswith("/"):
            raise ValueError("path: must be an absolute path")
        return self


class HTTPIngressRuleValue(Model):
    paths: list[HTTPIngressPath]

    @model_validator(mode="after")
    def _some(self) -> "HTTPIngressRuleValue":
        if not self.paths:
            raise ValueError("paths: Required value")
        return self


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_controller(value: str) -> None:
    """A domain-prefixed path such as ``k8s.io/ingress-nginx`` (at most 250 characters)."""
    domain, slash, path = value.partition("/")
    if not slash or not path or len(value) > 250:
        raise ValueError(f"{value!r}: must be a domain-prefixed path such as 'example.com/ingress-controller'")
    v.check_dns1123_subdomain(domain)


def check_rule_host(value: str) -> None:
    """A DNS-1123 subdomain; a wildcard only as the whole first label (``*.foo.com``)."""
    if _is_ip(value):
        raise ValueError(f"{value!r}: must be a DNS name, not an IP address")
    if value.startswith("*."):
        v.check_dns1123_subdomain(value[2:])
    elif "*" in value:
        raise ValueError(f"{value!r}: a wildcard '*' must be the first label alone ('*.foo.com')")
    else:
        v.check_dns1123_subdomain(value)


class IngressRule(Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None

    _check_host = v.field_check("host", check_rule_host)


class IngressTLS(Model):
    hosts: list[str] | None = None
    secret_name: str | None = Field(default=None, alias="secretName")

    @model_validator(mode="after")
    def _hosts(self) -> "IngressTLS":
        for index, host in enumerate(self.hosts or ()):
            try:
                check_rule_host(host)
            except ValueError as exc:
                raise ValueError(f"hosts[{index}]: {exc}") from None
        return self


class IngressSpec(Model):
    ingress_class_name: str | None = Field(default=None, alias="ingressClassName")
    default_backend: IngressBackend | None = Field(default=None, alias="defaultBackend")
    tls: list[IngressTLS] | None = None
    rules: list[IngressRule] | None = None

    _check_class = v.field_check("ingress_class_name", v.check_dns1123_subdomain)

    @model_validator(mode="after")
    def _something(self) -> "IngressSpec":
        if not self.rules and self.default_backend is None:
            raise ValueError("either `defaultBackend` or `rules` must be specified")
        return self


class IngressLoadBalancerIngress(Model):
    ip: str | None = None
    hostname: str | None = None
    ports: list[dict[str, Any]] | None = None


class IngressLoadBalancerStatus(Model):
    ingress: list[IngressLoadBalancerIngress] | None = None


class IngressStatus(Model):
    load_balancer: IngressLoadBalancerStatus = Field(default_factory=IngressLoadBalancerStatus,
                                                     alias="loadBalancer")


class Ingress(Resource):
    API_VERSION: ClassVar[str] = "networking.k8s.io/v1"
    KIND: ClassVar[str] = "Ingress"
    PLURAL: ClassVar[str] = "ingresses"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ing",)

    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["Ingress"] = "Ingress"
    spec: IngressSpec
    status: IngressStatus = Field(default_factory=IngressStatus)

    @property
    def class_name(self) -> str | None:
        """spec.ingressClassName, else the deprecated annotation."""
        return self.spec.ingress_class_name or self.metadata.annotations.get(LEGACY_CLASS_ANNOTATION)


class IngressClassSpec(Model):
    controller: str | None = None
    parameters: dict[str, Any] | None = None

    _check_controller = v.field_check("controller", check_controller)


class IngressClass(Resource):
    API_VERSION: ClassVar[str] = "networking.k8s.io/v1"
    KIND: ClassVar[str] = "IngressClass"
    PLURAL: ClassVar[str] = "ingressclasses"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["IngressClass"] = "IngressClass"
    spec: IngressClassSpec = Field(default_factory=IngressClassSpec)

    @property
    def is_default(self) -> bool:
        return (self.metadata.annotations or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
