"""Pod changes applied to the last rendered table without rendering it again (pure).

A pod that is created, deleted, relabelled or readdressed changes only elements: its IP in the
pod-selector sets whose selector it (no longer) matches, and, on its own node, its two dispatch
map entries and its interface in ``pod-ifaces``. ``LiveTable.plan`` computes exactly those
without copying anything, and ``LiveTable.apply`` applies them to the table in place once the
kernel took them, so the cost of one pod change does not grow with the cluster. It returns None whenever the
result could differ from a full ``render`` (a chain that would appear or disappear, named-port
or pod-excluding sets, an unknown node address), and the caller renders in full instead.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from podnet.policy.cluster import ClusterState, Endpoint, peer_matches
from podnet.policy.ir import PolicyIR

from .nft_model import FAMILY, TABLE, Element, NftMap, NftSet, NftTable, Verdict, element_json, verdict_json
from .nft_policy_incremental import PolicyBook, PolicyChange, PolicyUpdate, apply_policies, plan_policies
from .nft_render import (EGRESS_OK, FROM_MAP, POD_IFACES, TO_MAP, RenderIndex, _sig_chain, workload_ifname)

_T = {"family": FAMILY, "table": TABLE}
PodChange = tuple[Endpoint | None, Endpoint | None]


class _Labels:
    """The one thing ``peer_matches`` asks of the cluster for pod peers: namespace labels."""

    def __init__(self, ns_labels: Callable[[str | None], Mapping[str, str]]) -> None:
        self.ns_labels = ns_labels
        self.ipblock_matches_pods = True


def _programmed(ep: Endpoint | None) -> bool:
    return bool(ep is not None and ep.selectable and ep.ip and ":" not in ep.ip)


@dataclass
class PodUpdate:
    """The element changes some pod changes make to one table: the commands for the kernel and
    the same changes as values, to apply to the table once the kernel took them."""

    commands: list[dict[str, Any]]
    #: set name → (elements removed, elements added)
    sets: dict[str, tuple[set[Element], set[Element]]] = field(default_factory=dict)
    #: map name → key → its new verdict (None: removed)
    maps: dict[str, dict[tuple[str, ...], Verdict | None]] = field(default_factory=dict)
    #: the pod changes themselves (for the policy book's pod groups)
    pods: list[PodChange] = field(default_factory=list)


class LiveTable:
    """The last committed table, kept current in place by pod updates, with what planning one
    needs in O(change): the render index and how many dispatch entries use each verdict (a
    signature chain no entry uses would disappear in a full render). Given the state the table
    was rendered from, it also keeps the ``PolicyBook`` that policy updates are planned with."""

    def __init__(self, table: NftTable, index: RenderIndex, state: ClusterState | None = None) -> None:
        self.table = table
        self.index = index
        self.usage: Counter[Verdict] = Counter()
        for name in (FROM_MAP, TO_MAP):
            self.usage.update(table.maps[name].elements.values())
        self.book: PolicyBook | None = None
        if state is not None and state.ipblock_matches_pods:
            self.book = PolicyBook(table, index.node, index.interfaces, index.signatures, state.pods, state.policies)

    def plan_policies(self, changes: Sequence[PolicyChange],
                      ns_labels: Callable[[str | None], Mapping[str, str]]) -> PolicyUpdate | None:
        """The update for policy changes (old IR, new IR), or None: render in full."""
        return plan_policies(self, changes, ns_labels)

    def apply_policies(self, update: PolicyUpdate) -> None:
        apply_policies(self, update)

    def plan(self, changes: Sequence[PodChange], policies_by_ns: Mapping[str, Sequence[PolicyIR]],
             ns_labels: Callable[[str | None], Mapping[str, str]]) -> PodUpdate | None:
        """The update, or None: render in full. Reads the table, never copies or changes it."""
        return _plan(self, changes, policies_by_ns, ns_labels)

    def apply(self, update: PodUpdate) -> None:
        """Make the table hold the update's result (in place: a change costs its own size). A
        set is made mutable the first time it changes (one copy per set per full render)."""
        sets = self.table.sets
        for name, (gone, fresh) in update.sets.items():
            cur = sets[name]
            elems = cur.elements
            if not isinstance(elems, set):
                elems = set(elems)
                sets[name] = NftSet(cur.name, cur.types, cur.interval, elems)  # type: ignore[index]
            elems -= gone
            elems |= fresh
        for name, changed in update.maps.items():
            elements = self.table.maps[name].elements
            for key, verdict in changed.items():
                old = elements.get(key)
                if old is not None:
                    self.usage[old] -= 1
                if verdict is None:
                    elements.pop(key, None)  # type: ignore[attr-defined]
                else:
                    elements[key] = verdict  # type: ignore[index]
                    self.usage[verdict] += 1
        if self.book is not None:
            for old, new in update.pods:
                self.book.pod_removed(old)
                self.book.pod_added(new)


def _plan(live: LiveTable, changes: Sequence[PodChange], policies_by_ns: Mapping[str, Sequence[PolicyIR]],
          ns_labels: Callable[[str | None], Mapping[str, str]]) -> PodUpdate | None:
    table, index = live.table, live.index
    if index.pod_dependent_extras:
        return None
    shim = _Labels(ns_labels)
    #: per set, element → wanted (last change wins: changes come in store order)
    wanted: dict[str, dict[Any, bool]] = {}
    base = {FROM_MAP: table.maps[FROM_MAP].elements, TO_MAP: table.maps[TO_MAP].elements}
    #: per map, key → its value after the changes (None: absent); only touched keys
    over: dict[str, dict[tuple[str, ...], Verdict | None]] = {FROM_MAP: {}, TO_MAP: {}}
    ifaces: dict[tuple[str, ...], bool] = {}
    released: set[Verdict] = set()

    def pop(name: str, key: tuple[str, ...]) -> Verdict:
        o = over[name]
        cur = o[key] if key in o else base[name].get(key)
        o[key] = None
        return cur if cur is not None else ("accept",)

    for old, new in changes:
        for ep in (old, new):
            if ep is not None and ep.is_pod and ep.selectable and ep.ip and ":" in ep.ip:
                return None  # IPv6 pods are not programmed; let the full render decide
        for name, peer in index.pod_sets.items():
            if _programmed(old) and peer_matches(peer, old, shim):  # type: ignore[arg-type]
                wanted.setdefault(name, {})[((_int(old.ip), _int(old.ip)),)] = False  # type: ignore[union-attr]
            if _programmed(new) and peer_matches(peer, new, shim):  # type: ignore[arg-type]
                wanted.setdefault(name, {})[((_int(new.ip), _int(new.ip)),)] = True  # type: ignore[union-attr]
        if _programmed(old) and old.node == index.node:  # type: ignore[union-attr]
            ifname = _ifname(index, old)  # type: ignore[arg-type]
            released.add(pop(FROM_MAP, (ifname, str(old.ip))))  # type: ignore[union-attr]
            released.add(pop(TO_MAP, (ifname,)))
            ifaces[(ifname,)] = False
        if _programmed(new) and new.node == index.node:  # type: ignore[union-attr]
            assert new is not None
            if new.host_ip and new.host_ip not in index.own:
                return None
            ifname = _ifname(index, new)
            selecting = [p for p in policies_by_ns.get(new.namespace or "", ()) if p.pod_selector.matches(new.labels)]
            for direction, name, key, allow in (("egress", FROM_MAP, (ifname, str(new.ip)), ("goto", EGRESS_OK)),
                                                ("ingress", TO_MAP, (ifname,), ("accept",))):
                isolating = tuple(p for p in selecting if direction in p.isolates)
                if not isolating:
                    over[name][key] = allow
                    continue
                sig = _sig_chain(direction, isolating)
                if sig not in table.chains:
                    return None  # a chain a full render would add
                over[name][key] = ("goto", sig)
            ifaces[(ifname,)] = True
    # The final map values, only for keys whose value changes.
    final: dict[str, dict[tuple[str, ...], Verdict | None]] = {
        name: {k: v for k, v in over[name].items() if base[name].get(k) != v} for name in over}
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
        if any(live.usage[v] + delta[v] <= 0 for v in chains_left):
            return None
    update = PodUpdate([], pods=list(changes))
    cmds = update.commands
    for name in sorted(wanted):
        old_set = table.sets[name]
        gone = {e for e, keep in wanted[name].items() if not keep and e in old_set.elements}
        fresh = {e for e, keep in wanted[name].items() if keep and e not in old_set.elements}
        if gone:
            cmds.append({"delete": {"element": {**_T, "name": name,
                                                "elem": [element_json(e, old_set.types) for e in sorted(gone)]}}})
        if fresh:
            cmds.append({"add": {"element": {**_T, "name": name,
                                             "elem": [element_json(e, old_set.types) for e in sorted(fresh)]}}})
        if gone or fresh:
            update.sets[name] = (gone, fresh)
    have_ifaces = table.sets[POD_IFACES].elements
    gone_if = {k for k, keep in ifaces.items() if not keep and k in have_ifaces}
    new_if = {k for k, keep in ifaces.items() if keep and k not in have_ifaces}
    if gone_if:
        cmds.append({"delete": {"element": {**_T, "name": POD_IFACES, "elem": sorted(k[0] for k in gone_if)}}})
    if new_if:
        cmds.append({"add": {"element": {**_T, "name": POD_IFACES, "elem": sorted(k[0] for k in new_if)}}})
    if gone_if or new_if:
        update.sets[POD_IFACES] = (gone_if, new_if)
    for name in (FROM_MAP, TO_MAP):
        m = table.maps[name]
        changed = final[name]
        stale = sorted(k for k in changed if k in m.elements)
        fresh_keys = sorted(k for k, v in changed.items() if v is not None)
        if stale:
            cmds.append({"delete": {"element": {**_T, "name": name, "elem": [m.key_json(k) for k in stale]}}})
        if fresh_keys:
            cmds.append({"add": {"element": {**_T, "name": name,
                                             "elem": [[m.key_json(k), verdict_json(changed[k])]  # type: ignore[arg-type]
                                                      for k in fresh_keys]}}})
        if changed:
            update.maps[name] = changed
    return update


def copy_table(table: NftTable) -> NftTable:
    """A copy whose sets and maps can change without touching ``table`` (chains are shared:
    they are never changed in place)."""
    return NftTable(sets={n: NftSet(n, s.types, s.interval, frozenset(s.elements)) for n, s in table.sets.items()},
                    maps={n: NftMap(n, m.key_types, dict(m.elements)) for n, m in table.maps.items()},
                    chains=dict(table.chains))


def update_for_pods(table: NftTable, index: RenderIndex, changes: Sequence[PodChange],
                    policies_by_ns: Mapping[str, Sequence[PolicyIR]],
                    ns_labels: Callable[[str | None], Mapping[str, str]]) -> tuple[NftTable, list[dict[str, Any]]] | None:
    """(new table, the element commands that turn ``table`` into it), or None: render in full.
    ``table`` is left as it is (this copies it; the agent uses ``LiveTable`` to avoid that)."""
    live = LiveTable(copy_table(table), index)
    update = live.plan(changes, policies_by_ns, ns_labels)
    if update is None:
        return None
    live.apply(update)
    out = live.table
    return NftTable(sets={n: NftSet(n, s.types, s.interval, frozenset(s.elements)) for n, s in out.sets.items()},
                    maps=out.maps, chains=out.chains), update.commands


def _ifname(index: RenderIndex, ep: Endpoint) -> str:
    return index.interfaces.get(ep.key) or workload_ifname(ep.namespace or "default", ep.name or "")


def _int(ip: str | None) -> int:
    return int(ipaddress.ip_address(ip))
