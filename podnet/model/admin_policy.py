"""policy.networking.k8s.io: AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1) and
ClusterNetworkPolicy (v1alpha2), with the CRDs' validation rules.

A subject is exactly one of ``namespaces`` or ``pods``; a peer exactly one of its fields (an
object with none fails validation here, so the "fail closed on an unknown peer" rule never has
to guess). ``domainNames`` peers are refused: podnet does not resolve names in policy.
"""

from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from . import validation as v
from .base import Model, Resource
from .calico_policy import check_net
from .selectors import LabelSelector

POLICY_GROUP_V1ALPHA1: Final = "policy.networking.k8s.io/v1alpha1"
POLICY_GROUP_V1ALPHA2: Final = "policy.networking.k8s.io/v1alpha2"
L4Protocol = Literal["TCP", "UDP", "SCTP"]


def _cidr(value: str) -> str:
    if "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR: write it as ADDRESS/PREFIX, e.g. 10.0.0.0/8")
    check_net(value)
    return value


CIDR = Annotated[str, AfterValidator(_cidr)]


def check_priority(value: int) -> None:
    if not 0 <= value <= 1000:
        raise ValueError(f"{value} must be between 0 and 1000")


def _exactly_one(obj: Model, fields: tuple[str, ...], what: str) -> None:
    """CRD ``MinProperties=1, MaxProperties=1``: one field set, named by its manifest key."""
    given = [name for name in fields if getattr(obj, name) is not None]
    keys = [type(obj).model_fields[name].alias or name for name in fields]
    if not given:
        raise ValueError(f"{what} must set exactly one of {', '.join(keys)}")
    if len(given) > 1:
        set_keys = [type(obj).model_fields[name].alias or name for name in given]
        raise ValueError(f"{what} must set exactly one of {', '.join(keys)}, not {' and '.join(set_keys)}")


class NamespacedPod(Model):
    namespace_selector: LabelSelector
    pod_selector: LabelSelector


class Subject(Model):
    """The pods a policy applies to: every pod of some namespaces, or some pods of some namespaces."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    @model_validator(mode="after")
    def _one(self) -> "Subject":
        _exactly_one(self, ("namespaces", "pods"), "a subject")
        return self


class PortNumber(Model):
    protocol: L4Protocol = "TCP"
    port: int

    _check_port = v.field_check("port", v.check_port_number)


class PortRange(Model):
    protocol: L4Protocol = "TCP"
    start: int
    end: int

    _check_start = v.field_check("start", v.check_port_number)
    _check_end = v.field_check("end", v.check_port_number)

    @model_validator(mode="after")
    def _ordered(self) -> "PortRange":
        if self.end < self.start:
            raise ValueError(f"end: {self.end} must not be below start {self.start}")
        return self


class AdminPort(Model):
    """v1alpha1: one of a port number, a named port (on the destination pod) or a port range."""

    port_number: PortNumber | None = None
    named_port: str | None = None
    port_range: PortRange | None = None

    _check_name = v.field_check("named_port", v.check_port_name)

    @model_validator(mode="after")
    def _one(self) -> "AdminPort":
        _exactly_one(self, ("port_number", "named_port", "port_range"), "a port")
        return self


class AdminIngressPeer(Model):
    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    @model_validator(mode="after")
    def _one(self) -> "AdminIngressPeer":
        _exactly_one(self, ("namespaces", "pods"), "a peer")
        return self


class AdminEgressPeer(Model):
    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None
    nodes: LabelSelector | None = None
    networks: list[CIDR] | None = Field(default=None, min_length=1, max_length=25)
    domain_names: list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> "AdminEgressPeer":
        _exactly_one(self, ("namespaces", "pods", "nodes", "networks", "domain_names"), "a peer")
        if self.domain_names is not None:
            raise ValueError("domainNames: domain-name peers are not supported by podnet (it does not resolve "
                             "names in policy); use networks with the addresses")
        return self


def _no_named_ports_to_addresses(to: "list[AdminEgressPeer] | list[ClusterEgressPeer]",
                                 named: bool) -> None:
    if named and any(p.networks is not None or p.nodes is not None for p in to):
        raise ValueError("ports: networks/nodes peers cannot be combined with named ports (addresses outside "
                         "pods declare no port names)")


class AdminIngressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Allow", "Deny", "Pass"]
    from_: list[AdminIngressPeer] = Field(alias="from", min_length=1, max_length=100)
    ports: list[AdminPort] | None = Field(default=None, min_length=1, max_length=100)


class AdminEgressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Allow", "Deny", "Pass"]
    to: list[AdminEgressPeer] = Field(min_length=1, max_length=100)
    ports: list[AdminPort] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _named(self) -> "AdminEgressRule":
        _no_named_ports_to_addresses(self.to, any(p.named_port for p in self.ports or ()))
        return self


class AdminNetworkPolicySpec(Model):
    priority: int
    subject: Subject
    ingress: list[AdminIngressRule] | None = Field(default=None, max_length=100)
    egress: list[AdminEgressRule] | None = Field(default=None, max_length=100)

    _check_priority = v.field_check("priority", check_priority)


class AdminNetworkPolicy(Resource):
    """Cluster-wide rules evaluated before every NetworkPolicy (lower priority first)."""

    API_VERSION: ClassVar[str] = POLICY_GROUP_V1ALPHA1
    KIND: ClassVar[str] = "AdminNetworkPolicy"
    PLURAL: ClassVar[str] = "adminnetworkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("anp",)
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["policy.networking.k8s.io/v1alpha1"] = POLICY_GROUP_V1ALPHA1
    kind: Literal["AdminNetworkPolicy"] = "AdminNetworkPolicy"
    spec: AdminNetworkPolicySpec
    status: dict[str, object] | None = None


class BaselineIngressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Allow", "Deny"]
    from_: list[AdminIngressPeer] = Field(alias="from", min_length=1, max_length=100)
    ports: list[AdminPort] | None = Field(default=None, min_length=1, max_length=100)


class BaselineEgressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Allow", "Deny"]
    to: list[AdminEgressPeer] = Field(min_length=1, max_length=100)
    ports: list[AdminPort] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _named(self) -> "BaselineEgressRule":
        _no_named_ports_to_addresses(self.to, any(p.named_port for p in self.ports or ()))
        return self


class BaselineAdminNetworkPolicySpec(Model):
    subject: Subject
    ingress: list[BaselineIngressRule] | None = Field(default=None, max_length=100)
    egress: list[BaselineEgressRule] | None = Field(default=None, max_length=100)


class BaselineAdminNetworkPolicy(Resource):
    """The cluster's defaults, evaluated after every NetworkPolicy; a singleton named ``default``."""

    API_VERSION: ClassVar[str] = POLICY_GROUP_V1ALPHA1
    KIND: ClassVar[str] = "BaselineAdminNetworkPolicy"
    PLURAL: ClassVar[str] = "baselineadminnetworkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("banp",)
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["policy.networking.k8s.io/v1alpha1"] = POLICY_GROUP_V1ALPHA1
    kind: Literal["BaselineAdminNetworkPolicy"] = "BaselineAdminNetworkPolicy"
    spec: BaselineAdminNetworkPolicySpec
    status: dict[str, object] | None = None

    @model_validator(mode="after")
    def _singleton(self) -> "BaselineAdminNetworkPolicy":
        if self.metadata.name and self.metadata.name != "default":
            raise ValueError(f"metadata: name: only one BaselineAdminNetworkPolicy, named \"default\", may exist "
                             f"(this one is {self.metadata.name!r})")
        return self


# --- v1alpha2 ClusterNetworkPolicy -----------------------------------------------------------------


class ClusterPortRange(Model):
    start: int
    end: int

    _check_start = v.field_check("start", v.check_port_number)
    _check_end = v.field_check("end", v.check_port_number)

    @model_validator(mode="after")
    def _ordered(self) -> "ClusterPortRange":
        if not self.start < self.end:
            raise ValueError(f"end: start port must be less than end port ({self.start} >= {self.end})")
        return self


class ClusterPort(Model):
    number: int | None = None
    range: ClusterPortRange | None = None

    _check_number = v.field_check("number", v.check_port_number)

    @model_validator(mode="after")
    def _one(self) -> "ClusterPort":
        _exactly_one(self, ("number", "range"), "a destinationPort")
        return self


class ClusterL4(Model):
    destination_port: ClusterPort | None = None

    @model_validator(mode="after")
    def _some(self) -> "ClusterL4":
        if self.destination_port is None:
            raise ValueError("destinationPort: required (leave the protocol out to match every port)")
        return self


class ClusterProtocol(Model):
    """v1alpha2: one of tcp/udp/sctp with a destination port, or a destination named port."""

    tcp: ClusterL4 | None = None
    udp: ClusterL4 | None = None
    sctp: ClusterL4 | None = None
    destination_named_port: str | None = None

    _check_name = v.field_check("destination_named_port", v.check_port_name)

    @model_validator(mode="after")
    def _one(self) -> "ClusterProtocol":
        _exactly_one(self, ("tcp", "udp", "sctp", "destination_named_port"), "a protocol")
        return self


class ClusterEgressPeer(Model):
    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None
    nodes: LabelSelector | None = None
    networks: list[CIDR] | None = Field(default=None, min_length=1, max_length=25)
    domain_names: list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> "ClusterEgressPeer":
        _exactly_one(self, ("namespaces", "pods", "nodes", "networks", "domain_names"), "a peer")
        if self.domain_names is not None:
            raise ValueError("domainNames: domain-name peers are not supported by podnet (it does not resolve "
                             "names in policy); use networks with the addresses")
        return self


class ClusterIngressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Accept", "Deny", "Pass"]
    from_: list[AdminIngressPeer] = Field(alias="from", min_length=1, max_length=25)
    protocols: list[ClusterProtocol] | None = Field(default=None, min_length=1, max_length=25)


class ClusterEgressRule(Model):
    name: str | None = Field(default=None, max_length=100)
    action: Literal["Accept", "Deny", "Pass"]
    to: list[ClusterEgressPeer] = Field(min_length=1, max_length=25)
    protocols: list[ClusterProtocol] | None = Field(default=None, min_length=1, max_length=25)

    @model_validator(mode="after")
    def _named(self) -> "ClusterEgressRule":
        _no_named_ports_to_addresses(self.to, any(p.destination_named_port for p in self.protocols or ()))
        return self


class ClusterNetworkPolicySpec(Model):
    tier: Literal["Admin", "Baseline"]
    priority: int
    subject: Subject
    ingress: list[ClusterIngressRule] | None = Field(default=None, max_length=25)
    egress: list[ClusterEgressRule] | None = Field(default=None, max_length=25)

    _check_priority = v.field_check("priority", check_priority)


class ClusterNetworkPolicy(Resource):
    """v1alpha2: one kind for both tiers (``tier: Admin`` before NetworkPolicy, ``Baseline`` after)."""

    API_VERSION: ClassVar[str] = POLICY_GROUP_V1ALPHA2
    KIND: ClassVar[str] = "ClusterNetworkPolicy"
    PLURAL: ClassVar[str] = "clusternetworkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("cnp",)
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["policy.networking.k8s.io/v1alpha2"] = POLICY_GROUP_V1ALPHA2
    kind: Literal["ClusterNetworkPolicy"] = "ClusterNetworkPolicy"
    spec: ClusterNetworkPolicySpec
    status: dict[str, object] | None = None
