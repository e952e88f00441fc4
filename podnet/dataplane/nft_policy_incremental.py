"""Policy changes applied to the last rendered table without rendering it again (pure).

A NetworkPolicy created, updated or deleted changes, on one node: its own ``pi-``/``po-``
chains; the signature chains (and the two dispatch-map entries) of the local pods whose list
of isolating policies gains or loses it; the chains and sets nothing refers to any more; and
the pod-selector or ipBlock sets its new rules need. ``PolicyBook`` keeps what finding those
needs in O(change): pods grouped by namespace and labels (selectors run once per group, new
sets get their members from the groups), which policies each signature chain jumps to, how
many signature chains use each policy chain and how many policy chains use each set.

``plan_policies`` computes the update against the live table (never changing it) as the
before/after of just the touched objects, and lets ``plan_sync`` order the commands (new
objects first, removals last: one atomic transaction). ``apply_policies`` brings the table
and the book to the result once the kernel took it. It returns None whenever the result could
differ from a full ``render`` (named ports, sets that exclude pod addresses, no book); the
caller then renders in full. A unit test holds the result equal to a full render.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from podnet.policy.cluster import Endpoint
from podnet.policy.ir import PodPeer, PolicyIR

from .nft_diff import SyncPlan, plan_sync
from .nft_model import NftChain, NftMap, NftSet, NftTable, Verdict
from .nft_render import (EGRESS_OK, FROM_MAP, TO_MAP, _Builder, _policy_chain, _policy_chain_name,
                         _sig_chain_name, _signature_chain_of, workload_ifname)

if TYPE_CHECKING:
    from .nft_incremental import LiveTable

PolicyChange = tuple[PolicyIR | None, PolicyIR | None]
_SET_REF = re.compile(r'"@([^"]+)"')
_DIRECTIONS = ("egress", "ingress")


def _programmed(ep: Endpoint | None) -> bool:
    return bool(ep is not None and ep.selectable and ep.ip and ":" not in ep.ip)


def _ip_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def chain_set_refs(chain: NftChain) -> tuple[str, ...]:
    """The named sets a chain's rules look up (``@name``)."""
    return tuple(sorted({m for r in chain.rules for m in _SET_REF.findall(r.expr_json)}))


@dataclass
class PodGroup:
    """Pod-network pods with the same namespace and labels: every selector decides them alike."""

    rep: Endpoint
    #: pod key → address (as an integer), every programmed pod of the group
    ips: dict[str, int] = field(default_factory=dict)
    #: pod key → (its from-pod key, its to-pod key), the group's pods on this node
    local: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)


class PolicyBook:
    """What planning a policy change in O(change) needs, kept current by pod and policy updates."""

    def __init__(self, table: NftTable, node: str, interfaces: Mapping[str, str], signatures: Mapping[str, Any],
                 pods: Iterable[Endpoint], policies: Iterable[PolicyIR]) -> None:
        self.node = node
        self.interfaces = interfaces
        self.groups: dict[str, dict[tuple[tuple[str, str], ...], PodGroup]] = {}
        for ep in pods:
            self.pod_added(ep)
        self.policies: dict[str, PolicyIR] = {p.ref: p for p in policies}
        self.signatures: dict[str, tuple[str, tuple[str, ...]]] = dict(signatures)
        self.chain_users: Counter[str] = Counter()
        for direction, refs in self.signatures.values():
            self.chain_users.update(_policy_chain_name(ref, direction) for ref in refs)
        self.chain_sets: dict[str, tuple[str, ...]] = {}
        self.set_users: Counter[str] = Counter()
        for name in self.chain_users:
            chain = table.chains.get(name)
            if chain is not None:
                self.chain_sets[name] = chain_set_refs(chain)
                self.set_users.update(self.chain_sets[name])

    def _keys(self, ep: Endpoint) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ifname = self.interfaces.get(ep.key) or workload_ifname(ep.namespace or "default", ep.name or "")
        return (ifname, str(ep.ip)), (ifname,)

    def pod_added(self, ep: Endpoint | None) -> None:
        if not _programmed(ep):
            return
        assert ep is not None and ep.ip is not None
        by_labels = self.groups.setdefault(ep.namespace or "", {})
        lkey = tuple(sorted(ep.labels.items()))
        group = by_labels.get(lkey)
        if group is None:
            group = by_labels[lkey] = PodGroup(ep)
        group.ips[ep.key] = _ip_int(ep.ip)
        if ep.node == self.node:
            group.local[ep.key] = self._keys(ep)

    def pod_removed(self, ep: Endpoint | None) -> None:
        if not _programmed(ep):
            return
        assert ep is not None
        by_labels = self.groups.get(ep.namespace or "", {})
        lkey = tuple(sorted(ep.labels.items()))
        group = by_labels.get(lkey)
        if group is None:
            return
        group.ips.pop(ep.key, None)
        group.local.pop(ep.key, None)
        if not group.ips:
            del by_labels[lkey]

    def label_groups(self) -> list[tuple[Endpoint, tuple[int, ...]]]:
        return [(g.rep, tuple(g.ips.values())) for by_labels in self.groups.values() for g in by_labels.values()]


class _Shim:
    """What the builder and ``peer_matches`` ask of the cluster: namespace labels."""

    ipblock_matches_pods = True

    def __init__(self, ns_labels: Callable[[str | None], Mapping[str, str]]) -> None:
        self.ns_labels = ns_labels


class _KnownSets(dict):  # type: ignore[type-arg]
    """The builder's sets: existing sets count as present, so their members are not recomputed."""

    def __init__(self, existing: Mapping[str, NftSet]) -> None:
        super().__init__()
        self.existing = existing

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self.existing


class _GroupBuilder(_Builder):
    """The renderer's builder, fed from the book's groups instead of every pod."""

    def __init__(self, book: PolicyBook, table: NftTable, ns_labels: Callable[[str | None], Mapping[str, str]]) -> None:
        self.state = _Shim(ns_labels)  # type: ignore[assignment]
        self.local = []
        self.sets = _KnownSets(table.sets)
        self.pod_peers = {}
        self.requests = None
        self._book = book
        self._cached: list[tuple[Endpoint, tuple[int, ...]]] | None = None

    @property  # type: ignore[override]
    def _groups(self) -> list[tuple[Endpoint, tuple[int, ...]]]:
        if self._cached is None:
            self._cached = self._book.label_groups()
        return self._cached


@dataclass
class PolicyUpdate:
    """The commands of one policy update and its result as values (applied once committed)."""

    commands: list[dict[str, Any]]
    plan: SyncPlan
    sets_added: dict[str, NftSet]
    sets_removed: set[str]
    pod_peers: dict[str, PodPeer]
    chains: dict[str, NftChain]
    chains_removed: set[str]
    chain_sets: dict[str, tuple[str, ...]]
    maps: dict[str, dict[tuple[str, ...], Verdict]]
    usage: Counter[Verdict]
    signatures_added: dict[str, tuple[str, tuple[str, ...]]]
    chain_users: Counter[str]
    set_users: Counter[str]
    policies: dict[str, PolicyIR | None]


def _has_named_ports(pol: PolicyIR | None) -> bool:
    return pol is not None and any(pm.is_named for d in _DIRECTIONS for r in pol.rules(d)  # type: ignore[arg-type]
                                   for pm in (r.ports or ()))


def _refs_of(book: PolicyBook, verdict: Verdict | None) -> tuple[str, ...]:
    if verdict is None or verdict[0] != "goto" or verdict[1] not in book.signatures:
        return ()
    return book.signatures[verdict[1]][1]


def _same_selection(a: PolicyIR, b: PolicyIR) -> bool:
    return a.isolates == b.isolates and a.pod_selector.to_dict() == b.pod_selector.to_dict()


def plan_policies(live: "LiveTable", changes: Sequence[PolicyChange],
                  ns_labels: Callable[[str | None], Mapping[str, str]]) -> PolicyUpdate | None:
    """The update for some policy changes (old IR, new IR; None for absent), or None: render in
    full. Reads the live table and its book, never changes them."""
    book, table, index = live.book, live.table, live.index
    if book is None or index.pod_dependent_extras:
        return None
    if any(_has_named_ports(p) for change in changes for p in change):
        return None
    pols: dict[str, PolicyIR | None] = {}
    #: affected local groups → their (egress refs, ingress refs) after the changes
    refs: dict[int, tuple[PodGroup, dict[str, tuple[str, ...]]]] = {}
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
                hit = refs[id(group)] = (group, {"egress": _refs_of(book, table.maps[FROM_MAP].elements.get(from_key)),
                                                 "ingress": _refs_of(book, table.maps[TO_MAP].elements.get(to_key))})
            cur = hit[1]
            for direction in _DIRECTIONS:
                kept = [r for r in cur[direction] if r != ref]
                if now and new is not None and direction in new.isolates:
                    kept.append(ref)
                cur[direction] = tuple(sorted(kept))
    # Dispatch entries of the affected pods, and which signature chains appear or go.
    maps: dict[str, dict[tuple[str, ...], Verdict]] = {FROM_MAP: {}, TO_MAP: {}}
    old_maps: dict[str, dict[tuple[str, ...], Verdict]] = {FROM_MAP: {}, TO_MAP: {}}
    usage: Counter[Verdict] = Counter()
    new_sigs: dict[str, tuple[str, tuple[str, ...]]] = {}
    for group, cur in refs.values():
        verdicts: dict[str, Verdict] = {}
        for direction in _DIRECTIONS:
            r = cur[direction]
            if not r:
                verdicts[direction] = ("goto", EGRESS_OK) if direction == "egress" else ("accept",)
                continue
            sig = _sig_chain_name(direction, r)
            verdicts[direction] = ("goto", sig)
            if sig not in book.signatures:
                new_sigs[sig] = (direction, r)
        for from_key, to_key in group.local.values():
            for name, key, verdict in ((FROM_MAP, from_key, verdicts["egress"]), (TO_MAP, to_key, verdicts["ingress"])):
                was = table.maps[name].elements.get(key)
                if was == verdict:
                    continue
                if was is not None:
                    usage[was] -= 1
                    old_maps[name][key] = was
                usage[verdict] += 1
                maps[name][key] = verdict
    sigs_removed = {v[1] for v, n in usage.items() if n < 0 and v[0] == "goto" and v[1] in book.signatures
                    and live.usage[v] + n <= 0}
    sigs_added = {s: d for s, d in new_sigs.items() if usage[("goto", s)] > 0}
    chain_users: Counter[str] = Counter()
    for sig in sigs_removed:
        direction, r = book.signatures[sig]
        chain_users.subtract(_policy_chain_name(ref, direction) for ref in r)
    for direction, r in sigs_added.values():
        chain_users.update(_policy_chain_name(ref, direction) for ref in r)
    # Policy chains: added, removed, or rewritten (the changed policies' own).
    chains: dict[str, NftChain] = {}
    chains_removed: set[str] = set()
    chain_sets: dict[str, tuple[str, ...]] = {}
    set_users: Counter[str] = Counter()
    builder = _GroupBuilder(book, table, ns_labels)
    rerender = {(d, ref) for ref, p in pols.items() if p is not None for d in _DIRECTIONS}
    touched = {(d, ref) for d in _DIRECTIONS for ref in pols} | {
        (d, ref) for sig in sigs_removed for d, r in [book.signatures[sig]] for ref in r} | {
        (d, ref) for d, r in sigs_added.values() for ref in r}
    for direction, ref in sorted(touched):
        name = _policy_chain_name(ref, direction)
        users = book.chain_users[name] + chain_users[name]
        present = name in table.chains
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
        chain = _policy_chain(builder, pol, direction)  # type: ignore[arg-type]
        chains[name] = chain
        chain_sets[name] = chain_set_refs(chain)
        if present:
            set_users.subtract(book.chain_sets.get(name, ()))
        set_users.update(chain_sets[name])
    sets_removed = {s for s, n in set_users.items() if n < 0 and book.set_users[s] + n <= 0 and s in table.sets}
    sets_added = {s: builder.sets[s] for s, n in set_users.items()
                  if n > 0 and s not in table.sets and dict.__contains__(builder.sets, s)}
    # The touched objects before and after; plan_sync orders the commands.
    before = NftTable(sets={s: table.sets[s] for s in sets_removed},
                      maps={n: NftMap(n, table.maps[n].key_types, old_maps[n]) for n in maps},
                      chains={**{n: table.chains[n] for n in chains if n in table.chains},
                              **{n: table.chains[n] for n in chains_removed},
                              **{s: table.chains[s] for s in sigs_removed}})
    after = NftTable(sets=sets_added,
                     maps={n: NftMap(n, table.maps[n].key_types, maps[n]) for n in maps},
                     chains={**chains, **{s: _signature_chain_of(d, r, index.sig_own) for s, (d, r) in sigs_added.items()}})
    plan = plan_sync(after, before)
    return PolicyUpdate(plan.commands, plan, sets_added, sets_removed,
                        {s: builder.pod_peers[s] for s in sets_added if s in builder.pod_peers},
                        dict(after.chains), chains_removed | sigs_removed, chain_sets, maps, usage,
                        sigs_added, chain_users, set_users, pols)


def apply_policies(live: "LiveTable", update: PolicyUpdate) -> None:
    """Make the live table and its book hold the update's result (in place)."""
    book, table = live.book, live.table
    assert book is not None
    sets: dict[str, NftSet] = table.sets  # type: ignore[assignment]
    chains: dict[str, NftChain] = table.chains  # type: ignore[assignment]
    pod_sets: dict[str, PodPeer] = live.index.pod_sets  # type: ignore[assignment]
    for name in update.chains_removed:
        chains.pop(name, None)
        book.chain_sets.pop(name, None)
        book.signatures.pop(name, None)
    chains.update(update.chains)
    book.chain_sets.update(update.chain_sets)
    book.signatures.update(update.signatures_added)
    for name in update.sets_removed:
        sets.pop(name, None)
        pod_sets.pop(name, None)
    sets.update(update.sets_added)
    pod_sets.update(update.pod_peers)
    for name, changed in update.maps.items():
        elements = table.maps[name].elements
        for key, verdict in changed.items():
            elements[key] = verdict  # type: ignore[index]
    live.usage.update(update.usage)
    for counter, delta in ((book.chain_users, update.chain_users), (book.set_users, update.set_users)):
        counter.update(delta)
        for key in [k for k in delta if counter[k] <= 0]:
            del counter[key]
    for verdict in [v for v in update.usage if live.usage[v] <= 0]:
        del live.usage[verdict]
    for ref, pol in update.policies.items():
        if pol is None:
            book.policies.pop(ref, None)
        else:
            book.policies[ref] = pol
