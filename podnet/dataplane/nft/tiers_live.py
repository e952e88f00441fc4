"""Pod and policy changes planned on a live tiered table, without rendering it again (pure).

The tiered table (``tiers``) is Felix's layout: dispatch entries → tier chains (one per list of
tiers left to walk, shared by the pods whose lists are the same) → one ``tp-``/``tq-`` chain per
policy → interval sets of addresses. ``TieredLiveTable`` keeps what the kernel holds since the
last full render (a ``TableTracker``) and a book of what decided it: each group of local pods
(same namespace, labels and service account) with its tier lists, how many groups use each tier
chain and each policy chain, how many policy chains use each set, and the peer behind each
pod-dependent set. From that, a change costs its own size:

* ``plan_policies``: a policy created, updated or deleted re-renders its own chains; the local
  groups it applies to (before or after) get their tier lists again, which adds, removes or
  rewrites only the tier chains naming it and moves those groups' dispatch entries; policy
  chains and sets nothing uses any more go, the sets a new chain asks for come.
* ``plan_pods``: a pod created, deleted, relabelled or readdressed changes the membership of its
  address in the pod-dependent sets (each set's members are a pointwise function of the pod at
  an address: the engine's own match is asked at that one address; a named-port set's
  elements at that address are resolved on that pod) and, on this node, its two dispatch
  entries and its ``pod-ifaces`` element; a pod of a group not seen yet gets its tier lists
  from the policies in evaluation order.

A changed policy's named-port sets keep their names (policy, direction, rule index) and are
resolved again, element deltas against what the table holds.

A plan is None whenever the result could differ from a full render or the planner cannot tell
(ipBlocks that exclude pod addresses, a policy in a tier the last full pass did not
know, the last tiered policy gone, an address shared by two pods, a node address that would
appear or disappear, an IPv6 pod, a new set needed together with pod changes); the caller then
renders in full. A plan reads the live state and never changes it; ``commit`` brings the state
to the plan's result once the kernel took the commands. A unit test holds the result equal to a
full render over random change sequences, and a kernel test holds the kernel's table equal.
"""
from __future__ import annotations

import bisect
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any

from podnet.errors import PodnetError
from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.ir import DIRECTIONS, Direction, EntityPeer, Peer, PodPeer, PolicyIR
from podnet.policy.order import TierInfo, policy_key

from .diff import SyncPlan, plan_sync
from .model import (
    Element,
    MapKey,
    NftChain,
    NftMap,
    NftSet,
    NftTable,
    Verdict,
    merge_intervals,
    short_hash,
)
from .render import ALLOW, EGRESS_OK, FROM_MAP, POD_IFACES, TO_MAP, RenderIndex, dispatch_keys, ip_int, programmed
from .tiers import (
    TIER_ALLOW,
    GroupKey,
    PolicyChainKey,
    TierLayout,
    TierList,
    TierSets,
    group_key,
    pass_indices,
    spans_minus,
    tier_chain_name,
    tier_chains,
    tiered_policy_chain,
    tiered_policy_chain_name,
)
from .tracker import TableTracker, TrackedTable

#: (old, new) endpoint of one pod; None for absent
PodChange = tuple[Endpoint | None, Endpoint | None]
#: (old, new) compiled policy; None for absent
PolicyChange = tuple[PolicyIR | None, PolicyIR | None]
Lists = Mapping[Direction, TierList]
Spans = list[tuple[int, int]]
_DISPATCH = (FROM_MAP, TO_MAP)
_NO_LISTS: Lists = {"ingress": (), "egress": ()}


def probe(ep: Endpoint) -> Endpoint:
    """The endpoint under a name made of what selectors read (namespace, labels, service
    account): the state memoises Calico labels by ``ns/name``, and a pod relabelled since the
    full render must not be matched with its old labels."""
    tag = short_hash("probe", ep.namespace, sorted(ep.labels.items()), ep.service_account)
    return replace(ep, name="\x00" + tag)


def _refs(lists: Lists) -> set[str]:
    return {r for d in DIRECTIONS for _, refs in lists[d] for r in refs}


def _verdict(direction: Direction, walk: TierList) -> Verdict:
    return ("goto", tier_chain_name(direction, walk)) if walk else ALLOW[direction]


@dataclass
class _Group:
    """Local pods alike in namespace, labels and service account: they walk the same tiers."""

    rep: Endpoint
    lists: Lists
    #: pod key → (its from-pod key, its to-pod key)
    local: dict[str, tuple[MapKey, MapKey]] = field(default_factory=dict)


@dataclass
class _Draft:
    """A change being planned: what moves in the book (read by ``_finish`` and ``commit``)."""

    #: touched groups → their lists after the change (None: the group has no pod left)
    lists: dict[GroupKey, Lists | None] = field(default_factory=dict)
    new_groups: dict[GroupKey, Endpoint] = field(default_factory=dict)
    #: (group left or None, group joined or None, pod key, its dispatch keys)
    moves: list[tuple[GroupKey | None, GroupKey | None, str, tuple[MapKey, MapKey]]] = field(default_factory=list)
    policies: dict[str, PolicyIR | None] = field(default_factory=dict)
    #: set → (elements removed, elements added)
    elements: dict[str, tuple[Set[Element], Set[Element]]] = field(default_factory=dict)
    maps: dict[str, dict[MapKey, Verdict | None]] = field(default_factory=lambda: {n: {} for n in _DISPATCH})
    #: pod key → its endpoint after the change (None: gone)
    pods: dict[str, Endpoint | None] = field(default_factory=dict)
    host_ips: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: whether new sets may be computed (not while pods change: their members would be the old pods')
    new_sets_allowed: bool = True


@dataclass(frozen=True)
class TieredUpdate:
    """One planned change: the commands for the kernel (``plan``) and the book's part."""

    plan: SyncPlan
    draft: _Draft
    chains: Mapping[str, NftChain]
    chains_removed: Set[str]
    sets_added: Mapping[str, NftSet]
    sets_removed: Set[str]
    suffix_delta: Mapping[tuple[Direction, TierList], int]
    policy_delta: Mapping[PolicyChainKey, int]
    set_delta: Mapping[str, int]
    chain_sets: Mapping[PolicyChainKey, tuple[str, ...] | None]
    set_peers: Mapping[str, Peer]
    named_sets: Mapping[str, tuple[str, Direction, int]]

    @property
    def commands(self) -> list[dict[str, Any]]:
        return self.plan.commands


class TieredLiveTable(TrackedTable):
    """The live tiered table and its book; the applier's model of the kernel after a commit
    (``TableModel``)."""

    def __init__(self, table: NftTable, index: RenderIndex, layout: TierLayout) -> None:
        st = layout.state
        self.index = index
        self._tracker = TableTracker(table)
        #: what selectors are matched with: namespace labels, network sets, nodes (never its pods)
        self._base = st
        self._own = tuple(layout.own)
        self._node_ips = frozenset(index.own)
        self._tiers: dict[str, TierInfo] = {t.name: t for t in st.tiers}
        self._rank = {t.name: i for i, t in enumerate(st.tiers)}
        self._policies: dict[str, PolicyIR] = {p.ref: p for p in st.policies}
        self._pods: dict[str, Endpoint] = {ep.key: ep for ep in st.pods}
        #: programmed pods by address (built when a pod change first needs it)
        self._by_ip: dict[int, set[str]] | None = None
        #: whether pods changed since the full render (``_base.pods`` is then out of date)
        self._pods_moved = False
        self._node_addrs = {n.name: frozenset(n.addresses) for n in st.nodes}
        #: (node, hostIP) of every pod: a pod can be the only source of a node's address
        self._host_ips: Counter[tuple[str, str]] = Counter(
            (ep.node, ep.host_ip) for ep in st.pods if ep.node and ep.host_ip)
        self._groups: dict[GroupKey, _Group] = {}
        for ep in st.pods:
            if programmed(ep) and ep.node == index.node:
                g = group_key(ep)
                group = self._groups.get(g) or self._groups.setdefault(g, _Group(probe(ep), layout.groups[g]))
                group.local[ep.key] = dispatch_keys(ep, index.interfaces)
        self._suffix_users: Counter[tuple[Direction, TierList]] = Counter()
        self._policy_users: Counter[PolicyChainKey] = Counter()
        for group in self._groups.values():
            self._count(group.lists, 1, self._suffix_users, self._policy_users)
        self._chain_sets: dict[PolicyChainKey, tuple[str, ...]] = dict(layout.chain_sets)
        self._set_users: Counter[str] = Counter(s for sets in self._chain_sets.values() for s in sets)
        self._set_peers: dict[str, Peer] = dict(layout.set_peers)
        self._named_sets: dict[str, tuple[str, Direction, int]] = dict(layout.named_sets)
        self._spans: dict[str, Spans] = {}
        #: the sets' members from the current pods (built when a chain is first rendered)
        self._sets: TierSets | None = None
        #: pod changes are planned only when every pod-dependent set is one ``_member`` decides
        self.pods_plannable = st.ipblock_matches_pods and all(
            n in self._set_peers or n in self._named_sets or not n.startswith(("ent-", "tpod-", "tnport-"))
            for n in table.sets)
        #: the table is the one the book describes (else every plan is None: render in full)
        self.usable = st.ipblock_matches_pods and set(table.sets) == {*self._set_users, POD_IFACES} and all(
            tiered_policy_chain_name(r, d) in table.chains for d, r in self._policy_users)

    # -- the applier's model (the rest is TrackedTable's) -------------------------------------

    def entries(self, name: str) -> Mapping[MapKey, Verdict]:
        return self._tracker.entries(name)

    @property
    def dispatch(self) -> None:
        """No per-pod dispatch index: the flow recheck reads the verdict maps themselves."""
        return None

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _count(lists: Lists, sign: int, suffixes: Counter[tuple[Direction, TierList]],
               policies: Counter[PolicyChainKey]) -> None:
        for d in DIRECTIONS:
            walk = lists[d]
            for i in range(len(walk)):
                suffixes[(d, walk[i:])] += sign
            for _, refs in walk:
                for r in refs:
                    policies[(d, r)] += sign

    def _walk(self, rep: Endpoint, refs: Iterable[str], pols: Mapping[str, PolicyIR | None],
              direction: Direction) -> TierList:
        """The tiers ``rep`` walks in ``direction`` over the policies ``refs`` (known to apply)
        and the changed ``pols`` (asked), in evaluation order (``ClusterState.tiers_for``)."""
        chosen = [self._policies[r] for r in refs if r not in pols]
        chosen += [p for p in pols.values() if p is not None and direction in p.isolates and self._base.applies(p, rep)]
        chosen.sort(key=lambda p: (self._rank[p.tier], policy_key(p)))
        out: list[tuple[str, tuple[str, ...]]] = []
        for p in chosen:
            if out and out[-1][0] == p.tier:
                out[-1] = (p.tier, (*out[-1][1], p.ref))
            else:
                out.append((p.tier, (p.ref,)))
        return tuple(out)

    @property
    def _at_ip(self) -> dict[int, set[str]]:
        if self._by_ip is None:
            self._by_ip = {}
            for ep in self._pods.values():
                if programmed(ep):
                    self._by_ip.setdefault(ip_int(ep.ip or ""), set()).add(ep.key)
        return self._by_ip

    def _current_state(self) -> ClusterState:
        """The state with the pods of now (a fresh memo: Calico labels are memoised by pod key)."""
        if not self._pods_moved:
            return self._base
        pods = tuple(sorted(self._pods.values(), key=lambda e: e.key))
        return replace(self._base, pods=pods, by_key={p.key: p for p in pods}, memo={}, ns_match_memo={})

    def _spans_of(self, name: str) -> Spans:
        hit = self._spans.get(name)
        if hit is None:
            hit = self._spans[name] = sorted(_span(e) for e in self._tracker.elements(name))
        return hit

    def _contains(self, name: str, x: int) -> bool:
        spans = self._spans_of(name)
        i = bisect.bisect_right(spans, (x, 2**32)) - 1
        return i >= 0 and spans[i][0] <= x <= spans[i][1]

    def _member(self, peer: Peer, pod: Endpoint | None, x: int) -> bool:
        """Whether a full render would put address ``x`` in the set of ``peer``, with ``pod`` the
        one pod there (None: no pod); ``TierSets`` computes the same as interval algebra."""
        st = self._base
        if isinstance(peer, EntityPeer):
            return st.entity_matches(peer, probe(pod) if pod is not None else Endpoint(ip=str(ipaddress.IPv4Address(x))))
        if isinstance(peer, PodPeer):
            return pod is not None and peer.namespace_in_scope(pod.namespace or "", st.ns_labels(pod.namespace)) \
                and peer.pod_selector.matches(pod.labels)
        raise TypeError(peer)

    def _local(self) -> list[Endpoint]:
        """The programmed pods of this node now (named ports resolve on them for ingress)."""
        return [ep for ep in self._pods.values() if programmed(ep) and ep.node == self.index.node]

    def _named_elements(self, name: str, pod: Endpoint | None, x: int) -> set[Element]:
        """The elements a full render puts in named-port set ``name`` for address ``x`` with
        ``pod`` the pod there (``TierSets.named_ports`` for that one destination)."""
        ref, direction, index = self._named_sets[name]
        pol = self._policies[ref]
        rule = next(r for r in pol.rules(direction) if r.index == index)
        if pod is None or direction == "ingress" and (pod.node != self.index.node or not self._base.applies(
                pol, probe(pod))):
            return set()
        out: set[Element] = set()
        for pm in (pm for pm in rule.ports or () if pm.is_named):
            span = pm.resolve(dict(pod.named_ports))
            if span is not None:
                out.add(((x, x), pm.protocol.lower(), span))
        return out

    # -- policy changes -----------------------------------------------------------------------

    def plan_policies(self, changes: Sequence[PolicyChange]) -> TieredUpdate | None:
        """The update for policy changes (old IR, new IR; None for absent), or None: render in
        full."""
        if not self.usable:
            return None
        draft = _Draft()
        for old, new in changes:
            pol = new if new is not None else old
            if pol is None:
                continue
            if new is not None and new.tier not in self._tiers:
                return None  # a tier the last full pass did not know: its place comes from the store
            draft.policies[pol.ref] = new
        if not draft.policies:
            return None
        after = {r: p for r, p in self._policies.items() if r not in draft.policies}
        if not any(not p.is_k8s for p in [*after.values(), *(p for p in draft.policies.values() if p)]):
            return None  # no tiered kind left: the table goes back to the Kubernetes layout
        pols = draft.policies
        for g, group in self._groups.items():
            had = _refs(group.lists)
            if not had.intersection(pols) and not any(
                    p is not None and p.isolates and self._base.applies(p, group.rep) for p in pols.values()):
                continue
            lists = {d: self._walk(group.rep, [r for _, refs in group.lists[d] for r in refs], pols, d)
                     for d in DIRECTIONS}
            draft.lists[g] = lists
            sides: tuple[tuple[Direction, str, int], ...] = (("egress", FROM_MAP, 0), ("ingress", TO_MAP, 1))
            for d, name, at in sides:
                verdict = _verdict(d, lists[d])
                if verdict != _verdict(d, group.lists[d]):
                    for keys in group.local.values():
                        draft.maps[name][keys[at]] = verdict
        return self._finish(draft)

    # -- pod changes --------------------------------------------------------------------------

    def plan_pods(self, changes: Sequence[PodChange]) -> TieredUpdate | None:
        """The update for pod changes (old, new; in store order), or None: render in full."""
        if not self.usable or not self.pods_plannable:
            return None
        initial: dict[str, Endpoint | None] = {}
        final: dict[str, Endpoint | None] = {}
        for old, new in changes:
            pairs = [(old, None), (None, new)] if old is not None and new is not None and old.key != new.key else [
                (old, new)]
            for was, now in pairs:
                ep = now if now is not None else was
                if ep is None:
                    continue
                if ep.key not in initial:
                    initial[ep.key] = self._pods.get(ep.key)
                final[ep.key] = now
        draft = _Draft(pods=final, new_sets_allowed=False)
        # node addresses come from pods too (a NodePeer's set): none may appear or disappear
        for key in final:
            for ep, sign in ((initial[key], -1), (final[key], 1)):
                if ep is None:
                    continue
                if ep.selectable and ep.ip and ":" in ep.ip:
                    return None  # IPv6 pods are not programmed; let the full render decide
                if ep.node and ep.host_ip:
                    if sign > 0 and ep.host_ip not in self._node_addrs.get(ep.node, ()):
                        return None
                    draft.host_ips[(ep.node, ep.host_ip)] += sign
        if any(self._host_ips[k] + n <= 0 for k, n in draft.host_ips.items()):
            return None
        # 1. the changed addresses in the pod-dependent sets
        points: dict[int, set[str]] = {}
        for key in final:
            for ep in (initial[key], final[key]):
                if programmed(ep):
                    x = ip_int(ep.ip or "")  # type: ignore[union-attr]
                    points.setdefault(x, set(self._at_ip.get(x, ())))
        for key in final:
            ini, fin = initial[key], final[key]
            if programmed(ini):
                points[ip_int(ini.ip or "")].discard(key)  # type: ignore[union-attr]
            if programmed(fin):
                points[ip_int(fin.ip or "")].add(key)  # type: ignore[union-attr]
        there: dict[int, Endpoint | None] = {}
        for x, keys in points.items():
            if len(keys) > 1:
                return None  # two pods on one address
            there[x] = next((final[k] if k in final else self._pods[k] for k in keys), None)
        sets = self._tracker.set_names()
        for name, peer in self._set_peers.items():
            if name not in sets:
                continue
            add: list[tuple[int, int]] = []
            drop: list[tuple[int, int]] = []
            for x, pod in there.items():
                want = self._member(peer, pod, x)
                if want != self._contains(name, x):
                    (add if want else drop).append((x, x))
            if add or drop:
                spans = self._spans_of(name)
                after = merge_intervals(spans_minus(spans, sorted(drop)) + add)
                old_e: set[Element] = {(span,) for span in spans}
                new_e: set[Element] = {(span,) for span in after}
                draft.elements[name] = (old_e - new_e, new_e - old_e)
        for name in self._named_sets:
            if name not in sets:
                continue
            elements = self._tracker.elements(name)
            gone_e: set[Element] = set()
            fresh_e: set[Element] = set()
            for x, pod in there.items():
                had = {e for e in elements if e[0] == (x, x)}
                wanted = self._named_elements(name, pod, x)
                gone_e |= had - wanted
                fresh_e |= wanted - had
            if gone_e or fresh_e:
                draft.elements[name] = (gone_e, fresh_e)
        return self._local_changes(draft, initial, final)

    def _local_changes(self, draft: _Draft, initial: Mapping[str, Endpoint | None],
                       final: Mapping[str, Endpoint | None]) -> TieredUpdate | None:
        """The local pods' groups and dispatch entries, then the chains and sets that follow."""
        node = self.index.node
        ordered: list[str] | None = None
        host_left: Counter[str] = Counter()
        sizes: dict[GroupKey, int] = {}
        ifaces: dict[Element, bool] = {}
        for key in final:
            ini, fin = initial[key], final[key]
            was = ini if programmed(ini) and ini.node == node else None  # type: ignore[union-attr]
            now = fin if programmed(fin) and fin.node == node else None  # type: ignore[union-attr]
            if was is None and now is None:
                continue
            g_old = group_key(was) if was is not None else None
            g_new = group_key(now) if now is not None else None
            if was is not None:
                old_keys = dispatch_keys(was, self.index.interfaces)
                draft.moves.append((g_old, None, key, old_keys))
                assert g_old is not None
                sizes[g_old] = sizes.get(g_old, len(self._groups[g_old].local)) - 1
                draft.maps[FROM_MAP][old_keys[0]] = None
                draft.maps[TO_MAP][old_keys[1]] = None
                ifaces[old_keys[1]] = False
                if was.host_ip and was.host_ip not in self._node_ips:
                    host_left[was.host_ip] -= 1
            if now is not None:
                assert g_new is not None
                if now.host_ip and now.host_ip not in self._own:
                    return None  # a new own-node address: every ingress tier chain changes
                if now.host_ip and now.host_ip not in self._node_ips:
                    host_left[now.host_ip] += 1
                keys = dispatch_keys(now, self.index.interfaces)
                draft.moves.append((None, g_new, key, keys))
                group = self._groups.get(g_new)
                if group is None and g_new not in draft.new_groups:
                    if ordered is None:
                        ordered = list(self._policies)
                    rep = probe(now)
                    draft.new_groups[g_new] = rep
                    draft.lists[g_new] = {d: self._walk(rep, (), {r: self._policies[r] for r in ordered}, d)
                                          for d in DIRECTIONS}
                lists = group.lists if group is not None else draft.lists[g_new]
                assert lists is not None
                sizes[g_new] = sizes.get(g_new, len(group.local) if group is not None else 0) + 1
                draft.maps[FROM_MAP][keys[0]] = _verdict("egress", lists["egress"])
                draft.maps[TO_MAP][keys[1]] = _verdict("ingress", lists["ingress"])
                ifaces[keys[1]] = True
        if host_left:
            local_hosts = Counter(self._pods[k].host_ip for grp in self._groups.values() for k in grp.local
                                  if self._pods[k].host_ip)
            if any(local_hosts[h] + n <= 0 for h, n in host_left.items()):
                return None  # an own-node address that goes away
        for g, n in sizes.items():
            if n <= 0 and g in self._groups:
                draft.lists[g] = None
            elif n <= 0:  # a group that came and went within the change
                draft.lists.pop(g, None)
                draft.new_groups.pop(g, None)
        present = self._tracker.elements(POD_IFACES)
        gone = {e for e, keep in ifaces.items() if not keep and e in present}
        fresh = {e for e, keep in ifaces.items() if keep and e not in present}
        if gone or fresh:
            draft.elements[POD_IFACES] = (gone, fresh)
        return self._finish(draft)

    # -- the chains and sets that follow ------------------------------------------------------

    def _policy(self, ref: str, draft: _Draft) -> PolicyIR:
        pol = draft.policies[ref] if ref in draft.policies else self._policies[ref]
        assert pol is not None, ref
        return pol

    def _finish(self, draft: _Draft) -> TieredUpdate | None:
        tracker, t = self._tracker, self._tracker.id
        suffix_delta: Counter[tuple[Direction, TierList]] = Counter()
        policy_delta: Counter[PolicyChainKey] = Counter()
        for g, lists in draft.lists.items():
            group = self._groups.get(g)
            self._count(group.lists if group is not None else _NO_LISTS, -1, suffix_delta, policy_delta)
            self._count(lists if lists is not None else _NO_LISTS, 1, suffix_delta, policy_delta)
        changed = set(draft.policies)
        # a tier chain reads its policies' refs and, in the last tier, their Pass rules' indices
        passes = {(d, r) for r, p in draft.policies.items() for d in DIRECTIONS
                  if p is None or r not in self._policies or pass_indices(p, d) != pass_indices(self._policies[r], d)}
        chains: dict[str, NftChain] = {}
        removed: set[str] = set()
        for (d, walk), n in suffix_delta.items():
            before = self._suffix_users[(d, walk)]
            name = tier_chain_name(d, walk)
            if before + n <= 0:
                if before > 0:
                    removed.add(name)
            elif before <= 0 or len(walk) == 1 and any((d, r) in passes for r in walk[0][1]):
                tiers = [(self._tiers[tier], tuple(self._policy(r, draft) for r in refs)) for tier, refs in walk]
                chains[name] = tier_chains(d, tiers, self._own, TIER_ALLOW[d])[name]
        set_delta: Counter[str] = Counter()
        chain_sets: dict[PolicyChainKey, tuple[str, ...] | None] = {}
        # named ports resolve on the local pods (ingress); pod changes render no named-port set anew
        local = self._local() if changed else []
        touched = set(policy_delta) | {(d, r) for r in changed for d in DIRECTIONS}
        for d, r in sorted(touched):
            before = self._policy_users[(d, r)]
            name = tiered_policy_chain_name(r, d)
            if before + policy_delta[(d, r)] <= 0:
                if before > 0:
                    removed.add(name)
                    set_delta.subtract(self._chain_sets.get((d, r), ()))
                    chain_sets[(d, r)] = None
                continue
            if before > 0 and r not in changed:
                continue
            if self._sets is None:  # the pods before this change: a set it needs anew is declined below
                self._sets = TierSets(self._current_state(), tracker.set_names())
            pol = self._policy(r, draft)
            self._sets.requested = []
            try:
                chains[name] = tiered_policy_chain(self._sets, pol, pol.tier, d, local, EGRESS_OK)
            except PodnetError:
                return None  # the full pass reports it
            finally:
                asked, self._sets.requested = self._sets.requested, None
            chain_sets[(d, r)] = tuple(dict.fromkeys(asked or ()))
            for s in chain_sets[(d, r)] or ():
                if s.startswith("tnport-") and s in tracker.set_names():  # resolved again: the same name
                    if not draft.new_sets_allowed:
                        return None
                    now, was = self._sets.sets[s].elements, tracker.elements(s)
                    if now != was:
                        draft.elements[s] = (was - now, now - was)
            if before > 0:
                set_delta.subtract(self._chain_sets.get((d, r), ()))
            set_delta.update(chain_sets[(d, r)] or ())
        have = tracker.set_names()
        sets_removed = {s for s, n in set_delta.items() if self._set_users[s] + n <= 0 and s in have}
        sets_added: dict[str, NftSet] = {}
        for s, n in set_delta.items():
            if self._set_users[s] + n > 0 and s not in have:
                if not draft.new_sets_allowed or self._sets is None or s not in self._sets.sets:
                    return None
                sets_added[s] = self._sets.sets[s]
        set_peers = {s: self._sets.peers[s] for s in sets_added if self._sets is not None and s in self._sets.peers}
        named_sets = {s: self._sets.named[s] for s in sets_added if self._sets is not None and s in self._sets.named}
        # the touched objects before and after; plan_sync orders the commands
        maps = {n: {k: v for k, v in m.items() if tracker.entries(n).get(k) != v} for n, m in draft.maps.items()}
        elements = {s: e for s, e in draft.elements.items() if s not in sets_removed}
        before_sets = {s: tracker.set_def(s) for s in sets_removed}
        after_sets: dict[str, NftSet] = dict(sets_added)
        for s, (gone, fresh) in elements.items():
            sdef = tracker.set_def(s)
            current = tracker.elements(s)
            before_sets[s] = NftSet(s, sdef.types, sdef.interval, frozenset(current))
            after_sets[s] = NftSet(s, sdef.types, sdef.interval, frozenset((current - gone) | fresh))
        old_table = NftTable(t.family, t.name, sets=before_sets,
                          maps={n: NftMap(n, tracker.map_def(n).key_types,
                                          {k: tracker.entries(n)[k] for k in m if k in tracker.entries(n)})
                                for n, m in maps.items() if m},
                          chains={n: tracker.chains[n] for n in [*chains, *removed] if n in tracker.chains})
        new_table = NftTable(t.family, t.name, sets=after_sets,
                         maps={n: NftMap(n, tracker.map_def(n).key_types, {k: v for k, v in m.items() if v is not None})
                               for n, m in maps.items() if m},
                         chains=chains)
        draft.elements = elements
        draft.maps = maps
        return TieredUpdate(plan_sync(new_table, old_table), draft, chains, frozenset(removed), sets_added,
                            frozenset(sets_removed), suffix_delta, policy_delta, set_delta, chain_sets, set_peers,
                            named_sets)

    # -- commit -------------------------------------------------------------------------------

    def commit(self, update: TieredUpdate) -> None:
        """Bring the live state to the update's result (the kernel took its commands)."""
        tracker, draft = self._tracker, update.draft
        for name in update.chains_removed:
            tracker.remove_chain(name)
        for chain in update.chains.values():
            tracker.put_chain(chain)
        for name in update.sets_removed:
            tracker.remove_set(name)
            self._set_peers.pop(name, None)
            self._named_sets.pop(name, None)
            self._spans.pop(name, None)
        for s in update.sets_added.values():
            tracker.add_set(s)
        self._set_peers.update(update.set_peers)
        self._named_sets.update(update.named_sets)
        for name, (gone, fresh) in draft.elements.items():
            tracker.update_elements(name, gone, fresh)
            self._spans.pop(name, None)
        for name, changed in draft.maps.items():
            if changed:
                tracker.update_entries(name, changed)
        _add(self._suffix_users, update.suffix_delta)
        _add(self._policy_users, update.policy_delta)
        _add(self._set_users, update.set_delta)
        for key, sets in update.chain_sets.items():
            if sets is None:
                self._chain_sets.pop(key, None)
            else:
                self._chain_sets[key] = sets
        for ref, pol in draft.policies.items():
            if pol is None:
                self._policies.pop(ref, None)
            else:
                self._policies[ref] = pol
        # groups: lists, then members
        for g, lists in draft.lists.items():
            if lists is None:
                continue
            group = self._groups.get(g)
            if group is None:
                self._groups[g] = _Group(draft.new_groups[g], lists)
            else:
                group.lists = lists
        for g_old, g_new, pod_key, keys in draft.moves:
            left = self._groups.get(g_old) if g_old is not None else None
            joined = self._groups.get(g_new) if g_new is not None else None
            if left is not None:
                left.local.pop(pod_key, None)
            if joined is not None:
                joined.local[pod_key] = keys
        for g, lists in draft.lists.items():
            if lists is None:
                self._groups.pop(g, None)
        if draft.pods:
            at_ip = self._at_ip  # built from the pods before the change, then kept current
            for pod_key, ep in draft.pods.items():
                gone_pod = self._pods.pop(pod_key, None)
                if gone_pod is not None and programmed(gone_pod):
                    at_ip.get(ip_int(gone_pod.ip or ""), set()).discard(pod_key)
                if ep is not None:
                    self._pods[pod_key] = ep
                    if programmed(ep):
                        at_ip.setdefault(ip_int(ep.ip or ""), set()).add(pod_key)
            self._host_ips.update(draft.host_ips)
            self._sets = None  # its members were the old pods'
            self._pods_moved = True


def _span(e: Element) -> tuple[int, int]:
    span: Any = e[0]
    return int(span[0]), int(span[1])


def _add(counter: Counter[Any], delta: Mapping[Any, int]) -> None:
    counter.update(delta)
    for key in [k for k in delta if counter[k] <= 0]:
        del counter[key]

