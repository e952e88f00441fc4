"""AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy → PolicyIR.

They sit in Calico's ``kube-admin`` and ``kube-baseline`` tiers (defaultAction Pass), ordered
by ``priority`` (a BaselineAdminNetworkPolicy at 1000, as Calico places it). A policy governs
the directions it has rules for. Peers: ``namespaces`` and ``pods`` match pods (never
hostNetwork ones), ``networks`` any address in the CIDRs (pod addresses too), ``nodes`` the
addresses of the matching nodes. A named port matches the destination pod's port of that name
on any protocol.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from podnet.model.admin_policy import (
    AdminEgressPeer,
    AdminEgressRule,
    AdminIngressPeer,
    AdminIngressRule,
    AdminNetworkPolicy,
    AdminPort,
    BaselineAdminNetworkPolicy,
    BaselineEgressRule,
    BaselineIngressRule,
    ClusterEgressPeer,
    ClusterEgressRule,
    ClusterIngressRule,
    ClusterNetworkPolicy,
    ClusterProtocol,
    Subject,
)
from podnet.model.selectors import EVERYTHING

from .ir import (
    SOURCE_ANNOTATION,
    Action,
    AdminSubject,
    Direction,
    Locator,
    NetworkPeer,
    NodePeer,
    Peer,
    PodPeer,
    PolicyIR,
    PortMatch,
    Provenance,
    Rule,
)
from .order import ADMIN_TIER, BASELINE_TIER

AdminPolicy = AdminNetworkPolicy | BaselineAdminNetworkPolicy | ClusterNetworkPolicy
AnyPeer = AdminIngressPeer | AdminEgressPeer | ClusterEgressPeer
AnyRule = (AdminIngressRule | AdminEgressRule | BaselineIngressRule | BaselineEgressRule | ClusterIngressRule
           | ClusterEgressRule)
#: a named port names a pod port whatever its protocol
NAMED_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
#: BaselineAdminNetworkPolicy's place in its tier (Calico's fixed order)
BASELINE_ORDER = 1000.0
Path = tuple[str | int, ...]


def compile_admin(policy: AdminPolicy, source: str | None = None, locate: Locator | None = None) -> PolicyIR:
    name = policy.metadata.name
    source = source or policy.metadata.annotations.get(SOURCE_ANNOTATION)
    if isinstance(policy, AdminNetworkPolicy):
        kind, tier, order = "anp", ADMIN_TIER, float(policy.spec.priority)
    elif isinstance(policy, BaselineAdminNetworkPolicy):
        kind, tier, order = "banp", BASELINE_TIER, BASELINE_ORDER
    else:
        kind = "cnp"
        tier = ADMIN_TIER if policy.spec.tier == "Admin" else BASELINE_TIER
        order = float(policy.spec.priority)

    def at(*path: str | int) -> str | None:
        return (locate(path) if locate else None) or source

    def prov(direction: Direction, index: int, rule_name: str | None, *rest: str | int,
             peer: int | None = None, port: int | None = None) -> Provenance:
        path: Path = ("spec", direction, index, *rest)
        return Provenance("", name, direction, index, peer=peer, port=port, source=at(*path), kind=kind,
                          rule_name=rule_name or None, path=path)

    ingress: Sequence[AdminIngressRule | BaselineIngressRule | ClusterIngressRule] = policy.spec.ingress or ()
    egress: Sequence[AdminEgressRule | BaselineEgressRule | ClusterEgressRule] = policy.spec.egress or ()
    rules: dict[Direction, tuple[Rule, ...]] = {
        "ingress": tuple(_rule("ingress", i, r, r.from_, prov) for i, r in enumerate(ingress)),
        "egress": tuple(_rule("egress", i, r, r.to, prov) for i, r in enumerate(egress)),
    }
    governs = frozenset(d for d, compiled in rules.items() if compiled)
    return PolicyIR(
        namespace="",
        name=name,
        pod_selector=EVERYTHING,
        isolates=governs,
        ingress=rules["ingress"],
        egress=rules["egress"],
        source=source,
        sections=tuple(d for d in ("ingress", "egress") if getattr(policy.spec, d) is not None),
        kind=kind,
        tier=tier,
        order=order,
        subject=_subject(policy.spec.subject),
    )


def _rule(direction: Direction, index: int, rule: AnyRule, peers: Sequence[AnyPeer],
          prov: Callable[..., Provenance]) -> Rule:
    name = rule.name
    key = "from" if direction == "ingress" else "to"
    return Rule(direction, index,
                tuple(_peer(p, prov(direction, index, name, key, j, peer=j)) for j, p in enumerate(peers)),
                _rule_ports(rule, lambda *rest, k: prov(direction, index, name, *rest, port=k)),
                prov(direction, index, name), action=_action(rule.action), name=name or None)


def _action(text: str) -> Action:
    if text == "Deny":
        return "Deny"
    if text == "Pass":
        return "Pass"
    return "Allow"  # Allow (v1alpha1) and Accept (v1alpha2)


def _subject(subject: Subject) -> AdminSubject:
    if subject.pods is not None:
        return AdminSubject(subject.pods.namespace_selector, subject.pods.pod_selector)
    assert subject.namespaces is not None
    return AdminSubject(subject.namespaces)


def _peer(peer: AnyPeer, prov: Provenance) -> Peer:
    if peer.namespaces is not None:
        return PodPeer(EVERYTHING, peer.namespaces, "", prov, has_pod_selector=False)
    if peer.pods is not None:
        return PodPeer(peer.pods.pod_selector, peer.pods.namespace_selector, "", prov)
    if isinstance(peer, (AdminEgressPeer, ClusterEgressPeer)):
        if peer.networks is not None:
            return NetworkPeer.of(peer.networks, prov)
        if peer.nodes is not None:
            return NodePeer(peer.nodes, prov)
    raise ValueError(f"{prov.field_path}: a peer with no known field")  # the model refuses these


def _rule_ports(rule: AnyRule, prov: Callable[..., Provenance]) -> tuple[PortMatch, ...] | None:
    """v1alpha1 ``ports`` or v1alpha2 ``protocols``; absent: every port of every protocol."""
    ports: Sequence[AdminPort] | None = getattr(rule, "ports", None)
    protocols: Sequence[ClusterProtocol] | None = getattr(rule, "protocols", None)
    out: list[PortMatch] = []
    for k, port in enumerate(ports or ()):
        if port.port_number is not None:
            out.append(PortMatch(port.port_number.protocol, port.port_number.port, None,
                                 prov("ports", k, "portNumber", k=k)))
        elif port.port_range is not None:
            r = port.port_range
            out.append(PortMatch(r.protocol, r.start, r.end if r.end != r.start else None,
                                 prov("ports", k, "portRange", k=k)))
        elif port.named_port is not None:
            out += [PortMatch(p, port.named_port, None, prov("ports", k, "namedPort", k=k))
                    for p in NAMED_PORT_PROTOCOLS]
    for k, proto in enumerate(protocols or ()):
        if proto.destination_named_port is not None:
            out += [PortMatch(p, proto.destination_named_port, None, prov("protocols", k, k=k))
                    for p in NAMED_PORT_PROTOCOLS]
            continue
        for name, l4 in (("TCP", proto.tcp), ("UDP", proto.udp), ("SCTP", proto.sctp)):
            if l4 is None or l4.destination_port is None:
                continue
            dp = l4.destination_port
            where = prov("protocols", k, name.lower(), "destinationPort", k=k)
            if dp.number is not None:
                out.append(PortMatch(name, dp.number, None, where))
            elif dp.range is not None:
                out.append(PortMatch(name, dp.range.start, dp.range.end, where))
    if ports is None and protocols is None:
        return None
    return tuple(out)
