"""Desired vs observed table → the smallest nftables JSON transaction (pure; any table).

Set and map elements are diffed one by one; a chain is rewritten (flush + add its rules) only
when its rule marks differ; new objects are added before anything references them and old ones
removed after nothing does, so the whole change commits as one atomic transaction. When the
two cannot be reconciled in place (a set whose type changed, a base chain of another type, hook
or priority) the plan deletes and re-adds the table, still in that one transaction.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from .model import Element, MapKey, NftChain, NftMap, NftSet, NftTable, TableId, Verdict, element_json, verdict_json


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


def set_elements(table: TableId, s: NftSet, elems: list[Element]) -> dict[str, Any]:
    """The body of an ``add``/``delete element`` command on a set."""
    return {"element": table.ref(name=s.name, elem=[element_json(e, s.types) for e in elems])}


def map_elements(table: TableId, m: NftMap, keys: Sequence[MapKey],
                 verdicts: Mapping[MapKey, Verdict] | None = None) -> dict[str, Any]:
    """The body of an ``element`` command on a map: keys with their verdicts (to add), or the
    keys alone (to delete)."""
    elems = [m.key_json(k) if verdicts is None else [m.key_json(k), verdict_json(verdicts[k])] for k in keys]
    return {"element": table.ref(name=m.name, elem=elems)}


def _compatible(desired: NftTable, observed: NftTable) -> bool:
    if desired.id != observed.id:
        return False
    for name, s in desired.sets.items():
        o = observed.sets.get(name)
        if o is not None and (o.types != s.types or o.interval != s.interval or o.timeout != s.timeout):
            return False
    for name, m in desired.maps.items():
        om = observed.maps.get(name)
        if om is not None and om.key_types != m.key_types:
            return False
    for name, c in desired.chains.items():
        oc = observed.chains.get(name)
        if oc is not None and oc.base != c.base:
            return False
    return not any(name in desired.maps for name in observed.sets) and not any(name in desired.sets for name in observed.maps)


def _full(desired: NftTable, observed: NftTable | None) -> SyncPlan:
    plan = SyncPlan(full=True)
    if observed is not None:
        plan.commands.append({"delete": {"table": {"family": observed.family, "name": observed.name}}})
    plan.commands += desired.to_json()
    plan.sets_added = len(desired.sets)
    plan.elements_added = sum(len(s.elements) for s in desired.sets.values())
    plan.chains_added = len(desired.chains)
    plan.map_changes = sum(len(m.elements) for m in desired.maps.values())
    plan.touched_chains = sorted(desired.chains)
    return plan


def _sort(elems: Set[Element]) -> list[Element]:
    return sorted(elems, key=repr)


def plan_sync(desired: NftTable, observed: NftTable | None) -> SyncPlan:
    """The transaction that turns ``observed`` (None: no table yet) into ``desired``."""
    if observed is None or not _compatible(desired, observed):
        return _full(desired, observed)
    t = desired.id
    plan = SyncPlan()
    cmds = plan.commands
    add: list[dict[str, Any]] = []
    # 1. sets: new ones with their elements; element deltas on existing ones (deletes first:
    #    an interval may be replaced by an overlapping one).
    for name, s in desired.sets.items():
        o = observed.sets.get(name)
        if o is None:
            add.append({"add": s.to_json(t)})
            plan.sets_added += 1
            plan.elements_added += len(s.elements)
            continue
        gone, new = o.elements - s.elements, s.elements - o.elements
        if gone:
            cmds.append({"delete": set_elements(t, s, _sort(gone))})
            plan.elements_removed += len(gone)
        if new:
            add.append({"add": set_elements(t, s, _sort(new))})
            plan.elements_added += len(new)
    cmds += add
    # 2. maps that do not exist yet (elements follow once the chains exist).
    for name, m in desired.maps.items():
        if name not in observed.maps:
            cmds.append({"add": NftMap(m.name, m.key_types).to_json(t)})
    # 3. chains: create new ones, then (re)write the rules of new and changed ones.
    changed: list[NftChain] = []
    for name, c in desired.chains.items():
        oc = observed.chains.get(name)
        if oc is None:
            cmds.append({"add": c.to_json(t)})
            plan.chains_added += 1
            changed.append(c)
        elif oc.signature != c.signature:
            if oc.hook and oc.policy != c.policy:
                cmds.append({"add": c.to_json(t)})  # updates the base chain's policy
            cmds.append({"flush": {"chain": t.ref(name=name)}})
            plan.chains_rewritten += 1
            changed.append(c)
    for c in changed:
        cmds += [{"add": r} for r in c.rules_json(t)]
        plan.touched_chains.append(c.name)
    # 4. dispatch map elements.
    for name, m in desired.maps.items():
        old = dict(observed.maps[name].elements) if name in observed.maps else {}
        stale = sorted(k for k, v in old.items() if m.elements.get(k) != v)
        fresh = sorted(k for k, v in m.elements.items() if old.get(k) != v)
        if stale:
            cmds.append({"delete": map_elements(t, m, stale)})
        if fresh:
            cmds.append({"add": map_elements(t, m, fresh, m.elements)})
        plan.map_changes += len(set(stale) | set(fresh))
    # 5. removals, once nothing refers to them: the rules of removed chains, then maps (their
    #    elements may jump to a removed chain), chains and sets.
    for name in sorted(set(observed.chains) - set(desired.chains)):
        cmds.append({"flush": {"chain": t.ref(name=name)}})
    for name in sorted(set(observed.maps) - set(desired.maps)):
        cmds.append({"delete": {"map": t.ref(name=name)}})
    for name in sorted(set(observed.chains) - set(desired.chains)):
        cmds.append({"delete": {"chain": t.ref(name=name)}})
        plan.chains_removed += 1
    for name in sorted(set(observed.sets) - set(desired.sets)):
        cmds.append({"delete": {"set": t.ref(name=name)}})
        plan.sets_removed += 1
    return plan

