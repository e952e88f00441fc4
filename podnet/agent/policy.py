"""The node agent's policy reconciler: store snapshot → policy IR → this node's nft table.

``PolicyReconciler(node).reconcile(snapshot)`` builds the engine's ``ClusterState`` from the
snapshot (the very IR ``podnet explain`` reads), renders this node's ``inet podnet`` table and
syncs it in one transaction. Unchanged snapshots are skipped; every ``readback_every`` seconds
the sync diffs against the kernel instead of the cache, which repairs drift. It runs in the
node's network namespace (the agent's own), or targets one by name (tests, benchmarks).

The status of the last pass is written to ``<state>/nodes/<node>/policy.json`` when a state
directory is given, so ``podnet verify`` and benchmarks can see which revision is enforced.
"""
from __future__ import annotations

import bisect
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.dataplane.nft.dispatch import DispatchIndex, dispatch_entries
from podnet.dataplane.nft.flows import FlowVerdicts, TrackedFlow
from podnet.dataplane.nft.live import LiveTable
from podnet.dataplane.nft.model import MapKey, NftChain, Verdict
from podnet.dataplane.nft.recheck import judge_flows, pods_to_recheck_after
from podnet.dataplane.nft.render import FROM_MAP, TO_MAP, RenderMemo, render_indexed
from podnet.dataplane.nft.tiers import render_tiered_layout
from podnet.dataplane.nft.tiers_live import TieredLiveTable, TieredUpdate
from podnet.kernel.conntrack import enforce_pod_flows
from podnet.kernel.nft.apply import NftApplier
from podnet.model import (
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    CalicoNetworkPolicy,
    ClusterNetworkPolicy,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Node,
    Pod,
    Tier,
)
from podnet.policy.cluster import ClusterState, Endpoint, PeerContext, compile_any, endpoint_for_pod
from podnet.policy.ir import PolicyIR, compile_policy
from podnet.telemetry import NULL
from podnet.telemetry.dataplane import DataplaneMetrics

log = logging.getLogger("podnet.agent.policy")
READBACK_SECONDS = 10.0
#: the policy kinds compiled into tier chains (``dataplane.nft.tiers``); with none of them the
#: table is the Kubernetes-only one (fast paths: ``dataplane.nft.live``), with one of them the
#: tiered one (fast paths: ``dataplane.nft.tiers_live``)
TIERED_KINDS = (CalicoNetworkPolicy, GlobalNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy,
                ClusterNetworkPolicy)
#: the live table of the last full pass, Kubernetes-only or tiered
Live = LiveTable | TieredLiveTable


@dataclass
class PolicyStatus:
    """What the last pass did (also the content of ``policy.json``)."""

    node: str
    revision: int = -1
    synced_at: float = 0.0
    seconds: float = 0.0
    skipped: bool = False
    plan: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cluster_state(snapshot: Any) -> ClusterState:
    """The engine's view of a store snapshot (namespaces, pods, policies)."""
    return ClusterState.build(snapshot.of(Namespace), snapshot.of(Pod), snapshot.of(NetworkPolicy))


class StateCache:
    """``cluster_state`` that recompiles only objects whose resourceVersion changed: compiling a
    thousand policies and ten thousand pods on every pass would dominate a one-label change."""

    def __init__(self) -> None:
        self._policies: dict[tuple[str, str], tuple[str | None, PolicyIR]] = {}
        self._pods: dict[tuple[str, str], tuple[str | None, Endpoint]] = {}
        self._tiered: dict[type, dict[tuple[str, str], tuple[str | None, PolicyIR]]] = {cls: {} for cls in TIERED_KINDS}

    @staticmethod
    def _fresh(cache: dict, objs: Any, make: Any) -> list[Any]:  # type: ignore[type-arg]
        out, seen = [], set()
        for obj in objs:
            key = (obj.metadata.namespace or "default", obj.metadata.name)
            rv = obj.metadata.resource_version
            hit = cache.get(key)
            if hit is None or rv is None or hit[0] != rv:
                hit = cache[key] = (rv, make(obj))
            seen.add(key)
            out.append(hit[1])
        for key in set(cache) - seen:
            del cache[key]
        return out

    def build(self, snapshot: Any) -> ClusterState:
        # Calico's NetworkPolicy shares the kind name: the class tells them apart
        k8s = [o for o in snapshot.of(NetworkPolicy) if isinstance(o, NetworkPolicy)]
        policies = self._fresh(self._policies, k8s, compile_policy)
        pods = self._fresh(self._pods, snapshot.of(Pod), endpoint_for_pod)
        tiered = [ir for cls, cache in self._tiered.items()
                  for ir in self._fresh(cache, [o for o in snapshot.of(cls) if isinstance(o, cls)], compile_any)]
        if not tiered:
            return ClusterState.from_parts(snapshot.of(Namespace), pods, policies)
        sets = [o for cls in (NetworkSet, GlobalNetworkSet) for o in snapshot.of(cls) if isinstance(o, cls)]
        return ClusterState.from_parts(snapshot.of(Namespace), pods, policies + tiered,
                                       tiers=[o for o in snapshot.of(Tier) if isinstance(o, Tier)],
                                       network_sets=sets, nodes=[o for o in snapshot.of(Node) if isinstance(o, Node)])


def node_ips(snapshot: Any, node: str) -> list[str]:
    """The node's own addresses from its Node resource (pods' hostIP adds to these)."""
    obj = snapshot.get(Node, node)
    if obj is None:
        return []
    return sorted({a.address for a in (obj.status.addresses or ()) if a.type in ("InternalIP", "ExternalIP")})


class PolicyReconciler:
    """Keeps this node's ``inet podnet`` table equal to what the policies say."""

    def __init__(self, node: str, *, netns: str | None = None, state_dir: str | None = None,
                 readback_every: float = READBACK_SECONDS, to_host: str = "Drop",
                 metrics: DataplaneMetrics | None = None, cut_flows: bool = True) -> None:
        self.node = node
        #: hold the tracked flows of the pods whose rules a commit changed to the new policy, so
        #: a tightened policy cuts established flows (``dataplane.nft.recheck``)
        self.cut_flows = cut_flows
        self.to_host = to_host
        self.applier = NftApplier(netns)
        self.metrics = metrics if metrics is not None else DataplaneMetrics(NULL, str(self.applier.table))
        self.state_dir = state_dir
        self.readback_every = readback_every
        self._last_revision: int | None = None
        self._last_readback = 0.0
        self._cache = StateCache()
        self._memo = RenderMemo()
        self._last: tuple[Live, _Known] | None = None  # the committed table, what it was made from
        self.status = PolicyStatus(node)

    def reconcile(self, snapshot: Any) -> PolicyStatus:
        """One full pass; a failed one keeps the old rules and is returned with its ``error``
        (the next pass retries)."""
        now = time.monotonic()
        idle = snapshot.revision == self._last_revision
        overdue = now - self._last_readback
        # Reading the table back costs a full listing: do it on idle passes (the resync timer),
        # so a change is never delayed by it, unless changes have kept it away for too long.
        read_back = overdue >= self.readback_every and (idle or overdue >= 6 * self.readback_every)
        if idle and not read_back:
            self.status.skipped = True
            return self.status
        t0 = time.perf_counter()
        status = PolicyStatus(self.node, revision=snapshot.revision)
        try:
            state = self._cache.build(snapshot)
            tiered = bool(state.tiered)
            if tiered:  # the same table render_indexed gives, with what the tiered fast paths plan from
                table, index, layout = render_tiered_layout(state, self.node, node_ips=node_ips(snapshot, self.node),
                                                            to_host=self.to_host)
            else:
                table, index = render_indexed(state, self.node, node_ips=node_ips(snapshot, self.node),
                                              memo=self._memo, to_host=self.to_host)
            self._last = None
            plan = self.applier.sync(table, read_back=read_back)
            if read_back:
                self.metrics.resyncs.inc()
                if idle and not plan.empty:  # nothing changed in the store, yet the kernel had to
                    self.metrics.drift.inc()
            live: Live = TieredLiveTable(table, index, layout) if tiered else LiveTable(table, index, state)
            self._last = (live, _Known(dict(state.policies_by_ns), state))
            status.plan = plan.summary()
            status.plan["flows"] = self._cut_flows(plan.commands, table.chains, dispatch_entries(table, FROM_MAP),
                                                   dispatch_entries(table, TO_MAP), lambda: snapshot, state)
            status.counts = table.counts()
            self._last_revision = snapshot.revision
            if read_back:
                self._last_readback = now
            if not plan.empty:
                log.info("node %s: policy table synced at revision %d: %s", self.node, snapshot.revision,
                         {k: v for k, v in status.plan.items() if v and k != "touched_chains"})
        except Exception as exc:  # keep the old rules (fail closed) and retry on the next pass
            status.error = str(exc)
            self._last_revision = None
            self.metrics.failures.inc()
            log.error("node %s: policy sync failed: %s", self.node, exc)
        status.seconds = time.perf_counter() - t0
        status.synced_at = time.time()
        self._record(status, "full")
        self.status = status
        self._write_status()
        return status

    def reconcile_view(self, view: Any) -> PolicyStatus:
        """One pass over a ``LiveView``: pod-only changes go the fast way (element updates on the
        last table, no render), and so do policy-only changes (the changed policies' chains, the
        sets they need and the dispatch entries of the pods they (no longer) select, planned on
        the last table); anything else through ``reconcile`` with the full snapshot."""
        changes = view.poll()
        if changes == [] and self._last is not None and self._last_revision is not None \
                and view.revision != self._last_revision:
            self._last_revision = view.revision  # only keys outside the resources moved (IPAM blocks)
            self.status.revision = view.revision
            self.metrics.revision.set(view.revision)
            self._write_status()
            return self.status
        if changes and self._last is not None and self._last_revision is not None:
            fast = self._pods_only(view.revision, changes, view.snapshot)
            if fast is None:
                fast = self._policies_only(view.revision, changes, view.snapshot)
            if fast is not None:
                return fast
        return self.reconcile(view.snapshot())

    def _fast_path_allowed(self, changes: list[tuple[str, Any, Any]], *kinds: type) -> bool:
        """Only changes of these kinds, and a read-back not long overdue (else: the full path)."""
        if any(type(new if new is not None else old) not in kinds for _, old, new in changes):
            return False
        return time.monotonic() - self._last_readback < 6 * self.readback_every

    def _finish_fast_path(self, revision: int, plan: dict[str, Any], t0: float) -> PolicyStatus:
        """Record a pass the fast path committed; sizes move by a few elements, a full pass recounts."""
        self._last_revision = revision
        status = PolicyStatus(self.node, revision=revision, plan=plan, counts=self.status.counts)
        status.seconds = time.perf_counter() - t0
        status.synced_at = time.time()
        self._record(status, "incremental")
        self.status = status
        self._write_status()
        return status

    def _record(self, status: PolicyStatus, path: str) -> None:
        self.metrics.applied(path, status.seconds)
        if status.error is None:
            self.metrics.revision.set(status.revision)

    def _pods_only(self, revision: int, changes: list[tuple[str, Any, Any]],
                   snapshot_of: Callable[[], Any]) -> PolicyStatus | None:
        if not self._fast_path_allowed(changes, Pod):
            return None
        t0 = time.perf_counter()
        assert self._last is not None
        live, known = self._last
        pods = self._cache._pods
        pairs: list[tuple[Endpoint | None, Endpoint | None]] = []
        fresh: dict[tuple[str, str], tuple[str | None, Endpoint] | None] = {}
        for _key, old, new in changes:
            obj = new if new is not None else old
            k = (obj.metadata.namespace or "default", obj.metadata.name)
            before = pods.get(k)
            if old is not None and before is None:
                return None
            after = endpoint_for_pod(new) if new is not None else None
            pairs.append((before[1] if before else None, after))
            fresh[k] = (new.metadata.resource_version, after) if new is not None else None  # type: ignore[assignment]
        update = _tiered_plan(lambda: live.plan_pods(pairs)) if isinstance(live, TieredLiveTable) else live.plan_pods(
            pairs, known.policies_by_ns, known.peers)
        if update is None:
            return None
        try:
            how = self.applier.apply_elements(update.commands, live, _committer(live, update))
        except Exception as exc:  # the full path reads the kernel back and repairs
            self.metrics.failures.inc()
            log.warning("node %s: element update failed (%s); syncing in full", self.node, exc)
            self._last = None
            return None
        _merge(pods, fresh)
        cut = self._cut_flows(update.commands, live.chains, live.entries(FROM_MAP), live.entries(TO_MAP),
                              snapshot_of, index=live.dispatch)
        return self._finish_fast_path(revision, {"incremental": True, **update.plan.summary(), "path": how,
                                                 "flows": cut}, t0)

    def _policies_only(self, revision: int, changes: list[tuple[str, Any, Any]],
                       snapshot_of: Callable[[], Any]) -> PolicyStatus | None:
        assert self._last is not None
        live, known = self._last
        tiered = isinstance(live, TieredLiveTable)
        if not (self._fast_path_allowed(changes, NetworkPolicy, *TIERED_KINDS) if tiered
                else self._fast_path_allowed(changes, NetworkPolicy)):
            return None
        t0 = time.perf_counter()
        pairs: list[tuple[PolicyIR | None, PolicyIR | None]] = []
        fresh: dict[tuple[type, str, str], tuple[str | None, PolicyIR] | None] = {}
        for _key, old, new in changes:
            obj = new if new is not None else old
            cls = type(obj)
            compiled = self._cache._policies if cls is NetworkPolicy else self._cache._tiered[cls]
            k = (obj.metadata.namespace or "default", obj.metadata.name)
            before = compiled.get(k)
            if old is not None and before is None:
                return None
            try:
                after = (compile_policy(new) if cls is NetworkPolicy else compile_any(new)) if new is not None else None
            except Exception:  # the full path reports it
                return None
            pairs.append((before[1] if before else None, after))
            fresh[(cls, *k)] = (new.metadata.resource_version, after) if after is not None else None
        update = _tiered_plan(lambda: live.plan_policies(pairs)) if isinstance(live, TieredLiveTable) \
            else live.plan_policies(pairs, known.peers)
        if update is None:
            return None
        try:
            how = self.applier.apply_elements(update.commands, live, _committer(live, update))
        except Exception as exc:  # the full path reads the kernel back and repairs
            self.metrics.failures.inc()
            log.warning("node %s: policy update failed (%s); syncing in full", self.node, exc)
            self._last = None
            return None
        for (cls, ns, name), hit in fresh.items():
            _merge(self._cache._policies if cls is NetworkPolicy else self._cache._tiered[cls], {(ns, name): hit})
        if not tiered:
            for old_ir, new_ir in pairs:
                known.replace(old_ir, new_ir)
        cut = self._cut_flows(update.commands, live.chains, live.entries(FROM_MAP), live.entries(TO_MAP),
                              snapshot_of, index=live.dispatch)
        status = self._finish_fast_path(revision, {**update.plan.summary(), "incremental": True, "path": how,
                                                   "flows": cut}, t0)
        if not update.plan.empty:
            log.info("node %s: policy update at revision %d: %s", self.node, revision,
                     {k: v for k, v in status.plan.items() if v and k != "touched_chains"})
        return status

    def _cut_flows(self, commands: list[dict[str, Any]], chains: Mapping[str, NftChain],
                   from_pod: Mapping[MapKey, Verdict], to_pod: Mapping[MapKey, Verdict],
                   snapshot_of: Callable[[], Any], state: ClusterState | None = None,
                   index: DispatchIndex | None = None) -> dict[str, int]:
        """After a commit: hold the tracked flows of the local pods whose rules it changed to the
        new policy (an established flow the new rules deny would otherwise keep flowing; the
        table drops the ones marked denied). The engine's state is built only when such pods
        have tracked flows. A failure is logged: the rules are committed either way."""
        if not self.cut_flows or not commands:
            return {}
        addresses = pods_to_recheck_after(commands, chains, from_pod, to_pod, index)
        if not addresses:
            return {}

        def judge(flows: list[TrackedFlow]) -> FlowVerdicts:
            if not flows:
                return FlowVerdicts()
            snapshot = snapshot_of()
            return judge_flows(flows, state if state is not None else self._cache.build(snapshot), addresses,
                               node_ips(snapshot, self.node))

        try:
            return enforce_pod_flows(self.applier.netns, addresses, judge)
        except Exception as exc:
            log.warning("node %s: holding the flows of %d pods to the policy failed: %s", self.node,
                        len(addresses), exc)
            return {}

    def _write_status(self) -> None:
        if not self.state_dir:
            return
        path = os.path.join(self.state_dir, "nodes", self.node, "policy.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.status.to_dict(), f)
        os.replace(tmp, path)


def _merge(cache: dict[Any, Any], fresh: dict[Any, Any]) -> None:
    """Fold a committed fast-path pass into a cache: None drops the entry."""
    for key, hit in fresh.items():
        if hit is None:
            cache.pop(key, None)
        else:
            cache[key] = hit


def _tiered_plan(plan: Callable[[], TieredUpdate | None]) -> TieredUpdate | None:
    """A tiered live plan, or None (render in full) also when planning fails: the full pass is
    always correct, so a planner error costs time, not enforcement."""
    try:
        return plan()
    except Exception:
        log.exception("tiered live planning failed; rendering in full")
        return None


def _committer(live: Live, update: Any) -> Callable[[], None]:
    """What brings the live table (either kind) to the update's result once the kernel took it."""
    return lambda: live.commit(update)


@dataclass
class _Known:
    """What the fast paths plan with besides the table: the policies of each namespace (in the
    engine's order) and, for peer matching, the cluster of the last full pass (its namespaces'
    labels)."""

    policies_by_ns: dict[str, tuple[PolicyIR, ...]]
    peers: PeerContext

    def replace(self, old: PolicyIR | None, new: PolicyIR | None) -> None:
        """One policy changed: drop the old version, insert the new one in name order."""
        pol = new if new is not None else old
        if pol is None:
            return
        current = list(self.policies_by_ns.get(pol.namespace, ()))
        i = bisect.bisect_left(current, pol.name, key=lambda p: p.name)
        if i < len(current) and current[i].name == pol.name:
            del current[i]
        if new is not None:
            current.insert(i, new)
        self.policies_by_ns[pol.namespace] = tuple(current)


def read_status(state_dir: str, node: str) -> dict[str, Any] | None:
    """The last pass of a node's policy reconciler, if one ran."""
    try:
        with open(os.path.join(state_dir, "nodes", node, "policy.json")) as f:
            status: dict[str, Any] = json.load(f)
            return status
    except (OSError, ValueError):
        return None
