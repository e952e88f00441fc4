"""Desired vs observed ``inet podnet`` table → the smallest nftables JSON transaction (pure).

Set and map elements are diffed one by one; a chain is rewritten (flush + add its rules) only
when its rule marks differ; new objects are added before anything references them and old ones
removed after nothing does, so the whole change commits as one atomic transaction. When the
two cannot be reconciled in place (a set whose type changed, a base chain on another hook) the
plan deletes and re-adds the table, still in that one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .nft_model import FAMILY, TABLE, NftChain, NftMap, NftSet, NftTable, element_json, verdict_json

_T = {"family": FAMILY, "table": TABLE}


@dataclass
class SyncPlan:
    """The commands of one transaction and what they touch."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    full: bool = False
    sets_added: int = 0
    sets_removed: int = 0
    elements_added: int = 0
    elements_removed: int = 0
    chains_added: int = 0
    chains_rewritten: int = 0
    chains_removed: int = 0
    map_changes: int = 0
    touched_chains: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.commands

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "commands"} | {"commands": len(self.commands)}


def _set_ref(s: NftSet) -> dict[str, Any]:
    return {**_T, "name": s.name}


def _elements(s: NftSet, elems: list[Any]) -> dict[str, Any]:
    return {"element": {**_set_ref(s), "elem": [element_json(e, s.types) for e in elems]}}


def _compatible(desired: NftTable, observed: NftTable) -> bool:
    for name, s in desired.sets.items():
        o = observed.sets.get(name)
        if o is not None and (o.types != s.types or o.interval != s.interval):
            return False
    for name, m in desired.maps.items():
        om = observed.maps.get(name)
        if om is not None and om.key_types != m.key_types:
            return False
    for name, c in desired.chains.items():
        oc = observed.chains.get(name)
        if oc is not None and (oc.hook, oc.prio if oc.hook else 0) != (c.hook, c.prio if c.hook else 0):
            return False
    return not any(name in desired.maps for name in observed.sets) and not any(name in desired.sets for name in observed.maps)


def _full(desired: NftTable, observed_exists: bool) -> SyncPlan:
    plan = SyncPlan(full=True)
    if observed_exists:
        plan.commands.append({"delete": {"table": {"family": FAMILY, "name": TABLE}}})
    plan.commands += desired.to_json()
    plan.sets_added = len(desired.sets)
    plan.elements_added = sum(len(s.elements) for s in desired.sets.values())
    plan.chains_added = len(desired.chains)
    plan.map_changes = sum(len(m.elements) for m in desired.maps.values())
    plan.touched_chains = sorted(desired.chains)
    return plan


def _sort(elems: set[Any]) -> list[Any]:
    return sorted(elems, key=repr)


def plan_sync(desired: NftTable, observed: NftTable | None) -> SyncPlan:
    """The transaction that turns ``observed`` (None: no table yet) into ``desired``."""
    if observed is None:
        return _full(desired, False)
    if not _compatible(desired, observed):
        return _full(desired, True)
    plan = SyncPlan()
    cmds = plan.commands
    add: list[dict[str, Any]] = []
    # 1. sets: new ones with their elements; element deltas on existing ones (deletes first:
    #    an interval may be replaced by an overlapping one).
    for name, s in desired.sets.items():
        o = observed.sets.get(name)
        if o is None:
            add.append({"add": s.to_json()})
            plan.sets_added += 1
            plan.elements_added += len(s.elements)
            continue
        gone, new = o.elements - s.elements, s.elements - o.elements
        if gone:
            cmds.append({"delete": _elements(s, _sort(gone))})
            plan.elements_removed += len(gone)
        if new:
            add.append({"add": _elements(s, _sort(new))})
            plan.elements_added += len(new)
    cmds += add
    # 2. maps that do not exist yet (elements follow once the chains exist).
    for name, m in desired.maps.items():
        if name not in observed.maps:
            cmds.append({"add": NftMap(m.name, m.key_types, {}).to_json()})
    # 3. chains: create new ones, then (re)write the rules of new and changed ones.
    changed: list[NftChain] = []
    for name, c in desired.chains.items():
        oc = observed.chains.get(name)
        if oc is None:
            cmds.append({"add": c.to_json()})
            plan.chains_added += 1
            changed.append(c)
        elif oc.signature != c.signature:
            if oc.hook and oc.policy != c.policy:
                cmds.append({"add": c.to_json()})  # updates the base chain's policy
            cmds.append({"flush": {"chain": {**_T, "name": name}}})
            plan.chains_rewritten += 1
            changed.append(c)
    for c in changed:
        cmds += [{"add": r} for r in c.rules_json()]
        plan.touched_chains.append(c.name)
    # 4. dispatch map elements.
    for name, m in desired.maps.items():
        old = dict(observed.maps[name].elements) if name in observed.maps else {}
        stale = sorted(k for k, v in old.items() if m.elements.get(k) != v)
        fresh = sorted(k for k, v in m.elements.items() if old.get(k) != v)
        if stale:
            cmds.append({"delete": {"element": {**_T, "name": name, "elem": [m.key_json(k) for k in stale]}}})
        if fresh:
            cmds.append({"add": {"element": {**_T, "name": name,
                                             "elem": [[m.key_json(k), verdict_json(m.elements[k])] for k in fresh]}}})
        plan.map_changes += len(set(stale) | set(fresh))
    # 5. removals, once nothing refers to them: chains, then maps and sets.
    for name in sorted(set(observed.chains) - set(desired.chains)):
        cmds.append({"flush": {"chain": {**_T, "name": name}}})
    for name in sorted(set(observed.chains) - set(desired.chains)):
        cmds.append({"delete": {"chain": {**_T, "name": name}}})
        plan.chains_removed += 1
    for name in sorted(set(observed.maps) - set(desired.maps)):
        cmds.append({"delete": {"map": {**_T, "name": name}}})
    for name in sorted(set(observed.sets) - set(desired.sets)):
        cmds.append({"delete": {"set": {**_T, "name": name}}})
        plan.sets_removed += 1
    return plan

