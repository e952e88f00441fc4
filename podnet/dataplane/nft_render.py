"""Policy IR → the ``inet podnet`` nftables table of one node (pure: state in, values out).

Layout (Calico's, in nftables terms)::

    forward (hook forward)  ct established,related accept; ct invalid drop;
                            iifname "cali*" goto from-wl; oifname "cali*" goto to-wl
    input   (hook input)    non-cali accept; ct …; goto from-wl      (a pod talking to its node)
    from-wl                 iifname . ip saddr vmap @from-pod  → goto egress-<sig> | goto egress-ok
                            iifname @pod-ifaces drop  (anti-spoofing: a known veth, a wrong source)
                            drop                      (unknown cali*: fail closed until programmed)
    to-wl                   oifname vmap @to-pod  → goto ingress-<sig> | accept ; else drop
    egress-<sig>            jump po-<policy> for each egress policy selecting the pods; drop
    ingress-<sig>           own node accept; jump pi-<policy> for each; drop
    po-<policy> / pi-<policy>   the policy's rules, once per node: allow = goto egress-ok / accept
    egress-ok               oifname "cali*" goto to-wl; accept   (egress allowed: now ingress)

``<sig>`` names the ordered list of policies that isolate a pod, so pods selected by the same
policies share one chain, and each policy's rules are rendered once per node: rules grow with
policies + pods, not their product. A pod is two map elements (and one set element); a label
change moves it between chains by changing its map elements, and changes peer sets by single
elements. Pod peers are named IP sets, one per selector, shared by every rule that uses it;
ipBlocks are interval sets (cidr minus excepts); ports are anonymous ``inet_proto .
inet_service`` interval sets in the rule; named ports resolve per destination in ``ip . proto . port`` sets (ingress: the
selected local pods; egress: every peer pod). Comments name the policy and manifest field.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

from podnet.policy.cluster import ClusterState, Endpoint, peer_matches
from podnet.policy.ir import IPBlockPeer, PodPeer, PolicyIR, PortMatch, Rule

from .nft_model import (NftChain, NftMap, NftRule, NftSet, NftTable, cidr_minus, element_json, merge_intervals,
                        short_hash)

FROM_MAP, TO_MAP, POD_IFACES = "from-pod", "to-pod", "pod-ifaces"
FROM_WL, TO_WL, EGRESS_OK = "from-wl", "to-wl", "egress-ok"
IFACE_PREFIX = "cali"
_V4 = ("ipv4_addr",)
_V6 = ("ipv6_addr",)
_PORTS = ("inet_proto", "inet_service")
_NAMED = ("ipv4_addr", "inet_proto", "inet_service")


@lru_cache(maxsize=65536)
def _ip_int(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


@lru_cache(maxsize=65536)
def workload_ifname(namespace: str, name: str) -> str:
    """The pod's host-side veth name, as Calico's CNI plugin names it (cali + 11 hex of sha1)."""
    return IFACE_PREFIX + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


def policy_chain(pol: PolicyIR, direction: str) -> str:
    """``pi-``/``po-`` + a hash of ``ns/name`` (Calico's cali-pi-/cali-po-)."""
    return _policy_chain_name(pol.ref, direction)


@lru_cache(maxsize=65536)
def _policy_chain_name(ref: str, direction: str) -> str:
    return ("pi-" if direction == "ingress" else "po-") + short_hash("policy", ref)


def _sig_chain(direction: str, policies: tuple[PolicyIR, ...]) -> str:
    return _sig_chain_name(direction, tuple(p.ref for p in policies))


@lru_cache(maxsize=4096)
def _sig_chain_name(direction: str, refs: tuple[str, ...]) -> str:
    return f"{direction}-" + short_hash(direction, list(refs))


# --- expression helpers ----------------------------------------------------------------------


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _payload(proto: str, fld: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": fld}}


def _goto(chain: str) -> dict[str, Any]:
    return {"goto": {"target": chain}}


def _jump(chain: str) -> dict[str, Any]:
    return {"jump": {"target": chain}}


_CT_STATE = {"ct": {"key": "state"}}
_L4_DPORT = {"concat": [_meta("l4proto"), _payload("th", "dport")]}
ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
COUNTER: dict[str, Any] = {"counter": None}
_CALI = IFACE_PREFIX + "*"


def _ct_rules() -> list[NftRule]:
    return [
        NftRule.make([_match(_CT_STATE, ["established", "related"], "in"), ACCEPT], "replies and related traffic"),
        NftRule.make([_match(_CT_STATE, "invalid", "in"), COUNTER, DROP], "invalid conntrack state"),
    ]


def base_chains() -> dict[str, NftChain]:
    """The fixed part: hooks, the dispatch chains and egress-ok."""
    forward = NftChain("forward", tuple(_ct_rules() + [
        NftRule.make([_match(_meta("iifname"), _CALI), _goto(FROM_WL)], "from a pod: its egress policy"),
        NftRule.make([_match(_meta("oifname"), _CALI), _goto(TO_WL)], "to a pod: its ingress policy"),
    ]), hook="forward")
    inp = NftChain("input", tuple(
        [NftRule.make([_match(_meta("iifname"), _CALI, "!="), ACCEPT], "not from a pod: not ours to filter")]
        + _ct_rules()
        + [NftRule.make([_goto(FROM_WL)], "pod to its node: its egress policy")]), hook="input")
    from_wl = NftChain(FROM_WL, (
        NftRule.make([{"vmap": {"key": {"concat": [_meta("iifname"), _payload("ip", "saddr")]}, "data": "@" + FROM_MAP}}],
                     "dispatch by pod interface and its address"),
        NftRule.make([_match(_meta("iifname"), "@" + POD_IFACES), COUNTER, DROP],
                     "anti-spoofing: source is not the pod's address"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    to_wl = NftChain(TO_WL, (
        NftRule.make([{"vmap": {"key": _meta("oifname"), "data": "@" + TO_MAP}}], "dispatch by pod interface"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    egress_ok = NftChain(EGRESS_OK, (
        NftRule.make([_match(_meta("oifname"), _CALI), _goto(TO_WL)], "egress allowed; to a pod here: its ingress policy"),
        NftRule.make([COUNTER, ACCEPT], "egress allowed"),
    ))
    return {c.name: c for c in (forward, inp, from_wl, to_wl, egress_ok)}


# --- peers and ports -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Addr:
    """One address matcher: a named set and its address family."""

    set_name: str
    version: int


class _Builder:
    """Collects shared sets while chains are rendered; caches per-peer memberships."""

    def __init__(self, state: ClusterState, local: list[Endpoint]) -> None:
        self.state = state
        self.local = local
        self.sets: dict[str, NftSet] = {}
        #: pod-selector sets by name, with the peer that defines their members
        self.pod_peers: dict[str, PodPeer] = {}
        #: the set-making calls made while rendering one policy chain (replayed on a memo hit)
        self.requests: list[tuple[Any, ...]] | None = None
        self._pod_ips = tuple(sorted(
            {_ip_int(p.ip) for p in state.pods if p.selectable and p.ip and ":" not in p.ip}))
        self._groups = self._label_groups()

    def _label_groups(self) -> list[tuple[Endpoint, tuple[int, ...]]]:
        """Pod-network pods grouped by (namespace, labels): selectors run once per group."""
        groups: dict[tuple[Any, ...], tuple[Endpoint, list[int]]] = {}
        for ep in self.state.pods:
            if not ep.selectable or not ep.ip or ":" in ep.ip:
                continue
            key = (ep.namespace, tuple(sorted(ep.labels.items())))
            groups.setdefault(key, (ep, []))[1].append(_ip_int(ep.ip))
        return [(ep, tuple(ips)) for _, (ep, ips) in sorted(groups.items(), key=lambda kv: kv[0])]

    def _note(self, *request: Any) -> None:
        if self.requests is not None:
            self.requests.append(request)

    def replay(self, requests: list[tuple[Any, ...]]) -> None:
        for kind, *args in requests:
            getattr(self, kind)(*args)

    def pod_peer(self, peer: PodPeer) -> _Addr:
        self._note("pod_peer", peer)
        scope = peer.namespace if peer.namespace_selector is None else peer.namespace_selector.to_dict()
        name = "pods-" + short_hash("pods", scope, peer.pod_selector.to_dict())
        self.pod_peers.setdefault(name, peer)
        if name not in self.sets:
            members = frozenset(((ip, ip),) for ep, ips in self._groups if peer_matches(peer, ep, self.state)
                                for ip in ips)
            self.sets[name] = NftSet(name, _V4, False, members)
        return _Addr(name, 4)

    def ip_block(self, peer: IPBlockPeer) -> _Addr:
        self._note("ip_block", peer)
        version = peer.network.version
        holes = list(peer.excepts)
        if not self.state.ipblock_matches_pods and version == 4:
            holes += [str(ipaddress.IPv4Address(ip)) for ip in self._pod_ips]
        name = f"net{version}-" + short_hash("net", peer.cidr, sorted(peer.excepts), self.state.ipblock_matches_pods)
        if name not in self.sets:
            spans = cidr_minus(peer.cidr, holes)
            self.sets[name] = NftSet(name, _V4 if version == 4 else _V6, True, frozenset((s,) for s in spans))
        return _Addr(name, version)

    @staticmethod
    def ports(spans: Iterable[tuple[str, int, int]]) -> dict[str, Any] | None:
        """The ranges as an anonymous ``proto . port`` interval set (None when empty).

        Anonymous, not named: the set changes only with the policy, which rewrites the chain
        anyway, and every named set makes each later transaction slower (libnftables fetches
        all set definitions before it commits an element)."""
        by_proto: dict[str, list[tuple[int, int]]] = {}
        for proto, lo, hi in spans:
            by_proto.setdefault(proto.lower(), []).append((lo, hi))
        elems = sorted((proto, span) for proto, spans_ in by_proto.items() for span in merge_intervals(spans_))
        if not elems:
            return None
        return {"set": [element_json(e, _PORTS) for e in elems]}

    def named_ports(self, pol: PolicyIR, rule: Rule, named: list[PortMatch]) -> str:
        """Named ports resolved on each destination, as an ``ip . proto . port`` set: for ingress
        the local pods the policy selects, for egress every pod the rule's peers match."""
        self._note("named_ports", pol, rule, named)
        name = "nport-" + short_hash("nport", pol.ref, rule.direction, rule.index)
        if name in self.sets:
            return name
        if rule.direction == "ingress":
            dests = [ep for ep in self.local if pol.selects(ep.namespace or "", dict(ep.labels))]
        else:
            dests = [ep for ep in self.state.pods if ep.is_pod and (
                rule.peers is None or any(peer_matches(p, ep, self.state) for p in rule.peers))]
        elems = set()
        for ep in dests:
            if not ep.ip or ":" in ep.ip:
                continue
            ip = _ip_int(ep.ip)
            for pm in named:
                span = pm.resolve(dict(ep.named_ports))
                if span is not None:
                    elems.add(((ip, ip), pm.protocol.lower(), span))
        self.sets[name] = NftSet(name, _NAMED, True, frozenset(elems))
        return name


def _addr_match(addr: _Addr, field: str) -> dict[str, Any]:
    return _match(_payload("ip" if addr.version == 4 else "ip6", field), "@" + addr.set_name)


def _rule_rules(b: _Builder, pol: PolicyIR, rule: Rule) -> list[NftRule]:
    """One NetworkPolicy rule → nft rules (OR over peers, × the port sets)."""
    ingress = rule.direction == "ingress"
    field = "saddr" if ingress else "daddr"
    verdict = ACCEPT if ingress else _goto(EGRESS_OK)
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
    numeric = [(pm.protocol, pm.port if pm.port is not None else 0,
                (pm.end_port or pm.port) if pm.port is not None else 65535)
               for pm in rule.ports if not pm.is_named]
    named = [pm for pm in rule.ports if pm.is_named]
    out: list[NftRule] = []
    port_set = b.ports(numeric)  # type: ignore[arg-type]
    if port_set is not None:
        out += [NftRule.make(m + [_match(_L4_DPORT, port_set), COUNTER, verdict], text + " ports")
                for m, text in matchers]
    if named:
        nset = b.named_ports(pol, rule, named)
        key = {"concat": [_payload("ip", "daddr"), _meta("l4proto"), _payload("th", "dport")]}
        out += [NftRule.make(m + [_match(key, "@" + nset), COUNTER, verdict], text + " named ports")
                for m, text in matchers]
    return out


class RenderMemo:
    """Per-policy chains from earlier renders, reused while the policy is the same object (the
    agent keeps compiled policies by resourceVersion). Only a cache: output is identical with
    or without it. The sets a chain needs are rebuilt every time, from the current pods."""

    def __init__(self) -> None:
        self._chains: dict[tuple[int, str, bool], tuple[PolicyIR, NftChain, list[tuple[Any, ...]]]] = {}
        self._used: set[tuple[int, str, bool]] = set()

    def chain(self, b: _Builder, pol: PolicyIR, direction: str) -> NftChain:
        key = (id(pol), direction, b.state.ipblock_matches_pods)
        self._used.add(key)
        hit = self._chains.get(key)
        if hit is not None and hit[0] is pol:
            b.replay(hit[2])
            return hit[1]
        b.requests = []
        try:
            chain = _policy_chain(b, pol, direction)
            self._chains[key] = (pol, chain, b.requests)
        finally:
            b.requests = None
        return chain

    def sweep(self) -> None:
        """Forget chains the last render did not use."""
        for key in set(self._chains) - self._used:
            del self._chains[key]
        self._used.clear()


def _policy_chain(b: _Builder, pol: PolicyIR, direction: str) -> NftChain:
    rules: list[NftRule] = []
    for rule in pol.rules(direction):  # type: ignore[arg-type]
        rules += _rule_rules(b, pol, rule)
    return NftChain(policy_chain(pol, direction), tuple(rules))


def _signature_chain(direction: str, policies: tuple[PolicyIR, ...], node_ips: tuple[str, ...]) -> NftChain:
    return _signature_chain_of(direction, tuple(p.ref for p in policies), node_ips)


@lru_cache(maxsize=4096)
def _signature_chain_of(direction: str, refs: tuple[str, ...], node_ips: tuple[str, ...]) -> NftChain:
    rules: list[NftRule] = []
    if direction == "ingress":
        for ip in node_ips:
            proto = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
            rules.append(NftRule.make([_match(_payload(proto, "saddr"), ip), COUNTER, ACCEPT], "from the pod's own node"))
    rules += [NftRule.make([_jump(_policy_chain_name(ref, direction))], f"{ref} ({direction})") for ref in refs]
    rules.append(NftRule.make([COUNTER, DROP], f"default deny {direction} (isolated by {', '.join(refs)})"))
    return NftChain(_sig_chain_name(direction, refs), tuple(rules))


def local_pods(state: ClusterState, node: str) -> list[Endpoint]:
    """Pod-network pods bound to ``node`` that have an IPv4 address (the ones to program)."""
    return [ep for ep in state.pods if ep.selectable and ep.node == node and ep.ip and ":" not in ep.ip]


@dataclass(frozen=True)
class RenderIndex:
    """What the last full render knew that a per-pod update needs (see ``nft_incremental``)."""

    node: str
    own: tuple[str, ...]
    interfaces: Mapping[str, str]
    pod_sets: Mapping[str, PodPeer]
    #: sets whose members depend on pods in ways a per-pod update does not redo
    pod_dependent_extras: bool
    #: signature chain → (direction, the refs of the policies it jumps to, in order)
    signatures: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: the addresses the ingress signature chains accept as the pod's own node
    sig_own: tuple[str, ...] = ()


def render(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
           interfaces: Mapping[str, str] | None = None, memo: RenderMemo | None = None) -> NftTable:
    """The desired ``inet podnet`` table for ``node`` (see ``render_indexed``)."""
    return render_indexed(state, node, node_ips=node_ips, interfaces=interfaces, memo=memo)[0]


def render_indexed(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
                   interfaces: Mapping[str, str] | None = None,
                   memo: RenderMemo | None = None) -> tuple[NftTable, RenderIndex]:
    """The desired ``inet podnet`` table for ``node``.

    ``interfaces`` maps ``ns/pod`` to the host-side interface when it is not Calico's default
    name; ``node_ips`` adds node addresses to the pods' own ``status.hostIP``; ``memo`` (kept
    by the caller between renders) skips re-rendering the chains of unchanged policies.
    """
    local = local_pods(state, node)
    b = _Builder(state, local)
    chains = base_chains()
    own = tuple(sorted({*node_ips, *(p.host_ip for p in local if p.host_ip)}))
    from_map: dict[tuple[str, ...], tuple[str, ...]] = {}
    to_map: dict[tuple[str, ...], tuple[str, ...]] = {}
    ifaces: set[tuple[str]] = set()
    policies_needed: dict[tuple[str, str], PolicyIR] = {}
    # Pods with the same namespace and labels are selected by the same policies: decide once.
    verdicts: dict[tuple[Any, ...], dict[str, tuple[str, ...]]] = {}
    signatures: dict[str, tuple[str, tuple[str, ...]]] = {}
    for pod in local:
        ifname = (interfaces or {}).get(pod.key) or workload_ifname(pod.namespace or "default", pod.name or "")
        ifaces.add((ifname,))
        group = (pod.namespace, tuple(sorted(pod.labels.items())))
        decided = verdicts.get(group)
        if decided is None:
            decided = verdicts[group] = {}
            selecting = state.selecting_any(pod)
            for direction, allow in (("egress", ("goto", EGRESS_OK)), ("ingress", ("accept",))):
                isolating = tuple(p for p in selecting if direction in p.isolates)
                if not isolating:
                    decided[direction] = allow
                    continue
                sig = _sig_chain(direction, isolating)
                if sig not in chains:
                    chains[sig] = _signature_chain(direction, isolating, own)
                    signatures[sig] = (direction, tuple(p.ref for p in isolating))
                for p in isolating:
                    policies_needed[(direction, p.ref)] = p
                decided[direction] = ("goto", sig)
        from_map[(ifname, str(pod.ip))] = decided["egress"]
        to_map[(ifname,)] = decided["ingress"]
    for (direction, _ref), pol in sorted(policies_needed.items()):
        chain = memo.chain(b, pol, direction) if memo is not None else _policy_chain(b, pol, direction)
        chains[chain.name] = chain
    if memo is not None:
        memo.sweep()
    b.sets[POD_IFACES] = NftSet(POD_IFACES, ("ifname",), False, frozenset(ifaces))
    maps = {FROM_MAP: NftMap(FROM_MAP, ("ifname", "ipv4_addr"), from_map),
            TO_MAP: NftMap(TO_MAP, ("ifname",), to_map)}
    table = NftTable(sets=dict(sorted(b.sets.items())), maps=maps, chains=dict(sorted(chains.items())))
    extras = any(n.startswith("nport-") for n in b.sets) or (
        not state.ipblock_matches_pods and any(n.startswith("net") for n in b.sets))
    index = RenderIndex(node, tuple(sorted(set(node_ips))), dict(interfaces or {}), dict(b.pod_peers), extras,
                        signatures, own)
    return table, index


def describe_rule(comment: str) -> str:
    """A rule comment without its hash mark (for explanations)."""
    return comment.split(" ", 1)[1] if " " in comment else comment


__all__ = ["render", "render_indexed", "RenderIndex", "RenderMemo", "workload_ifname", "local_pods", "base_chains", "describe_rule", "policy_chain",
           "FROM_MAP", "TO_MAP"]
