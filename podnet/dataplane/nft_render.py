"""Policy IR → the ``inet podnet`` nftables table of one node (pure: state in, values out).

Layout (Calico's, in nftables terms)::

    forward (hook forward)   ct established,related accept; ct invalid drop;
                             iifname "cali*" jump from-wl; oifname "cali*" jump to-wl
    input   (hook input)     non-cali accept; ct ...; iifname "cali*" jump from-wl
    from-wl                  iifname vmap @from-pod   (→ goto fw-<if>)   ; else drop
    to-wl                    oifname vmap @to-pod     (→ goto tw-<if> or accept) ; else drop
    fw-<if>  (pod egress)    anti-spoofing; policy rules → return; default drop if isolated
    tw-<if>  (pod ingress)   own node accept; policy rules → accept; default drop

Egress ends in ``return`` so a pod-to-pod packet on one node meets the sender's egress chain
and then the receiver's ingress chain. Pod peers become named IP sets, one per selector and
shared by every rule that uses it, so a label change only adds or removes set elements; ipBlocks
become interval sets (cidr minus excepts); ports become ``inet_proto . inet_service`` interval
sets; named ports resolve per destination (ingress: on the pod itself; egress: on each peer pod,
in an ``ip . proto . port`` set). A ``cali*`` interface the table does not know is dropped both
ways (fail closed until programmed). Every rule's comment names the policy and manifest field.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from podnet.policy.cluster import ClusterState, Endpoint, peer_matches
from podnet.policy.ir import IPBlockPeer, PodPeer, PolicyIR, PortMatch, Rule

from .nft_model import NftChain, NftMap, NftRule, NftSet, NftTable, cidr_minus, merge_intervals, short_hash

FROM_MAP, TO_MAP = "from-pod", "to-pod"
FROM_WL, TO_WL = "from-wl", "to-wl"
IFACE_PREFIX = "cali"
_V4 = ("ipv4_addr",)
_V6 = ("ipv6_addr",)
_PORTS = ("inet_proto", "inet_service")
_NAMED = ("ipv4_addr", "inet_proto", "inet_service")


def workload_ifname(namespace: str, name: str) -> str:
    """The pod's host-side veth name, as Calico's CNI plugin names it (cali + 11 hex of sha1)."""
    return IFACE_PREFIX + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


# --- expression helpers ----------------------------------------------------------------------


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _payload(proto: str, fld: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": fld}}


_CT_STATE = {"ct": {"key": "state"}}
_L4_DPORT = {"concat": [_meta("l4proto"), _payload("th", "dport")]}
ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
RETURN: dict[str, Any] = {"return": None}
COUNTER: dict[str, Any] = {"counter": None}


def _ct_rules() -> list[NftRule]:
    return [
        NftRule.make([_match(_CT_STATE, ["established", "related"], "in"), ACCEPT], "replies and related traffic"),
        NftRule.make([_match(_CT_STATE, "invalid", "in"), DROP], "invalid conntrack state"),
    ]


def base_chains() -> dict[str, NftChain]:
    """The fixed part: hooks and the two dispatch chains."""
    cali = IFACE_PREFIX + "*"
    forward = NftChain("forward", tuple(_ct_rules() + [
        NftRule.make([_match(_meta("iifname"), cali), {"jump": {"target": FROM_WL}}], "from a pod: its egress policy"),
        NftRule.make([_match(_meta("oifname"), cali), {"jump": {"target": TO_WL}}], "to a pod: its ingress policy"),
    ]), hook="forward")
    inp = NftChain("input", tuple(
        [NftRule.make([_match(_meta("iifname"), cali, "!="), ACCEPT], "not from a pod: not ours to filter")]
        + _ct_rules()
        + [NftRule.make([{"jump": {"target": FROM_WL}}], "pod to its node: its egress policy")]), hook="input")
    from_wl = NftChain(FROM_WL, (
        NftRule.make([{"vmap": {"key": _meta("iifname"), "data": "@" + FROM_MAP}}], "dispatch by pod interface"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    to_wl = NftChain(TO_WL, (
        NftRule.make([{"vmap": {"key": _meta("oifname"), "data": "@" + TO_MAP}}], "dispatch by pod interface"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    return {c.name: c for c in (forward, inp, from_wl, to_wl)}


# --- peers and ports -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Addr:
    """One address matcher: a named set and the address family/field to compare."""

    set_name: str
    version: int


class _Builder:
    """Collects shared sets while chains are rendered; caches per-peer memberships."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.sets: dict[str, NftSet] = {}
        self._pod_ips = tuple(sorted(
            {int(ipaddress.ip_address(p.ip)) for p in state.pods if p.selectable and p.ip and ":" not in p.ip}))
        self._groups = self._label_groups()

    def _label_groups(self) -> list[tuple[Endpoint, tuple[int, ...]]]:
        """Pod-network pods grouped by (namespace, labels): selectors run once per group."""
        groups: dict[tuple[Any, ...], tuple[Endpoint, list[int]]] = {}
        for ep in self.state.pods:
            if not ep.selectable or not ep.ip or ":" in ep.ip:
                continue
            key = (ep.namespace, tuple(sorted(ep.labels.items())))
            groups.setdefault(key, (ep, []))[1].append(int(ipaddress.ip_address(ep.ip)))
        return [(ep, tuple(ips)) for _, (ep, ips) in sorted(groups.items(), key=lambda kv: kv[0])]

    def pod_peer(self, peer: PodPeer) -> _Addr:
        scope = peer.namespace if peer.namespace_selector is None else peer.namespace_selector.to_dict()
        name = "pods-" + short_hash("pods", scope, peer.pod_selector.to_dict())
        if name not in self.sets:
            members = frozenset(((ip, ip),) for ep, ips in self._groups if peer_matches(peer, ep, self.state)
                                for ip in ips)
            self.sets[name] = NftSet(name, _V4, False, members)
        return _Addr(name, 4)

    def ip_block(self, peer: IPBlockPeer) -> _Addr:
        version = peer.network.version
        holes = list(peer.excepts)
        if not self.state.ipblock_matches_pods and version == 4:
            holes += [str(ipaddress.IPv4Address(ip)) for ip in self._pod_ips]
        name = f"net{version}-" + short_hash("net", peer.cidr, sorted(peer.excepts), self.state.ipblock_matches_pods)
        if name not in self.sets:
            spans = cidr_minus(peer.cidr, holes)
            self.sets[name] = NftSet(name, _V4 if version == 4 else _V6, True, frozenset((s,) for s in spans))
        return _Addr(name, version)

    def ports(self, spans: Iterable[tuple[str, int, int]]) -> str | None:
        """A shared ``proto . port`` interval set for these ranges (None when empty)."""
        by_proto: dict[str, list[tuple[int, int]]] = {}
        for proto, lo, hi in spans:
            by_proto.setdefault(proto.lower(), []).append((lo, hi))
        elems = frozenset((proto, span) for proto, spans_ in by_proto.items() for span in merge_intervals(spans_))
        if not elems:
            return None
        name = "ports-" + short_hash("ports", sorted(elems))
        self.sets.setdefault(name, NftSet(name, _PORTS, True, elems))
        return name

    def named_ports(self, pol: PolicyIR, rule: Rule, named: list[PortMatch]) -> str | None:
        """Egress named ports, resolved on every peer pod: an ``ip . proto . port`` set."""
        name = "nport-" + short_hash("nport", pol.ref, rule.direction, rule.index)
        if name in self.sets:
            return name
        elems = set()
        for ep in self.state.pods:
            if not ep.is_pod or not ep.ip or ":" in ep.ip:
                continue
            if rule.peers is not None and not any(peer_matches(p, ep, self.state) for p in rule.peers):
                continue
            ip = int(ipaddress.ip_address(ep.ip))
            for pm in named:
                span = pm.resolve(dict(ep.named_ports))
                if span is not None:
                    elems.add(((ip, ip), pm.protocol.lower(), span))
        self.sets[name] = NftSet(name, _NAMED, True, frozenset(elems))
        return name


def _addr_match(addr: _Addr, field: str) -> dict[str, Any]:
    return _match(_payload("ip" if addr.version == 4 else "ip6", field), "@" + addr.set_name)


def _rule_rules(b: _Builder, pol: PolicyIR, rule: Rule, pod: Endpoint) -> list[NftRule]:
    """One NetworkPolicy rule → nft rules for one selected pod (OR over peers, × ports)."""
    ingress = rule.direction == "ingress"
    field = "saddr" if ingress else "daddr"
    verdict = ACCEPT if ingress else RETURN
    where = f"{pol.ref} {rule.provenance.field_path}"
    if rule.peers is None:
        matchers: list[tuple[list[Any], str]] = [([], where)]
    else:
        matchers = []
        for peer in rule.peers:
            addr = b.pod_peer(peer) if isinstance(peer, PodPeer) else b.ip_block(peer)
            matchers.append(([_addr_match(addr, field)], f"{pol.ref} {peer.provenance.field_path}"))
    if rule.ports is None:
        return [NftRule.make(m + [COUNTER, verdict], text) for m, text in matchers]
    numeric: list[tuple[str, int, int]] = []
    named: list[PortMatch] = []
    for pm in rule.ports:
        if pm.is_named and not ingress:
            named.append(pm)
            continue
        span = pm.resolve(dict(pod.named_ports) if ingress else None)
        if span is not None:
            numeric.append((pm.protocol, span[0], span[1]))
    out: list[NftRule] = []
    port_set = b.ports(numeric)
    if port_set is not None:
        out += [NftRule.make(m + [_match(_L4_DPORT, "@" + port_set), COUNTER, verdict], text + " ports")
                for m, text in matchers]
    if named:
        nset = b.named_ports(pol, rule, named)
        key = {"concat": [_payload("ip", "daddr"), _meta("l4proto"), _payload("th", "dport")]}
        out.append(NftRule.make([_match(key, "@" + nset), COUNTER, verdict], f"{where} named ports"))
    return out


# --- per-pod chains --------------------------------------------------------------------------


def _egress_chain(b: _Builder, pod: Endpoint, ifname: str, policies: tuple[PolicyIR, ...]) -> NftChain:
    assert pod.ip is not None
    version = ipaddress.ip_address(pod.ip).version
    fam, proto = ("ipv4", "ip") if version == 4 else ("ipv6", "ip6")
    rules = [
        NftRule.make([_match(_meta("nfproto"), fam, "!="), COUNTER, DROP], f"{pod.key}: anti-spoofing (no other family)"),
        NftRule.make([_match(_payload(proto, "saddr"), pod.ip, "!="), COUNTER, DROP],
                     f"{pod.key}: anti-spoofing (source must be {pod.ip})"),
    ]
    isolating = [p for p in policies if "egress" in p.isolates]
    if not isolating:
        rules.append(NftRule.make([COUNTER, RETURN], f"{pod.key}: egress not isolated"))
    else:
        for pol in isolating:
            for rule in pol.egress:
                rules += _rule_rules(b, pol, rule, pod)
        refs = ", ".join(p.ref for p in isolating)
        rules.append(NftRule.make([COUNTER, DROP], f"{pod.key}: default deny egress (isolated by {refs})"))
    return NftChain(f"fw-{ifname}", tuple(rules))


def _ingress_chain(b: _Builder, pod: Endpoint, ifname: str, policies: tuple[PolicyIR, ...],
                   node_ips: tuple[str, ...]) -> NftChain:
    rules: list[NftRule] = []
    for ip in node_ips:
        proto = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
        rules.append(NftRule.make([_match(_payload(proto, "saddr"), ip), COUNTER, ACCEPT],
                                  f"{pod.key}: from its own node"))
    for pol in policies:
        for rule in pol.ingress:
            rules += _rule_rules(b, pol, rule, pod)
    refs = ", ".join(p.ref for p in policies)
    rules.append(NftRule.make([COUNTER, DROP], f"{pod.key}: default deny ingress (isolated by {refs})"))
    return NftChain(f"tw-{ifname}", tuple(rules))


def local_pods(state: ClusterState, node: str) -> list[Endpoint]:
    """Pod-network pods bound to ``node`` that have an address (the ones to program)."""
    return [ep for ep in state.pods if ep.selectable and ep.node == node and ep.ip]


def render(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
           interfaces: Mapping[str, str] | None = None) -> NftTable:
    """The desired ``inet podnet`` table for ``node``.

    ``interfaces`` maps ``ns/pod`` to the host-side interface when it is not Calico's default
    name; ``node_ips`` adds node addresses to the pods' own ``status.hostIP``.
    """
    b = _Builder(state)
    chains = base_chains()
    from_map: dict[str, tuple[str, ...]] = {}
    to_map: dict[str, tuple[str, ...]] = {}
    for pod in local_pods(state, node):
        ifname = (interfaces or {}).get(pod.key) or workload_ifname(pod.namespace or "default", pod.name or "")
        policies = state.selecting_any(pod)
        egress = _egress_chain(b, pod, ifname, policies)
        chains[egress.name] = egress
        from_map[ifname] = ("goto", egress.name)
        isolating = tuple(p for p in policies if "ingress" in p.isolates)
        if isolating:
            ips = tuple(sorted({*node_ips, *([pod.host_ip] if pod.host_ip else [])}))
            ingress = _ingress_chain(b, pod, ifname, isolating, ips)
            chains[ingress.name] = ingress
            to_map[ifname] = ("goto", ingress.name)
        else:
            to_map[ifname] = ("accept",)
    maps = {FROM_MAP: NftMap(FROM_MAP, "ifname", from_map), TO_MAP: NftMap(TO_MAP, "ifname", to_map)}
    return NftTable(sets=dict(sorted(b.sets.items())), maps=maps, chains=dict(sorted(chains.items())))


def describe_rule(comment: str) -> str:
    """A rule comment without its hash mark (for explanations)."""
    return comment.split(" ", 1)[1] if " " in comment else comment


__all__ = ["render", "workload_ifname", "local_pods", "base_chains", "describe_rule", "FROM_MAP", "TO_MAP"]
