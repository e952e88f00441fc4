"""Tiered policy → the ``inet podnet`` table (pure), as Felix lays out tiers in iptables.

Used instead of the Kubernetes-only signature chains when any tiered kind (Calico
NetworkPolicy/GlobalNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy,
ClusterNetworkPolicy) is in the state; without one the table is exactly ``render``'s.

A pod's dispatch entry points at the chain of the tiers that apply to it in that direction
(``ClusterState.tiers_for``: the walk's own list, so the table and the engine cannot disagree on
which tiers count)::

    tw-<hash of [(tier, policies), …rest]>     one chain per remaining tier list, shared by every
        meta mark clear PASS                   pod whose remaining tiers are the same
        (ingress) from the pod's own node: accept
        jump tp-/tq-<policy>                   for each policy of the tier, in order, each followed by
        mark & PASS: clear, goto tw-<rest>     (Pass: on to the next tier; none left: allowed, the
                                               last tier first logging which Pass rule it was)
        drop | goto tw-<rest>                  end of tier: defaultAction Deny drops (only pods some
                                               policy of the tier selects get here), Pass goes on
    tp-<policy> / tq-<policy>                  the policy's rules in order (ingress / egress); one
        … log prefix "…" (rate-limited)       Log: noted, the walk goes on
        … accept | goto egress-ok              Allow
        … drop                                 Deny (a drop, not a reject, as Calico)
        … mark |= PASS | index; return         Pass (the rule's index rides in the mark)

Flow logs (``flowlog``): every decision carries the same NFLOG statements as the Kubernetes
table, named by tier, policy, rule index and action. An Allow logs each new connection on the
rule itself; a Deny and a tier's end drop are logged by a rate-limited rule of their own just
before the counting drop; a Pass with no tier left and the last tier's passing end log on the
tier chain's accepting rule. A Pass that leads to another tier logs nothing: the tier that
decides does.

Peers that are not Kubernetes pod selectors or ipBlocks (Calico entities with nets, notNets,
selectors, notSelector, NetworkSets; ANP networks and nodes) become one interval set of IPv4
addresses each, computed with the engine's own matching (``ClusterState.entity_matches`` is what
the interval algebra here reproduces), so Calico's "selectors match by address" holds in the
kernel too. The verdict statements are built in one place (``verdict_*``), one function per
rule action.

``render_tiered_layout`` also returns the layout (each local group's tier lists, the sets each
policy chain asked for, the peers behind the pod-dependent sets) that the live planner
(``tiers_live``) plans later changes from, rendering what they touch with the same functions.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podnet.errors import PodnetError
from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.ir import (
    Direction,
    EntityPeer,
    IPBlockPeer,
    NetworkPeer,
    NodePeer,
    Peer,
    PodPeer,
    PolicyIR,
    PortMatch,
    Rule,
)
from podnet.policy.order import TierInfo

from . import flowlog
from .expr import ACCEPT, COUNTER, DROP, Expr, concat, goto, jump, match, meta, payload
from .model import NftChain, NftMap, NftRule, NftSet, NftTable, interval_of, merge_intervals, short_hash
from .render import (
    ALLOW,
    EGRESS_OK,
    FROM_MAP,
    POD_IFACES,
    TABLE,
    TO_MAP,
    RenderIndex,
    SetBuilder,
    base_chains,
    dispatch_keys,
    local_pods,
)

#: the packet mark bit a Pass sets for its tier chain (Felix uses a mark bit the same way), and
#: the bits beside it that carry the Pass rule's index to the flow log (``PASS_INDEX_MAX``: an
#: index this large or larger, logged without its index)
PASS_MARK = 0x01000000
PASS_INDEX_SHIFT, PASS_INDEX_MAX = 16, 0xFF
PASS_FIELD = PASS_MARK | PASS_INDEX_MAX << PASS_INDEX_SHIFT
_ALL_BITS = 0xFFFFFFFF
#: at most this many log lines a second per rule (then ``burst`` more), so a flood cannot fill the log
LOG_RATE, LOG_BURST = 10, 5
_V4_MAX = 2**32 - 1
_L4_DPORT = concat(meta("l4proto"), payload("th", "dport"))
_MARK = meta("mark")
Spans = list[tuple[int, int]]
#: (tier, the refs of its policies that apply, in order) for each tier left to walk
TierList = tuple[tuple[str, tuple[str, ...]], ...]


def tier_chain_name(direction: str, tiers: TierList) -> str:
    return f"tw-{direction[0]}-" + short_hash("tiers", direction, [list(t) for t in tiers])


def tiered_policy_chain_name(ref: str, direction: str) -> str:
    """``tp-``/``tq-`` + a hash of the policy's ref (ingress/egress; Calico's cali-pi-/cali-po-)."""
    return ("tp-" if direction == "ingress" else "tq-") + short_hash("tiered", ref)


# --- verdicts: one function per rule action ---------------------------------------------------


def verdict_allow(direction: Direction, egress_ok: str) -> list[Expr]:
    """Allow: ingress accepts; egress goes on to the destination's ingress policy."""
    return [COUNTER, ACCEPT if direction == "ingress" else goto(egress_ok)]


def verdict_deny() -> list[Expr]:
    """Deny drops (Calico does not reject)."""
    return [COUNTER, DROP]


def pass_code(index: int) -> int:
    """The mark field of a Pass by rule ``index``."""
    return PASS_MARK | min(index, PASS_INDEX_MAX) << PASS_INDEX_SHIFT


def verdict_pass(index: int) -> list[Expr]:
    """Pass: mark the packet (with the rule's index) and return to the tier chain, which goes on
    to the next tier. The mask is written as nft lists it back (the value's bits included)."""
    code = pass_code(index)
    mask = (_ALL_BITS ^ PASS_FIELD) | code
    return [COUNTER, {"mangle": {"key": _MARK, "value": {"|": [{"&": [_MARK, mask]}, code]}}}, {"return": None}]


def log_prefix(tier: str, pol: PolicyIR, rule: Rule) -> str:
    """``podnet <tier>/<policy>/<direction>[<index>]: `` within the kernel's 127 characters."""
    text = f"podnet {tier}/{pol.ref}/{rule.direction}[{rule.index}]"
    return text[:120] + ": "


def verdict_log(tier: str, pol: PolicyIR, rule: Rule) -> list[Expr]:
    """Log: a rate-limited log line naming tier, policy and rule; not a verdict (the walk goes on)."""
    return [{"limit": {"rate": LOG_RATE, "burst": LOG_BURST, "per": "second"}},
            {"log": {"prefix": log_prefix(tier, pol, rule), "level": "info"}}]


def verdict_for(rule: Rule, tier: str, pol: PolicyIR, egress_ok: str) -> list[Expr]:
    if rule.action == "Allow":  # each new connection it allows, logged on the rule itself
        log = flowlog.log_stmt(flowlog.allow_rule_id(pol.ref, rule.direction, rule.index, tier))
        counted, last = verdict_allow(rule.direction, egress_ok)
        return [counted, log, last]
    if rule.action == "Deny":
        return verdict_deny()
    if rule.action == "Pass":
        return verdict_pass(rule.index)
    return verdict_log(tier, pol, rule)


def deny_log(rule_id: flowlog.RuleId) -> list[Expr]:
    """The rate-limited flow log of a drop: a rule of its own before the counting drop rule (a
    limit over its rate ends the rule, so it cannot sit on the drop rule itself)."""
    return [flowlog.limit_stmt(), flowlog.log_stmt(rule_id)]


def _clear_pass() -> Expr:
    return {"mangle": {"key": _MARK, "value": {"&": [_MARK, _ALL_BITS ^ PASS_FIELD]}}}


def _passed() -> Expr:
    return match({"&": [_MARK, PASS_MARK]}, PASS_MARK)


def _passed_by(index: int) -> Expr:
    return match({"&": [_MARK, PASS_FIELD]}, pass_code(index))


# --- addresses as interval algebra -----------------------------------------------------------


def _v4_spans(networks: Iterable[Any]) -> Spans:
    return merge_intervals((int(n.network_address), int(n.broadcast_address)) for n in networks if n.version == 4)


def _intersect(a: Spans, b: Spans) -> Spans:
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def spans_minus(a: Spans, holes: Spans) -> Spans:
    """``a`` without ``holes``; both sorted, and no two holes overlap."""
    out: Spans = []
    for lo, hi in a:
        for hlo, hhi in holes:
            if hhi < lo or hlo > hi:
                continue
            if hlo > lo:
                out.append((lo, hlo - 1))
            lo = hhi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return out


def _v4_ip(ep: Endpoint) -> int | None:
    if not ep.ip or ":" in ep.ip:
        return None
    return int(ipaddress.IPv4Address(ep.ip))


class TierSets:
    """The interval sets of the tiered peers, named by what decides their members."""

    def __init__(self, state: ClusterState, existing: Container[str] = frozenset()) -> None:
        self.state = state
        #: sets there are already (the live planner's table): named, not computed again
        self._existing = existing
        self.sets: dict[str, NftSet] = {}
        self._pods = [(ep, ip) for ep in state.pods if ep.selectable for ip in [_v4_ip(ep)] if ip is not None]
        # pods alike in everything a selector reads are decided once (a representative, addresses)
        groups: dict[tuple[Any, ...], tuple[Endpoint, list[int]]] = {}
        for ep, ip in self._pods:
            key = (ep.namespace, tuple(sorted(ep.labels.items())), ep.service_account)
            groups.setdefault(key, (ep, []))[1].append(ip)
        self._groups = list(groups.values())
        #: the peer that defines each pod-dependent set's members (``ent-``, ``tpod-``), for the
        #: live planner (``tiers_live``), which redoes a set's membership at one address
        self.peers: dict[str, Peer] = {}
        #: the sets asked for since ``requested`` was set to a list (one policy chain's render)
        self.requested: list[str] | None = None
        #: the named-port sets: name → (policy ref, direction, rule index) they resolve for
        self.named: dict[str, tuple[str, Direction, int]] = {}

    def _named(self, kind: str, key: object, spans: Callable[[], Spans]) -> str:
        """The set for ``key``; its members are computed only the first time it is asked for."""
        name = f"{kind}-" + short_hash(kind, repr(key))
        if self.requested is not None:
            self.requested.append(name)
        if name not in self.sets and name not in self._existing:
            self.sets[name] = NftSet(name, ("ipv4_addr",), True, frozenset((s,) for s in merge_intervals(spans())))
        return name

    def _pod_spans(self, test: Callable[[Endpoint], bool]) -> Spans:
        return merge_intervals((ip, ip) for ep, ips in self._groups if test(ep) for ip in ips)

    def entity(self, peer: EntityPeer) -> str:
        """``ClusterState.entity_matches`` over every IPv4 address, as intervals."""
        name = self._named("ent", peer.key, lambda: self._entity_spans(peer))
        self.peers.setdefault(name, peer)
        return name

    def _entity_spans(self, peer: EntityPeer) -> Spans:
        st = self.state
        spans: Spans = _v4_spans(peer.networks) if peer.nets else [(0, _V4_MAX)]
        if peer.has_positive:
            positive = merge_intervals(self._pod_spans(lambda ep: st.entity_pod_positive(peer, ep))
                                       + _v4_spans(st.set_networks(peer, False)))
            spans = _intersect(spans, positive)
        if peer.not_nets:
            spans = spans_minus(spans, _v4_spans(peer.not_networks))
        if peer.not_selector is not None:
            sel = peer.not_selector
            negated = merge_intervals(self._pod_spans(lambda ep: sel.matches(st.calico_labels(ep)))
                                      + _v4_spans(st.set_networks(peer, True)))
            spans = spans_minus(spans, negated)
        return spans

    def network(self, peer: NetworkPeer) -> str:
        return self._named("anet", peer.cidrs, lambda: _v4_spans(peer.networks))

    def nodes(self, peer: NodePeer) -> str:
        addrs = self.state.node_addresses(peer.node_selector)
        return self._named("node", addrs, lambda: [interval_of(a) for a in addrs if ":" not in a])

    def pods(self, peer: PodPeer) -> str:
        st = self.state
        scope = peer.namespace if peer.namespace_selector is None else peer.namespace_selector.to_dict()
        name = self._named("tpod", (scope, peer.pod_selector.to_dict()), lambda: self._pod_spans(
            lambda ep: peer.namespace_in_scope(ep.namespace or "", st.ns_labels(ep.namespace))
            and peer.pod_selector.matches(ep.labels)))
        self.peers.setdefault(name, peer)
        return name

    def ip_block(self, peer: IPBlockPeer) -> str:
        def spans() -> Spans:
            out = _v4_spans([peer.network]) if peer.network.version == 4 else []
            out = spans_minus(out, _v4_spans(peer.except_networks))
            if not self.state.ipblock_matches_pods:
                out = spans_minus(out, self._pod_spans(lambda ep: True))
            return out
        return self._named("tnet", (peer.cidr, peer.excepts, self.state.ipblock_matches_pods), spans)

    def peer(self, peer: Peer) -> str:
        if isinstance(peer, EntityPeer):
            return self.entity(peer)
        if isinstance(peer, NetworkPeer):
            return self.network(peer)
        if isinstance(peer, NodePeer):
            return self.nodes(peer)
        if isinstance(peer, PodPeer):
            return self.pods(peer)
        return self.ip_block(peer)

    def named_ports(self, pol: PolicyIR, rule: Rule, named: Sequence[PortMatch], local: Sequence[Endpoint]) -> str:
        """Named ports resolved on each destination: the local pods the policy applies to
        (ingress) or every pod (egress; the peer match is the rule's own)."""
        dests = [ep for ep in local if self.state.applies(pol, ep)] if rule.direction == "ingress" else [
            ep for ep, _ in self._pods]
        elems = set()
        for ep in dests:
            ip = _v4_ip(ep)
            if ip is None:
                continue
            for pm in named:
                span = pm.resolve(dict(ep.named_ports))
                if span is not None:
                    elems.add(((ip, ip), pm.protocol.lower(), span))
        name = "tnport-" + short_hash("tnport", pol.ref, rule.direction, rule.index)
        if self.requested is not None:
            self.requested.append(name)
        self.named[name] = (pol.ref, rule.direction, rule.index)
        self.sets[name] = NftSet(name, ("ipv4_addr", "inet_proto", "inet_service"), True, frozenset(elems))
        return name


# --- rules and chains ------------------------------------------------------------------------


def _icmp(typ: int | None, code: int | None) -> list[Expr]:
    out = [match(meta("l4proto"), "icmp")]
    if typ is not None:
        out.append(match(payload("icmp", "type"), typ))
        if code is not None:
            out.append(match(payload("icmp", "code"), code))
    return out


def _not_icmp(typ: int | None, code: int | None) -> list[list[Expr]]:
    """Packets an ``notICMP`` lets through, as alternatives that cannot both match."""
    alts = [[match(meta("l4proto"), "icmp", "!=")]]
    if typ is not None:
        alts.append([match(meta("l4proto"), "icmp"), match(payload("icmp", "type"), typ, "!=")])
        if code is not None:
            alts.append(_icmp(typ, None) + [match(payload("icmp", "code"), code, "!=")])
    return alts


def _port_set(ports: Iterable[PortMatch]) -> dict[str, Any] | None:
    """The same anonymous ``proto . port`` interval set as a NetworkPolicy rule's."""
    return SetBuilder.ports((pm.protocol, 0, 65535) if pm.port is None else
                            (pm.protocol, int(pm.port), int(pm.end_port or pm.port)) for pm in ports if not pm.is_named)


def _rule_matches(sets: TierSets, pol: PolicyIR, rule: Rule, local: Sequence[Endpoint]) -> list[list[Expr]] | None:
    """The match expressions of one rule, one list per alternative (OR); None: never matches."""
    if rule.ip_version == 6:
        return None  # the table programs IPv4 pods only
    ingress = rule.direction == "ingress"
    peer_field, local_field = ("saddr", "daddr") if ingress else ("daddr", "saddr")
    base: list[Expr] = []
    if rule.local is not None:
        base.append(match(payload("ip", local_field), "@" + sets.entity(rule.local)))
    if rule.not_protocol is not None:
        base.append(match(meta("l4proto"), rule.not_protocol.lower(), "!="))
    if rule.not_ports:
        if any(pm.is_named for pm in rule.not_ports):
            raise PodnetError(f"{pol.ref} {rule.provenance.field_path}: named notPorts are not compiled into the "
                              "kernel yet; use port numbers")
        not_set = _port_set(rule.not_ports)
        if not_set is not None:
            base.append(match(_L4_DPORT, not_set, "!="))
    peers: list[list[Expr]] = [[]] if rule.peers is None else [
        [match(payload("ip", peer_field), "@" + sets.peer(p))] for p in rule.peers]
    if rule.icmp is not None:
        base += _icmp(rule.icmp.type, rule.icmp.code)
    if rule.not_icmp is not None:  # not (icmp, type, code): three disjoint alternatives
        peers = [p + alt for p in peers for alt in _not_icmp(rule.not_icmp.type, rule.not_icmp.code)]
    if rule.ports is None:
        return [base + p for p in peers]
    out: list[list[Expr]] = []
    port_set = _port_set(rule.ports)
    if port_set is not None:
        out += [base + p + [match(_L4_DPORT, port_set)] for p in peers]
    named = [pm for pm in rule.ports if pm.is_named]
    if named:
        nset = sets.named_ports(pol, rule, named, local)
        key = concat(payload("ip", "daddr"), meta("l4proto"), payload("th", "dport"))
        out += [base + p + [match(key, "@" + nset)] for p in peers]
    return out


def tiered_policy_chain(sets: TierSets, pol: PolicyIR, tier: str, direction: Direction,
                        local: Sequence[Endpoint], egress_ok: str) -> NftChain:
    """A policy's rules in order, each alternative with the rule's verdict."""
    rules: list[NftRule] = []
    for rule in pol.rules(direction):
        alternatives = _rule_matches(sets, pol, rule, local)
        if alternatives is None:
            continue
        verdict = verdict_for(rule, tier, pol, egress_ok)
        text = f"{rule.action} {pol.ref} {rule.provenance.field_path}"
        for m in alternatives:
            if rule.action == "Deny":
                rid = flowlog.denying_rule_id(pol.ref, rule.direction, rule.index, tier)
                rules.append(NftRule.make(m + deny_log(rid), f"flow log: {rid.describe()}"))
            rules.append(NftRule.make(m + verdict, text))
    return NftChain(tiered_policy_chain_name(pol.ref, direction), tuple(rules))


def pass_indices(pol: PolicyIR, direction: Direction) -> list[int]:
    """The mark codes a policy's Pass rules set (indices past ``PASS_INDEX_MAX`` share one)."""
    return sorted({min(r.index, PASS_INDEX_MAX) for r in pol.rules(direction) if r.action == "Pass"})


def _passed_last(tier: str, pol: PolicyIR, direction: Direction, onward: list[Expr]) -> list[NftRule]:
    """A Pass in the last tier: the profile allows; log which Pass rule it was."""
    rules = []
    for index in pass_indices(pol, direction):
        shown = index if index < PASS_INDEX_MAX else flowlog.DEFAULT_DENY
        rid = flowlog.passed_rule_id(pol.ref, direction, shown, tier)
        rules.append(NftRule.make([_passed_by(index), _clear_pass(), flowlog.log_stmt(rid), *onward],
                                  f"{pol.ref} passed: no tier left: the profile allows"))
    return rules


def tier_chains(direction: Direction, tiers: Sequence[tuple[TierInfo, Sequence[PolicyIR]]], own: Sequence[str],
                allow: list[Expr]) -> dict[str, NftChain]:
    """The chains of one remaining-tier list and its suffixes (shared between pods by name)."""
    listed: TierList = tuple((t.name, tuple(p.ref for p in pols)) for t, pols in tiers)
    out: dict[str, NftChain] = {}
    for i in range(len(tiers)):
        tier, pols = tiers[i]
        rest = listed[i + 1:]
        onward = [goto(tier_chain_name(direction, rest))] if rest else allow
        last = "the next tier" if rest else "no tier left: the profile allows"
        rules = [NftRule.make([_clear_pass()], "no Pass seen yet in this tier")]
        if direction == "ingress":
            for ip in own:
                proto = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
                rules.append(NftRule.make([match(payload(proto, "saddr"), ip), COUNTER, ACCEPT], "from the pod's own node"))
        refs = listed[i][1]
        for pol in pols:
            rules.append(NftRule.make([jump(tiered_policy_chain_name(pol.ref, direction))], f"{tier.name}: {pol.ref}"))
            if not rest:
                rules += _passed_last(tier.name, pol, direction, onward)
            rules.append(NftRule.make([_passed(), _clear_pass(), *onward], f"{pol.ref} passed: {last}"))
        if tier.default_action == "Deny":
            rid = flowlog.deny_rule_id(refs, direction, tier.name)
            rules.append(NftRule.make(deny_log(rid), f"flow log: {rid.describe()}"))
            rules.append(NftRule.make([COUNTER, DROP], rid.describe()))  # the denied-packets metric reads it
        elif rest:
            rules.append(NftRule.make(list(onward), f"end of tier {tier.name} ({direction}): pass, {last}"))
        else:
            rid = flowlog.default_allow_id(refs, direction, tier.name)
            rules.append(NftRule.make([flowlog.log_stmt(rid), *onward], f"end of tier {tier.name} ({direction}): "
                                      f"pass, {last}"))
        name = tier_chain_name(direction, listed[i:])
        out[name] = NftChain(name, tuple(rules))
    return out


#: a local pod's group: pods alike in namespace, labels and service account walk the same tiers
GroupKey = tuple[str, str, str]
#: (direction, policy ref) of a ``tp-``/``tq-`` chain
PolicyChainKey = tuple[Direction, str]


def group_key(pod: Endpoint) -> GroupKey:
    """What every selector of a tiered policy reads of a pod (its tier lists depend on no more)."""
    return (pod.namespace or "", repr(sorted(pod.labels.items())), pod.service_account or "")


def listed(tiers: Sequence[tuple[TierInfo, Sequence[PolicyIR]]]) -> TierList:
    """A walk's tiers as names and policy refs (what the tier chains are named by)."""
    return tuple((t.name, tuple(p.ref for p in pols)) for t, pols in tiers)


@dataclass(frozen=True)
class TierLayout:
    """What a full render decided that the live planner (``tiers_live``) plans changes from:
    the state, the own-node addresses, each local group's tier lists and the sets each
    policy chain asked for (with the peers defining the pod-dependent ones)."""

    state: ClusterState
    own: tuple[str, ...]
    groups: Mapping[GroupKey, Mapping[Direction, TierList]]
    chain_sets: Mapping[PolicyChainKey, tuple[str, ...]]
    set_peers: Mapping[str, Peer]
    #: named-port set → (policy ref, direction, rule index)
    named_sets: Mapping[str, tuple[str, Direction, int]]


def tiered_layout(state: ClusterState, local: Sequence[Endpoint], own: Sequence[str],
                  allow: Mapping[Direction, list[Expr]], egress_ok: str, directions: Sequence[Direction]
                  ) -> tuple[dict[str, NftChain], TierSets, dict[tuple[str, ...], dict[Direction, str | None]],
                             TierLayout]:
    """Chains, sets and, per group of local pods, the first tier chain of each direction (None:
    no tier applies, the pod is open in that direction); and the layout the live planner needs."""
    sets = TierSets(state)
    chains: dict[str, NftChain] = {}
    needed: dict[tuple[Direction, str], tuple[PolicyIR, str]] = {}
    entries: dict[tuple[str, ...], dict[Direction, str | None]] = {}
    lists: dict[GroupKey, dict[Direction, TierList]] = {}
    for pod in local:
        group = group_key(pod)
        if group in entries:
            continue
        decided: dict[Direction, str | None] = {}
        walks = lists[group] = {}
        for direction in directions:
            tiers = state.tiers_for(pod, direction)
            walks[direction] = listed(tiers)
            if not tiers:
                decided[direction] = None
                continue
            made = tier_chains(direction, tiers, own, allow[direction])
            chains.update(made)
            decided[direction] = tier_chain_name(direction, walks[direction])
            for tier, pols in tiers:
                for pol in pols:
                    needed[(direction, pol.ref)] = (pol, tier.name)
        entries[group] = decided
    chain_sets: dict[PolicyChainKey, tuple[str, ...]] = {}
    for (direction, ref), (pol, tier_name) in sorted(needed.items(), key=lambda kv: kv[0]):
        sets.requested = []
        chain = tiered_policy_chain(sets, pol, tier_name, direction, local, egress_ok)
        chain_sets[(direction, ref)] = tuple(dict.fromkeys(sets.requested))
        sets.requested = None
        chains[chain.name] = chain
    layout = TierLayout(state, tuple(own), lists, chain_sets, dict(sets.peers), dict(sets.named))
    return chains, sets, entries, layout


def render_tiered(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
                  interfaces: Mapping[str, str] | None = None, to_host: str = "Drop") -> tuple[NftTable, RenderIndex]:
    """The whole table with tiers (``render.render_indexed`` calls this when a tiered kind is in
    the state): the same base chains, dispatch maps and anti-spoofing, tier chains behind them."""
    table, index, _ = render_tiered_layout(state, node, node_ips=node_ips, interfaces=interfaces, to_host=to_host)
    return table, index


#: what a tier walk ends with when every tier passed (the profile allows)
TIER_ALLOW: Mapping[Direction, list[Expr]] = {"ingress": [ACCEPT], "egress": [goto(EGRESS_OK)]}


def render_tiered_layout(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
                         interfaces: Mapping[str, str] | None = None, to_host: str = "Drop"
                         ) -> tuple[NftTable, RenderIndex, TierLayout]:
    """``render_tiered`` and the layout the live planner starts from (``tiers_live``)."""
    local = local_pods(state, node)
    given = dict(interfaces or {})
    own = tuple(sorted({*node_ips, *(p.host_ip for p in local if p.host_ip)}))
    chains = base_chains(to_host)
    tiered, tier_sets, entries, layout = tiered_layout(state, local, own, TIER_ALLOW, EGRESS_OK, ("ingress", "egress"))
    sets = tier_sets.sets
    chains.update(tiered)
    from_map: dict[Any, Any] = {}
    to_map: dict[Any, Any] = {}
    ifaces: set[Any] = set()
    for pod in local:
        from_key, to_key = dispatch_keys(pod, given)
        ifaces.add(to_key)
        decided = entries[group_key(pod)]
        egress, ingress = decided["egress"], decided["ingress"]
        from_map[from_key] = ("goto", egress) if egress else ALLOW["egress"]
        to_map[to_key] = ("goto", ingress) if ingress else ALLOW["ingress"]
    sets[POD_IFACES] = NftSet(POD_IFACES, ("ifname",), False, frozenset(ifaces))
    maps = {FROM_MAP: NftMap(FROM_MAP, ("ifname", "ipv4_addr"), from_map),
            TO_MAP: NftMap(TO_MAP, ("ifname",), to_map)}
    table = NftTable(TABLE.family, TABLE.name, sets=dict(sorted(sets.items())), maps=maps,
                     chains=dict(sorted(chains.items())))
    # pod_dependent_extras: every set here depends on pods; the Kubernetes live planner must
    # not plan on this table (``tiers_live`` does, from the layout)
    index = RenderIndex(node, tuple(sorted(set(node_ips))), given, {}, True, {}, own)
    return table, index, layout
