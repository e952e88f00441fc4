"""Pod and policy changes planned on the live policy table, without rendering it again (pure).

``LiveTable`` owns what the kernel holds since the last full render (a ``TableTracker``) and
what planning a change in O(change) needs besides: the render index, how many dispatch
entries use each verdict, the peers of the pod-selector sets, and a ``PolicyBook``.

* ``plan_pods``: a pod created, deleted, relabelled or readdressed changes only elements: its
  IP in the pod-selector sets whose selector it (no longer) matches and, on its own node, its
  two dispatch-map entries and its interface in ``pod-ifaces``.
* ``plan_policies``: a NetworkPolicy created, updated or deleted changes its own
  ``pi-``/``po-`` chains; the signature chains (and the two dispatch-map entries) of the local
  pods whose list of isolating policies gains or loses it; the chains and sets nothing refers
  to any more; and the sets its new rules need. The touched objects before and after go
  through ``plan_sync``, which orders the commands (new objects first, removals last).

A plan reads the live state and never changes it; ``commit`` brings it to the plan's result
once the kernel took the commands. A plan is None whenever the result could differ from a full
``render`` (a chain that would appear or disappear on a pod change, named ports, sets that
exclude pod addresses, an unknown node address); the caller then renders in full. Unit tests
hold the result equal to a full render over random change sequences.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from podnet.policy.cluster import ClusterState, Endpoint, PeerContext, peer_matches
from podnet.policy.ir import DIRECTIONS, Direction, PodPeer, PolicyIR

from .diff import SyncPlan, plan_sync, set_elements
from .dispatch import (
    FROM_SET,
    KEY_TYPES,
    TO_SET,
    DispatchIndex,
    dispatch_chains,
    dispatch_entries,
    member_element,
    member_set,
)
from .model import Element, MapKey, NftChain, NftSet, NftTable, Verdict
from .render import (
    ALLOW,
    EGRESS_OK,
    FROM_MAP,
    POD_IFACES,
    TO_MAP,
    RenderIndex,
    SetBuilder,
    Signatures,
    dispatch_keys,
    ip_int,
    policy_chain_name,
    programmed,
    render_policy_chain,
    signature_chain,
    signature_chain_name,
)
from .tracker import TableTracker, TrackedTable

#: (old, new) endpoint of one pod; None for absent
PodChange = tuple[Endpoint | None, Endpoint | None]
#: (old, new) compiled policy; None for absent
PolicyChange = tuple[PolicyIR | None, PolicyIR | None]
_SET_REF = re.compile(r'"@([^"]+)"')
_DISPATCH = (FROM_MAP, TO_MAP)
_SIG_PREFIX = {FROM_MAP: "egress-", TO_MAP: "ingress-"}


def chain_set_refs(chain: NftChain) -> tuple[str, ...]:
    """The named sets a chain's rules look up (``@name``)."""
    return tuple(sorted({m for r in chain.rules for m in _SET_REF.findall(r.expr_json)}))


@dataclass(frozen=True)
class BookChange:
    """What a policy update changes in the ``PolicyBook`` (besides the pods)."""

    signatures_added: Signatures
    chain_sets: Mapping[str, tuple[str, ...]]
    chain_users: Mapping[str, int]
    set_users: Mapping[str, int]
    policies: Mapping[str, PolicyIR | None]


@dataclass(frozen=True)
class LiveUpdate:
    """One planned change: the commands for the kernel (in ``plan``, with its sizes) and the
    same change as values, for ``LiveTable.commit`` once the kernel took them."""

    plan: SyncPlan
    #: set → (elements removed, elements added)
    elements: Mapping[str, tuple[Set[Element], Set[Element]]] = field(default_factory=dict)
    #: dispatch (FROM_MAP / TO_MAP) → key → its new verdict (None: removed); the membership
    #: set elements that carry it are in ``elements`` and ``sets_added``
    maps: Mapping[str, Mapping[MapKey, Verdict | None]] = field(default_factory=dict)
    sets_added: Mapping[str, NftSet] = field(default_factory=dict)
    sets_removed: Set[str] = frozenset()
    #: chains added or rewritten
    chains: Mapping[str, NftChain] = field(default_factory=dict)
    chains_removed: Set[str] = frozenset()
    #: the peers of the pod-selector sets added
    pod_peers: Mapping[str, PodPeer] = field(default_factory=dict)
    #: the pod changes (for the book's pod groups)
    pods: Sequence[PodChange] = ()
    book: BookChange | None = None

    @property
    def commands(self) -> list[dict[str, Any]]:
        return self.plan.commands


@dataclass
class PodGroup:
    """Programmed pods with the same namespace and labels: every selector decides them alike."""

    rep: Endpoint
    #: pod key → address (as an integer), every programmed pod of the group
    ips: dict[str, int] = field(default_factory=dict)
    #: pod key → (its from-pod key, its to-pod key), the group's pods on this node
    local: dict[str, tuple[MapKey, MapKey]] = field(default_factory=dict)


class PolicyBook:
    """What planning a policy change in O(change) needs, kept current by committed updates:
    pods grouped by namespace and labels (selectors run once per group, new sets get their
    members from the groups), which policies each signature chain jumps to, how many signature
    chains use each policy chain and how many policy chains use each set."""

    def __init__(self, table: NftTable, index: RenderIndex, pods: Iterable[Endpoint],
                 policies: Iterable[PolicyIR]) -> None:
        self.node = index.node
        self.interfaces = index.interfaces
        self.groups: dict[str, dict[tuple[tuple[str, str], ...], PodGroup]] = {}
        for ep in pods:
            self.pod_added(ep)
        self.policies: dict[str, PolicyIR] = {p.ref: p for p in policies}
        self.signatures: dict[str, tuple[Direction, tuple[str, ...]]] = dict(index.signatures)
        self.chain_users: Counter[str] = Counter()
        for direction, refs in self.signatures.values():
            self.chain_users.update(policy_chain_name(ref, direction) for ref in refs)
        self.chain_sets: dict[str, tuple[str, ...]] = {}
        self.set_users: Counter[str] = Counter()
        for name in self.chain_users:
            chain = table.chains.get(name)
            if chain is not None:
                self.chain_sets[name] = chain_set_refs(chain)
                self.set_users.update(self.chain_sets[name])

    def pod_added(self, ep: Endpoint | None) -> None:
        if ep is None or not programmed(ep):
            return
        by_labels = self.groups.setdefault(ep.namespace or "", {})
        key = _labels_key(ep)
        group = by_labels.get(key) or by_labels.setdefault(key, PodGroup(ep))
        group.ips[ep.key] = ip_int(ep.ip or "")
        if ep.node == self.node:
            group.local[ep.key] = dispatch_keys(ep, self.interfaces)

    def pod_removed(self, ep: Endpoint | None) -> None:
        if ep is None or not programmed(ep):
            return
        by_labels = self.groups.get(ep.namespace or "", {})
        group = by_labels.get(_labels_key(ep))
        if group is not None:
            group.ips.pop(ep.key, None)
            group.local.pop(ep.key, None)
            if not group.ips:
                del by_labels[_labels_key(ep)]

    def label_groups(self) -> list[tuple[Endpoint, tuple[int, ...]]]:
        return [(g.rep, tuple(g.ips.values())) for by_labels in self.groups.values() for g in by_labels.values()]

    def refs_of(self, verdict: Verdict | None) -> tuple[str, ...]:
        """The policies a dispatch verdict's signature chain jumps to (none for allow)."""
        if verdict is None or verdict[0] != "goto" or verdict[1] not in self.signatures:
            return ()
        return self.signatures[verdict[1]][1]

    def apply(self, change: BookChange, chains_removed: Set[str]) -> None:
        for name in chains_removed:
            self.chain_sets.pop(name, None)
            self.signatures.pop(name, None)
        self.chain_sets.update(change.chain_sets)
        self.signatures.update(change.signatures_added)
        for counter, delta in ((self.chain_users, change.chain_users), (self.set_users, change.set_users)):
            counter.update(delta)
            for key in [k for k in delta if counter[k] <= 0]:
                del counter[key]
        for ref, pol in change.policies.items():
            if pol is None:
                self.policies.pop(ref, None)
            else:
                self.policies[ref] = pol


class LiveTable(TrackedTable):
    """The live policy table and what planning a change on it needs; the applier's model of
    the kernel after a commit (``TableModel``). Given the state the table was rendered from
    (its ipBlocks matching pod addresses), it also keeps the ``PolicyBook`` that policy changes
    are planned with."""

    def __init__(self, table: NftTable, index: RenderIndex, state: ClusterState | None = None) -> None:
        self.index = index
        self._tracker = TableTracker(table)
        self._pod_sets: dict[str, PodPeer] = dict(index.pod_sets)
        #: each local pod's dispatch key → verdict, per direction (the membership sets' contents
        #: by pod, kept current by ``commit``)
        self._index = DispatchIndex({name: dispatch_entries(table, name) for name in _DISPATCH})
        self._dispatch = self._index.entries
        #: how many dispatch entries use each verdict (a signature chain no entry uses would
        #: disappear in a full render)
        self._usage: Counter[Verdict] = Counter()
        for name in _DISPATCH:
            self._usage.update(self._dispatch[name].values())
        self._book: PolicyBook | None = None
        if state is not None and state.ipblock_matches_pods:
            self._book = PolicyBook(table, index, state.pods, state.policies)

    # -- the applier's model (the rest is TrackedTable's) -----------------------------------

    @property
    def pod_sets(self) -> Mapping[str, PodPeer]:
        """The pod-selector sets there are, with the peer that defines their members."""
        return dict(self._pod_sets)

    @property
    def book(self) -> PolicyBook | None:
        return self._book

    @property
    def dispatch(self) -> DispatchIndex:
        """The local pods' dispatch entries, indexed (a live view: read it, do not change it)."""
        return self._index

    def entries(self, name: str) -> Mapping[MapKey, Verdict]:
        """The dispatch entries (FROM_MAP / TO_MAP) as they are now (a live, read-only view)."""
        return self._dispatch[name]

    # -- pod changes --------------------------------------------------------------------------

    def plan_pods(self, changes: Sequence[PodChange], policies_by_ns: Mapping[str, Sequence[PolicyIR]],
                  peers: PeerContext) -> LiveUpdate | None:
        """The update for pod changes (old, new; in store order), or None: render in full."""
        index, tracker = self.index, self._tracker
        if index.pod_dependent_extras:
            return None
        #: per set, element → wanted (last change wins)
        wanted: dict[str, dict[Element, bool]] = {}
        base = self._dispatch
        #: per map, key → its value after the changes (None: absent); only touched keys
        over: dict[str, dict[MapKey, Verdict | None]] = {name: {} for name in _DISPATCH}
        ifaces: dict[Element, bool] = {}
        released: set[Verdict] = set()

        def pop(name: str, key: MapKey) -> Verdict:
            o = over[name]
            cur = o[key] if key in o else base[name].get(key)
            o[key] = None
            return cur if cur is not None else ("accept",)

        for old, new in changes:
            for ep in (old, new):
                if ep is not None and ep.is_pod and ep.selectable and ep.ip and ":" in ep.ip:
                    return None  # IPv6 pods are not programmed; let the full render decide
            for ep, keep in ((old, False), (new, True)):
                if ep is None or not programmed(ep):
                    continue
                elem: Element = ((ip_int(ep.ip or ""),) * 2,)
                for name, peer in self._pod_sets.items():
                    if peer_matches(peer, ep, peers):
                        wanted.setdefault(name, {})[elem] = keep
            if old is not None and programmed(old) and old.node == index.node:
                from_key, to_key = dispatch_keys(old, index.interfaces)
                released.add(pop(FROM_MAP, from_key))
                released.add(pop(TO_MAP, to_key))
                ifaces[to_key] = False
            if new is not None and programmed(new) and new.node == index.node:
                if new.host_ip and new.host_ip not in index.sig_own:
                    return None  # an address the signature chains do not accept yet
                from_key, to_key = dispatch_keys(new, index.interfaces)
                known = self._group_verdicts(new)
                if known is not None:  # pods with its namespace and labels here: the same chains
                    over[FROM_MAP][from_key], over[TO_MAP][to_key] = known
                    ifaces[to_key] = True
                    continue
                selecting = [p for p in policies_by_ns.get(new.namespace or "", ())
                             if p.pod_selector.matches(new.labels)]
                lookups: tuple[tuple[Direction, str, MapKey], ...] = (("egress", FROM_MAP, from_key),
                                                                      ("ingress", TO_MAP, to_key))
                for direction, name, key in lookups:
                    refs = tuple(p.ref for p in selecting if direction in p.isolates)
                    if not refs:
                        over[name][key] = ALLOW[direction]
                        continue
                    sig = signature_chain_name(direction, refs)
                    if sig not in tracker.chains:
                        return None  # a chain a full render would add
                    over[name][key] = ("goto", sig)
                ifaces[to_key] = True
        # The final map values, only for keys whose value changes.
        final = {name: {k: v for k, v in over[name].items() if base[name].get(k) != v} for name in over}
        # A signature chain no pod uses any more would disappear in a full render.
        chains_left = [v for v in released if v[0] == "goto" and v[1] != EGRESS_OK]
        if chains_left:
            delta: Counter[Verdict] = Counter()
            for name, changed in final.items():
                for k, v in changed.items():
                    was = base[name].get(k)
                    if was is not None:
                        delta[was] -= 1
                    if v is not None:
                        delta[v] += 1
            if any(self._usage[v] + delta[v] <= 0 for v in chains_left):
                return None
        return self._element_update(wanted, ifaces, final, changes)

    def _group_verdicts(self, ep: Endpoint) -> tuple[Verdict, Verdict] | None:
        """The (egress, ingress) dispatch verdicts of the local pods with ``ep``'s namespace and
        labels as last committed (every selector decides them alike, so ``ep`` gets the same),
        without running the namespace's selectors; None when no such pod is on this node."""
        book = self._book
        group = None if book is None else book.groups.get(ep.namespace or "", {}).get(_labels_key(ep))
        if group is None or not group.local:
            return None
        from_key, to_key = next(iter(group.local.values()))
        egress, ingress = self._dispatch[FROM_MAP].get(from_key), self._dispatch[TO_MAP].get(to_key)
        return None if egress is None or ingress is None else (egress, ingress)

    def _element_update(self, wanted: Mapping[str, Mapping[Element, bool]], ifaces: Mapping[Element, bool],
                        final: Mapping[str, Mapping[MapKey, Verdict | None]],
                        changes: Sequence[PodChange]) -> LiveUpdate:
        """The element commands that make the sets hold ``wanted`` (and ``pod-ifaces`` the
        interfaces) and the dispatch maps ``final``."""
        tracker, t = self._tracker, self._tracker.id
        plan = SyncPlan()
        cmds = plan.commands
        elements: dict[str, tuple[Set[Element], Set[Element]]] = {}
        for name, want in [*sorted(wanted.items()), (POD_IFACES, ifaces)]:
            have = tracker.elements(name)
            gone = {e for e, keep in want.items() if not keep and e in have}
            fresh = {e for e, keep in want.items() if keep and e not in have}
            if gone:
                cmds.append({"delete": set_elements(t, tracker.set_def(name), sorted(gone))})
                plan.elements_removed += len(gone)
            if fresh:
                cmds.append({"add": set_elements(t, tracker.set_def(name), sorted(fresh))})
                plan.elements_added += len(fresh)
            if gone or fresh:
                elements[name] = (gone, fresh)
        maps: dict[str, Mapping[MapKey, Verdict | None]] = {}
        for name, (gone, fresh) in sorted(self._member_changes(final).items()):
            s = tracker.set_def(name)
            if gone:
                cmds.append({"delete": set_elements(t, s, sorted(gone))})
            if fresh:
                cmds.append({"add": set_elements(t, s, sorted(fresh))})
            plan.elements_removed += len(gone)
            plan.elements_added += len(fresh)
            elements[name] = (gone, fresh)
        for name in _DISPATCH:
            if final[name]:
                maps[name] = final[name]
        return LiveUpdate(plan, elements=elements, maps=maps, pods=tuple(changes))

    def _member_changes(self, final: Mapping[str, Mapping[MapKey, Verdict | None]]
                        ) -> dict[str, tuple[set[Element], set[Element]]]:
        """Dispatch entries changed (key → new verdict, None: gone) as membership set elements:
        set → (elements leaving it, elements entering it)."""
        out: dict[str, tuple[set[Element], set[Element]]] = {}
        for which in _DISPATCH:
            current = self._dispatch[which]
            for key, verdict in final.get(which, {}).items():
                was = current.get(key)
                if was == verdict:
                    continue
                elem = member_element(which, key)
                if was is not None:
                    out.setdefault(member_set(which, was), (set(), set()))[0].add(elem)
                if verdict is not None:
                    out.setdefault(member_set(which, verdict), (set(), set()))[1].add(elem)
        return out

    # -- policy changes -----------------------------------------------------------------------

    def plan_policies(self, changes: Sequence[PolicyChange], peers: PeerContext) -> LiveUpdate | None:
        """The update for policy changes (old IR, new IR; None for absent), or None: render in
        full."""
        book, tracker, index = self._book, self._tracker, self.index
        if book is None or index.pod_dependent_extras or not peers.ipblock_matches_pods:
            return None
        if any(_has_named_ports(p) for change in changes for p in change):
            return None
        pols: dict[str, PolicyIR | None] = {}
        #: affected local groups → their (egress refs, ingress refs) after the changes
        refs: dict[int, tuple[PodGroup, dict[Direction, tuple[str, ...]]]] = {}
        for old, new in changes:
            pol = new if new is not None else old
            if pol is None:
                continue
            ref = pol.ref
            pols[ref] = new
            if old is not None and new is not None and _same_selection(old, new):
                continue  # the same pods, isolated the same ways: only the policy's own chains change
            for group in book.groups.get(pol.namespace, {}).values():
                if not group.local:
                    continue
                labels = group.rep.labels
                was = old is not None and old.pod_selector.matches(labels)
                now = new is not None and new.pod_selector.matches(labels)
                if not (was or now):
                    continue
                hit = refs.get(id(group))
                if hit is None:
                    from_key, to_key = next(iter(group.local.values()))
                    hit = refs[id(group)] = (group, {
                        "egress": book.refs_of(self._dispatch[FROM_MAP].get(from_key)),
                        "ingress": book.refs_of(self._dispatch[TO_MAP].get(to_key))})
                cur = hit[1]
                for direction in DIRECTIONS:
                    kept = [r for r in cur[direction] if r != ref]
                    if now and new is not None and direction in new.isolates:
                        kept.append(ref)
                    cur[direction] = tuple(sorted(kept))
        # Dispatch entries of the affected pods, and which signature chains appear or go.
        maps: dict[str, dict[MapKey, Verdict]] = {name: {} for name in _DISPATCH}
        old_maps: dict[str, dict[MapKey, Verdict]] = {name: {} for name in _DISPATCH}
        usage: Counter[Verdict] = Counter()
        new_sigs: dict[str, tuple[Direction, tuple[str, ...]]] = {}
        for group, cur in refs.values():
            verdicts: dict[Direction, Verdict] = {}
            for direction in DIRECTIONS:
                r = cur[direction]
                if not r:
                    verdicts[direction] = ALLOW[direction]
                    continue
                sig = signature_chain_name(direction, r)
                verdicts[direction] = ("goto", sig)
                if sig not in book.signatures:
                    new_sigs[sig] = (direction, r)
            for from_key, to_key in group.local.values():
                for name, key, verdict in ((FROM_MAP, from_key, verdicts["egress"]),
                                           (TO_MAP, to_key, verdicts["ingress"])):
                    previous = self._dispatch[name].get(key)
                    if previous == verdict:
                        continue
                    if previous is not None:
                        usage[previous] -= 1
                        old_maps[name][key] = previous
                    usage[verdict] += 1
                    maps[name][key] = verdict
        sigs_removed = {v[1] for v, n in usage.items() if n < 0 and v[0] == "goto" and v[1] in book.signatures
                        and self._usage[v] + n <= 0}
        sigs_added = {s: d for s, d in new_sigs.items() if usage[("goto", s)] > 0}
        chain_users: Counter[str] = Counter()
        for sig in sigs_removed:
            direction, r = book.signatures[sig]
            chain_users.subtract(policy_chain_name(ref, direction) for ref in r)
        for direction, r in sigs_added.values():
            chain_users.update(policy_chain_name(ref, direction) for ref in r)
        # Policy chains: added, removed, or rewritten (the changed policies' own).
        chains: dict[str, NftChain] = {}
        chains_removed: set[str] = set()
        chain_sets: dict[str, tuple[str, ...]] = {}
        set_users: Counter[str] = Counter()
        builder = SetBuilder(peers, book.label_groups, existing=tracker.set_names())
        rerender = {(d, ref) for ref, p in pols.items() if p is not None for d in DIRECTIONS}
        touched = {(d, ref) for d in DIRECTIONS for ref in pols} | {
            (d, ref) for sig in sigs_removed for d, r in [book.signatures[sig]] for ref in r} | {
            (d, ref) for d, r in sigs_added.values() for ref in r}
        for direction, ref in sorted(touched):
            name = policy_chain_name(ref, direction)
            users = book.chain_users[name] + chain_users[name]
            present = name in tracker.chains
            if users <= 0:
                if present:
                    chains_removed.add(name)
                    set_users.subtract(book.chain_sets.get(name, ()))
                continue
            if present and (direction, ref) not in rerender:
                continue
            pol = pols[ref] if ref in pols else book.policies.get(ref)
            if pol is None:
                return None  # a chain for a policy we do not know: render in full
            chain = render_policy_chain(builder, pol, direction)
            chains[name] = chain
            chain_sets[name] = chain_set_refs(chain)
            if present:
                set_users.subtract(book.chain_sets.get(name, ()))
            set_users.update(chain_sets[name])
        have_set = tracker.set_names()
        sets_removed = {s for s, n in set_users.items() if n < 0 and book.set_users[s] + n <= 0 and s in have_set}
        sets_added = {s: builder.sets[s] for s, n in set_users.items()
                      if n > 0 and s not in have_set and s in builder.sets}
        # A rule's port set that stays: its elements follow the policy (an edit of its ports).
        elements: dict[str, tuple[set[Element], set[Element]]] = {}
        for name in builder.port_sets:
            if name in have_set and name not in sets_removed:
                want, have = builder.sets[name].elements, tracker.elements(name)
                if want != have:
                    elements[name] = (set(have - want), set(want - have))
        # The pods' dispatch entries as membership set elements; a signature chain added or
        # removed adds or removes its set and its dispatch rule.
        gone_sets = {member_set(name, ("goto", sig)) for sig in sigs_removed
                     for name in _DISPATCH if sig.startswith(_SIG_PREFIX[name])}
        for name, (gone, fresh) in self._member_changes(maps).items():
            if name in gone_sets:
                continue
            if name in have_set:
                elements[name] = (gone, fresh)
            else:
                sets_added[name] = NftSet(name, KEY_TYPES[FROM_MAP if name.startswith(FROM_SET) else TO_MAP], False,
                                          frozenset(fresh))
        sets_removed |= gone_sets
        new_members = {n for n in sets_added if n.startswith((FROM_SET, TO_SET))}
        if new_members or gone_sets:  # a signature chain added or removed: its dispatch rule
            members = {n for n in have_set if n.startswith((FROM_SET, TO_SET))}
            chains.update(dispatch_chains((members - gone_sets) | new_members))
        # The touched objects before and after; plan_sync orders the commands.
        t = tracker.id
        before = NftTable(t.family, t.name,
                          sets={**{s: tracker.set_def(s) for s in sets_removed},
                                **{n: _with(tracker.set_def(n), gone) for n, (gone, _) in elements.items()}},
                          chains={n: tracker.chains[n] for n in [*chains, *chains_removed, *sigs_removed]
                                  if n in tracker.chains})
        after = NftTable(t.family, t.name,
                         sets={**sets_added, **{n: _with(tracker.set_def(n), fresh) for n, (_, fresh) in elements.items()}},
                         chains={**chains, **{s: signature_chain(d, r, index.sig_own)
                                              for s, (d, r) in sigs_added.items()}})
        return LiveUpdate(plan_sync(after, before), elements=elements, maps=maps, sets_added=sets_added,
                          sets_removed=frozenset(sets_removed),
                          chains=dict(after.chains), chains_removed=frozenset(chains_removed | sigs_removed),
                          pod_peers={s: builder.pod_peers[s] for s in sets_added if s in builder.pod_peers},
                          book=BookChange(sigs_added, chain_sets, chain_users, set_users, pols))

    # -- commit -------------------------------------------------------------------------------

    def commit(self, update: LiveUpdate) -> None:
        """Bring the live state to the update's result (the kernel took its commands)."""
        tracker = self._tracker
        for name in update.chains_removed:
            tracker.remove_chain(name)
        for chain in update.chains.values():
            tracker.put_chain(chain)
        for name in update.sets_removed:
            tracker.remove_set(name)
            self._pod_sets.pop(name, None)
        for s in update.sets_added.values():
            tracker.add_set(s)
        self._pod_sets.update(update.pod_peers)
        for name, (gone, fresh) in update.elements.items():
            tracker.update_elements(name, gone, fresh)
        for name, changed in update.maps.items():
            entries = self._dispatch[name]
            for key, verdict in changed.items():
                was = entries.get(key)
                if was is not None:
                    self._usage[was] -= 1
                if verdict is not None:
                    self._usage[verdict] += 1
                self._index.put(name, key, verdict)
        for verdict in [v for v, n in self._usage.items() if n <= 0]:
            del self._usage[verdict]
        if self._book is not None:
            if update.book is not None:
                self._book.apply(update.book, update.chains_removed)
            for old, new in update.pods:
                self._book.pod_removed(old)
                self._book.pod_added(new)


def _with(s: NftSet, elements: Set[Element]) -> NftSet:
    """The set's definition holding ``elements`` (a side of an element change, for plan_sync)."""
    return NftSet(s.name, s.types, s.interval, frozenset(elements))


def _labels_key(ep: Endpoint) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(ep.labels.items()))


def _has_named_ports(pol: PolicyIR | None) -> bool:
    return pol is not None and any(pm.is_named for d in DIRECTIONS for r in pol.rules(d) for pm in (r.ports or ()))


def _same_selection(a: PolicyIR, b: PolicyIR) -> bool:
    return a.isolates == b.isolates and a.pod_selector.to_dict() == b.pod_selector.to_dict()
