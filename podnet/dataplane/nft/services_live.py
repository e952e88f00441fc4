"""Service changes planned on the live ``ip podnet-svc`` table, in O(change) (pure).

A Service's part of the table (``services.Fragment``) depends on its own plan alone, so a
change re-renders only the Services whose plan changed: the touched objects before (their old
fragments) and after (their new ones) go through ``plan_sync``, which orders the commands
(new chains and sets first, removals last) and changes map and set elements one by one. The
shared maps and the ``cluster-ips`` set are in both partial tables, so only their touched
elements move.

A plan is None whenever the result could differ from a full render: the node context changed
(addresses, pod CIDRs, service CIDR), or two Services claim one map key (the same externalIP
and port twice: a full render decides which keeps it). Unit tests hold the live table equal to
a full render after every step of random change sequences.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.services.proxy import ProxyPlan, ServicePlan

from .diff import SyncPlan, plan_sync
from .model import Element, MapKey, NftChain, NftMap, NftSet, NftTable, Verdict
from .services import CLUSTER_IPS, Fragment, NodeContext, base_table, merge, render_service
from .tracker import TableTracker


@dataclass(frozen=True)
class ServiceUpdate:
    """One planned change: the commands (in ``plan``) and the Services it changes."""

    plan: SyncPlan
    #: Service key → its new plan and fragment (None: the Service is gone)
    services: Mapping[str, tuple[ServicePlan, Fragment] | None] = field(default_factory=dict)

    @property
    def commands(self) -> list[dict[str, Any]]:
        return self.plan.commands


class LiveServiceTable:
    """What the kernel's service table holds since the last full render, per Service."""

    def __init__(self, plan: ProxyPlan, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.plans: dict[str, ServicePlan] = dict(plan.services)
        self.fragments: dict[str, Fragment] = {k: render_service(s) for k, s in sorted(plan.services.items())}
        self.table = merge(base_table(ctx), self.fragments.values())
        self.tracker = TableTracker(self.table)
        #: (map, key) → the Services whose fragment has that key
        self._owners: dict[tuple[str, MapKey], set[str]] = {}
        for key, frag in self.fragments.items():
            self._own(key, frag, add=True)

    def _own(self, svc: str, frag: Fragment, *, add: bool) -> None:
        for name, entries in frag.entries.items():
            for k in entries:
                owners = self._owners.setdefault((name, k), set())
                if add:
                    owners.add(svc)
                else:
                    owners.discard(svc)
                    if not owners:
                        del self._owners[(name, k)]

    def plan(self, services: Mapping[str, ServicePlan], ctx: NodeContext,
             dirty: Iterable[str] | None = None) -> ServiceUpdate | None:
        """The update that brings the table to ``services`` (the Services in ``dirty`` are the
        only ones that may have changed; None: compare all), or None: render in full."""
        if ctx != self.ctx:
            return None
        keys = set(self.plans) | set(services) if dirty is None else set(dirty)
        changed = sorted(k for k in keys if self.plans.get(k) != services.get(k))
        old = {k: self.fragments[k] for k in changed if k in self.fragments}
        new = {k: (services[k], render_service(services[k])) for k in changed if k in services}
        if self._contested(old, {k: f for k, (_, f) in new.items()}):
            return None
        before = self._partial(old.values())
        after = self._partial(f for _, f in new.values())
        return ServiceUpdate(plan_sync(after, before), {k: new.get(k) for k in changed})

    def _contested(self, old: Mapping[str, Fragment], new: Mapping[str, Fragment]) -> bool:
        """Whether a touched map key has, or would have, more than one Service."""
        for svc, frag in [*old.items(), *new.items()]:
            for name, entries in frag.entries.items():
                for k in entries:
                    others = self._owners.get((name, k), set()) - set(old) - set(new)
                    claims = len(others) + sum(1 for f in new.values() if k in f.entries.get(name, {}))
                    if claims > 1 or (svc in old and len(self._owners.get((name, k), ())) > 1):
                        return True
        return False

    def _partial(self, fragments: Iterable[Fragment]) -> NftTable:
        """The touched part of the table: the fragments' objects, the shared maps and the
        ClusterIP set holding only their elements."""
        t = self.tracker
        chains: dict[str, NftChain] = {}
        sets: dict[str, NftSet] = {}
        entries: dict[str, dict[MapKey, Verdict]] = {name: {} for name in self.table.maps}
        cluster_ips: set[Element] = set()
        for frag in fragments:
            chains.update(frag.chains)
            sets.update(frag.sets)
            for name, items in frag.entries.items():
                entries[name].update(items)
            if frag.cluster_ip is not None:
                cluster_ips.add(frag.cluster_ip)
        cip = t.set_def(CLUSTER_IPS)
        sets[CLUSTER_IPS] = NftSet(CLUSTER_IPS, cip.types, cip.interval, frozenset(cluster_ips))
        maps = {name: NftMap(name, t.map_def(name).key_types, items) for name, items in entries.items()}
        return NftTable(t.id.family, t.id.name, sets, maps, chains)

    def commit(self, update: ServiceUpdate) -> None:
        """Bring the live state to the update's result (the kernel took its commands): every
        old fragment out first, then every new one in (a key may move between Services)."""
        t = self.tracker
        for svc in update.services:
            old = self.fragments.pop(svc, None)
            self.plans.pop(svc, None)
            if old is None:
                continue
            self._own(svc, old, add=False)
            for name in old.chains:
                t.remove_chain(name)
            for name in old.sets:
                t.remove_set(name)
            for name, entries in old.entries.items():
                t.update_entries(name, dict.fromkeys(entries))
            if old.cluster_ip is not None:
                t.update_elements(CLUSTER_IPS, (old.cluster_ip,), ())
        for svc, change in update.services.items():
            if change is None:
                continue
            plan, frag = change
            self.plans[svc], self.fragments[svc] = plan, frag
            self._own(svc, frag, add=True)
            for chain in frag.chains.values():
                t.put_chain(chain)
            for s in frag.sets.values():
                t.add_set(s)
            for name, entries in frag.entries.items():
                t.update_entries(name, dict(entries))
            if frag.cluster_ip is not None:
                t.update_elements(CLUSTER_IPS, (), (frag.cluster_ip,))
