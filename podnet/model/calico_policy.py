"""projectcalico.org/v3 policy kinds: NetworkPolicy, GlobalNetworkPolicy, Tier, NetworkSet and
GlobalNetworkSet, validated as Calico's API server validates them.

A rule is ``action`` plus match fields that are ANDed: protocol (name or number), ICMP type and
code, IP version, and a ``source`` and ``destination`` entity (nets, selectors, ports). Fields
podnet cannot honour on pods are refused with the reason instead of being silently ignored:
``http`` (needs an application-layer proxy), ``services`` matches and source ports (a probe's
source port is ephemeral, so such a rule's effect could not be explained).
"""

import ipaddress
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from . import validation as v
from .base import Model, Resource
from .calico_selector import check_selector

CALICO_V3: Final = "projectcalico.org/v3"
RuleAction = Literal["Allow", "Deny", "Log", "Pass"]
PolicyType = Literal["Ingress", "Egress"]
#: Calico's protocol names and their IP protocol numbers
PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP", "UDPLite")
ICMP_PROTOCOLS = ("ICMP", "ICMPv6")
#: the fixed tiers: name → (order, defaultAction); the old ANP/BANP tier names are the same tiers
BUILTIN_TIERS: dict[str, tuple[float, str]] = {
    "kube-admin": (1000.0, "Pass"),
    "adminnetworkpolicy": (1000.0, "Pass"),
    "default": (1_000_000.0, "Deny"),
    "kube-baseline": (10_000_000.0, "Pass"),
    "baselineadminnetworkpolicy": (10_000_000.0, "Pass"),
}


def protocol_name(value: int | str) -> str:
    """A rule's protocol as Calico spells it (``tcp`` → ``TCP``, ``6`` → ``TCP``); other numbers
    stay numbers (as text)."""
    if isinstance(value, int):
        for name, number in PROTOCOL_NUMBERS.items():
            if number == value:
                return name
        return str(value)
    for name in PROTOCOL_NUMBERS:
        if name.lower() == value.lower():
            return name
    return value


def check_protocol(value: int | str) -> None:
    if isinstance(value, int):
        if not 1 <= value <= 255:
            raise ValueError(f"protocol number {value} must be between 1 and 255")
        return
    if protocol_name(value) not in PROTOCOL_NUMBERS:
        raise ValueError(f"unknown protocol {value!r}: use one of {', '.join(PROTOCOL_NUMBERS)} or a number 1-255")


def check_net(value: str) -> None:
    """A ``nets`` entry: a CIDR or a single address."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR or IP address (e.g. 10.0.0.0/8 or 192.0.2.1)") from None


def parse_port(value: int | str) -> tuple[int, int] | str:
    """A Calico port: ``80`` or ``'80'`` → (80, 80); ``'6040:6050'`` → (6040, 6050) inclusive; a
    name stays a name. Raises ValueError for anything else."""
    if isinstance(value, int):
        if not 0 <= value <= 65535:
            raise ValueError(f"port {value} must be between 0 and 65535")
        return value, value
    text = value.strip()
    if ":" in text:
        first, _, last = text.partition(":")
        if not (first.isdigit() and last.isdigit()):
            raise ValueError(f"port range {value!r} must be two numbers, e.g. '6040:6050'")
        lo, hi = int(first), int(last)
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or lo > hi:
            raise ValueError(f"port range {value!r}: both ends within 0-65535 and the first not above the last")
        return lo, hi
    if text.isdigit():
        return parse_port(int(text))
    v.check_port_name(text)
    return text


def _valid_net(value: str) -> str:
    check_net(value)
    return value


def _valid_port(value: int | str) -> int | str:
    parse_port(value)
    return value


#: a ``nets`` entry and a ``ports`` entry, each checked where it stands (errors name its index)
Net = Annotated[str, AfterValidator(_valid_net)]
Port = Annotated[int | str, AfterValidator(_valid_port)]


class ICMPFields(Model):
    """ICMP type and (optional) code; a code needs a type."""

    type: int | None = None
    code: int | None = None

    @model_validator(mode="after")
    def _ranges(self) -> "ICMPFields":
        if self.type is not None and not 0 <= self.type <= 254:
            raise ValueError(f"type: {self.type} must be between 0 and 254")
        if self.code is not None:
            if self.type is None:
                raise ValueError("code: an ICMP code needs a type")
            if not 0 <= self.code <= 255:
                raise ValueError(f"code: {self.code} must be between 0 and 255")
        return self


class ServiceAccountMatch(Model):
    names: list[str] | None = None
    selector: str | None = None

    _check_selector = v.field_check("selector", check_selector)


class EntityRule(Model):
    """One end of a rule: every field present must match (nets AND selector AND ports …)."""

    nets: list[Net] | None = None
    not_nets: list[Net] | None = None
    selector: str | None = None
    not_selector: str | None = None
    namespace_selector: str | None = None
    ports: list[Port] | None = None
    not_ports: list[Port] | None = None
    service_accounts: ServiceAccountMatch | None = None
    services: dict[str, Any] | None = None

    _check_selector = v.field_check("selector", check_selector)
    _check_not_selector = v.field_check("not_selector", check_selector)
    _check_ns_selector = v.field_check("namespace_selector", check_selector)

    @model_validator(mode="after")
    def _supported(self) -> "EntityRule":
        if self.services is not None:
            raise ValueError("services: matching a Kubernetes Service in a rule is not supported by podnet; "
                             "select the Service's pods with selector instead")
        return self

    @property
    def port_numbers_or_ranges(self) -> bool:
        return any(not isinstance(parse_port(p), str) for p in (*(self.ports or ()), *(self.not_ports or ())))


class CalicoRule(Model):
    action: RuleAction
    protocol: int | str | None = None
    not_protocol: int | str | None = None
    icmp: ICMPFields | None = None
    not_icmp: ICMPFields | None = Field(default=None, alias="notICMP")
    ip_version: Literal[4, 6] | None = None
    source: EntityRule = Field(default_factory=EntityRule)
    destination: EntityRule = Field(default_factory=EntityRule)
    http: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    _check_protocol = v.field_check("protocol", check_protocol)
    _check_not_protocol = v.field_check("not_protocol", check_protocol)

    @model_validator(mode="after")
    def _rule_checks(self) -> "CalicoRule":
        """Calico's validateRule: ports need a port protocol, ICMP fields an ICMP protocol."""
        if self.http is not None:
            raise ValueError("http: HTTP matches need an application-layer proxy, which podnet does not run; "
                             "remove them (or match on ports)")
        if self.source.ports or self.source.not_ports:
            raise ValueError("source: ports: source ports are not supported by podnet (a client's source port is "
                             "ephemeral); match on destination ports")
        proto = protocol_name(self.protocol) if self.protocol is not None else None
        if self.destination.port_numbers_or_ranges and proto not in PORT_PROTOCOLS:
            raise ValueError(f"protocol: rules that specify numeric ports must set protocol to one of "
                             f"{', '.join(PORT_PROTOCOLS)} (got {proto or 'none'})")
        if self.destination.ports or self.destination.not_ports:
            if proto is not None and proto not in PORT_PROTOCOLS:
                raise ValueError(f"protocol: ports are only valid with {', '.join(PORT_PROTOCOLS)} (got {proto})")
        for field, value in (("icmp", self.icmp), ("notICMP", self.not_icmp)):
            if value is not None and proto not in ICMP_PROTOCOLS:
                raise ValueError(f"{field}: ICMP type and code are only valid with protocol ICMP or ICMPv6")
        if self.ip_version is not None:
            for side_name, side in (("source", self.source), ("destination", self.destination)):
                for field, nets in (("nets", side.nets), ("notNets", side.not_nets)):
                    for net in nets or ():
                        if ipaddress.ip_network(net, strict=False).version != self.ip_version:
                            raise ValueError(f"{side_name}: {field}: {net} is not an IPv{self.ip_version} network "
                                             f"(ipVersion is {self.ip_version})")
        return self


class CalicoPolicySpec(Model):
    """The spec NetworkPolicy and GlobalNetworkPolicy share."""

    tier: str | None = None
    order: float | None = None
    selector: str | None = None
    service_account_selector: str | None = None
    types: list[PolicyType] | None = None
    ingress: list[CalicoRule] | None = None
    egress: list[CalicoRule] | None = None
    performance_hints: list[str] | None = None

    _check_selector = v.field_check("selector", check_selector)
    _check_sa_selector = v.field_check("service_account_selector", check_selector)
    _check_tier = v.field_check("tier", v.check_dns1123_label)

    @model_validator(mode="after")
    def _types_unique(self) -> "CalicoPolicySpec":
        if self.types and len(set(self.types)) != len(self.types):
            raise ValueError("types: each type may appear once")
        return self

    @property
    def effective_tier(self) -> str:
        return self.tier or "default"

    @property
    def effective_types(self) -> tuple[str, ...]:
        """``types`` as written, or Calico's default: Egress alone when only egress rules are
        given, both when both are, else Ingress."""
        if self.types:
            return tuple(self.types)
        if self.egress and self.ingress:
            return ("Ingress", "Egress")
        if self.egress:
            return ("Egress",)
        return ("Ingress",)


class CalicoNetworkPolicy(Resource):
    """projectcalico.org/v3 NetworkPolicy: namespaced, ordered, in a tier."""

    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "NetworkPolicy"
    #: the store's name for the kind (the Kubernetes NetworkPolicy holds "networkpolicies")
    PLURAL: ClassVar[str] = "caliconetworkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("networkpolicies.p", "networkpolicy.p", "caliconetworkpolicy",
                                              "policy", "policies", "np", "pol", "pols")

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    spec: CalicoPolicySpec = Field(default_factory=CalicoPolicySpec)

    @classmethod
    def resource_name(cls) -> str:
        return "networkpolicies.projectcalico.org"


class GlobalNetworkPolicySpec(CalicoPolicySpec):
    namespace_selector: str | None = None
    do_not_track: bool | None = None
    pre_dnat: bool | None = Field(default=None, alias="preDNAT")
    apply_on_forward: bool | None = None

    _check_ns_selector = v.field_check("namespace_selector", check_selector)

    @model_validator(mode="after")
    def _host_only_flags(self) -> "GlobalNetworkPolicySpec":
        if self.do_not_track and self.pre_dnat:
            raise ValueError("preDNAT: doNotTrack and preDNAT cannot both be true")
        if (self.do_not_track or self.pre_dnat) and self.apply_on_forward is False:
            raise ValueError("applyOnForward: must be true when doNotTrack or preDNAT is set")
        if self.pre_dnat and "Egress" in self.effective_types:
            raise ValueError("types: a preDNAT policy may only have ingress rules")
        return self


class GlobalNetworkPolicy(Resource):
    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "GlobalNetworkPolicy"
    PLURAL: ClassVar[str] = "globalnetworkpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gnp", "gnps")
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["GlobalNetworkPolicy"] = "GlobalNetworkPolicy"
    spec: GlobalNetworkPolicySpec = Field(default_factory=GlobalNetworkPolicySpec)


class TierSpec(Model):
    order: float | None = None
    default_action: Literal["Deny", "Pass"] | None = None

    @property
    def effective_default_action(self) -> str:
        return self.default_action or "Deny"


class Tier(Resource):
    """A tier: policies are evaluated tier by tier, in ``order`` (none: last), ties by name."""

    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "Tier"
    PLURAL: ClassVar[str] = "tiers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tier",)
    NAMESPACED: ClassVar[bool] = False
    NAME_RULE: ClassVar[str] = "dns1123-label"

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["Tier"] = "Tier"
    spec: TierSpec = Field(default_factory=TierSpec)

    @model_validator(mode="after")
    def _builtin_fixed(self) -> "Tier":
        """The admin, default and baseline tiers keep their order and default action."""
        fixed = BUILTIN_TIERS.get(self.metadata.name)
        if fixed is None:
            return self
        order, action = fixed
        if self.spec.order is not None and self.spec.order != order:
            raise ValueError(f"spec: order: the {self.metadata.name} tier's order is fixed at {order:g}")
        if self.spec.default_action is not None and self.spec.default_action != action:
            raise ValueError(f"spec: defaultAction: the {self.metadata.name} tier's defaultAction is fixed at {action}")
        return self


class NetworkSetSpec(Model):
    nets: list[Net] | None = None


class NetworkSet(Resource):
    """Addresses with labels, so rule selectors can match them (namespaced)."""

    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "NetworkSet"
    PLURAL: ClassVar[str] = "networksets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("networkset", "netsets")

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["NetworkSet"] = "NetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)


class GlobalNetworkSet(Resource):
    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "GlobalNetworkSet"
    PLURAL: ClassVar[str] = "globalnetworksets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("globalnetworkset", "gnetsets")
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["GlobalNetworkSet"] = "GlobalNetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)
