"""Per-pod resolution of the IR: what the nftables compiler needs for each pod.

For each pod-network pod: whether it is isolated per direction, which policies select it, and
for each rule of those policies the concrete peers (pod IPs, CIDRs with excepts, or "anyone")
and concrete ports. Named ports are resolved per destination: for ingress against the pod
itself; for egress against each peer pod (``ports_by_ip``), since the same name can map to
different numbers on different pods.

ipBlock and pod IPs: with ``state.ipblock_matches_pods`` (the default) pods inside a CIDR are
already listed in ``peer_ips`` and ``cidrs`` may be matched against any address; with it off,
``cidrs`` must not match pod-network pod addresses (exclude the pod CIDRs when compiling).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .cluster import ClusterState, Endpoint, peer_matches
from .ir import DIRECTIONS, Direction, IPBlockPeer, PortMatch, Rule


@dataclass(frozen=True, order=True)
class ResolvedPort:
    """A concrete port range of one protocol (first == last for a single port)."""

    protocol: str
    first: int
    last: int

    def describe(self) -> str:
        if (self.first, self.last) == (0, 65535):
            return f"all {self.protocol} ports"
        span = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{span}/{self.protocol}"


@dataclass(frozen=True)
class ResolvedRule:
    """One rule with peers and ports made concrete for one selected pod.

    ``all_peers``: the rule has no from/to (every address, in or outside the cluster).
    ``peer_pods``/``peer_ips``: pods matched by pod-selector peers (and, when the cluster
    option says so, pods inside an ipBlock), sorted. ``cidrs``: ipBlock peers, as written.
    ``ports``: None = every port and protocol; else the ranges valid for every destination
    (numeric entries; for ingress also the named ports resolved on this pod).
    ``ports_by_ip``: egress only: named ports resolved on each peer pod that declares them.
    """

    rule: Rule
    all_peers: bool
    peer_pods: tuple[str, ...]
    peer_ips: tuple[str, ...]
    cidrs: tuple[IPBlockPeer, ...]
    ports: tuple[ResolvedPort, ...] | None
    ports_by_ip: Mapping[str, tuple[ResolvedPort, ...]]


@dataclass(frozen=True)
class PodPolicy:
    """Everything policy-related about one pod."""

    pod: str
    ip: str | None
    isolated_ingress: bool
    isolated_egress: bool
    policies: tuple[str, ...]
    ingress: tuple[ResolvedRule, ...]
    egress: tuple[ResolvedRule, ...]

    def isolated(self, direction: Direction) -> bool:
        return self.isolated_ingress if direction == "ingress" else self.isolated_egress


def _span(pm: PortMatch, named: Mapping[tuple[str, str], int] | None) -> ResolvedPort | None:
    span = pm.resolve(named)
    return None if span is None else ResolvedPort(pm.protocol, span[0], span[1])


def resolve(state: ClusterState) -> dict[str, PodPolicy]:
    """For every pod-network pod (key ``ns/name``), its isolation and resolved rules."""
    peer_cache: dict[int, tuple[Endpoint, ...]] = {}

    def rule_peer_pods(rule: Rule) -> tuple[Endpoint, ...]:
        hit = peer_cache.get(id(rule))
        if hit is None:
            assert rule.peers is not None
            hit = tuple(ep for ep in state.pods if any(peer_matches(p, ep, state) for p in rule.peers))
            peer_cache[id(rule)] = hit
        return hit

    out: dict[str, PodPolicy] = {}
    for ep in state.pods:
        if not ep.selectable:
            continue
        selecting = state.selecting_any(ep)
        rules: dict[Direction, list[ResolvedRule]] = {"ingress": [], "egress": []}
        for pol in selecting:
            for direction in DIRECTIONS:
                if direction not in pol.isolates:
                    continue
                for rule in pol.rules(direction):
                    rules[direction].append(_resolve_rule(rule, ep, direction, rule_peer_pods, state.pods))
        out[ep.key] = PodPolicy(
            pod=ep.key,
            ip=ep.ip,
            isolated_ingress=any("ingress" in p.isolates for p in selecting),
            isolated_egress=any("egress" in p.isolates for p in selecting),
            policies=tuple(p.ref for p in selecting),
            ingress=tuple(rules["ingress"]),
            egress=tuple(rules["egress"]),
        )
    return out


def _resolve_rule(rule: Rule, ep: Endpoint, direction: str, rule_peer_pods: Callable[[Rule], tuple[Endpoint, ...]],
                  all_pods: tuple[Endpoint, ...]) -> ResolvedRule:
    peers = () if rule.peers is None else rule_peer_pods(rule)
    cidrs = () if rule.peers is None else tuple(p for p in rule.peers if isinstance(p, IPBlockPeer))
    ports: tuple[ResolvedPort, ...] | None
    by_ip: dict[str, tuple[ResolvedPort, ...]] = {}
    if rule.ports is None:
        ports = None
    elif direction == "ingress":
        ports = tuple(sorted({s for pm in rule.ports if (s := _span(pm, ep.named_ports)) is not None}))
    else:
        ports = tuple(sorted({s for pm in rule.ports if not pm.is_named and (s := _span(pm, None)) is not None}))
        named = [pm for pm in rule.ports if pm.is_named]
        if named:
            for peer in (all_pods if rule.peers is None else peers):
                got = tuple(sorted({s for pm in named if (s := _span(pm, peer.named_ports)) is not None}))
                if got and peer.ip:
                    by_ip[peer.ip] = got
    return ResolvedRule(
        rule=rule,
        all_peers=rule.peers is None,
        peer_pods=tuple(p.key for p in peers),
        peer_ips=tuple(sorted({p.ip for p in peers if p.ip})),
        cidrs=cidrs,
        ports=ports,
        ports_by_ip=by_ip,
    )
