"""The Deployment and ReplicaSet controllers and their garbage collection, applied to the store:
each pass plans with the pure planners in ``podnet.controllers`` from one snapshot and writes
the result (objects created, scaled, annotated, deleted; statuses; Events). A write that loses
a race is left to the next pass, which plans again from what is then stored."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from podnet.controllers import deployments, replicasets
from podnet.errors import AlreadyExists, Conflict, NotFound, PodnetError
from podnet.model.apps import Deployment, ReplicaSet
from podnet.model.base import Resource
from podnet.model.core import Pod
from podnet.model.events import Event

from .events import EventRecorder

log = logging.getLogger("podnet.controllers.apps")


class AppsController:
    def __init__(self, store: Any, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 event_ttl: float = 3600.0) -> None:
        self.store = store
        self.clock = clock
        self.event_ttl = event_ttl
        self._events_collected: datetime | None = None
        self.deployment_events = EventRecorder(store, "deployment-controller")
        self.replicaset_events = EventRecorder(store, "replicaset-controller")
        self.scheduler_events = EventRecorder(store, "default-scheduler")

    def reconcile(self, snap: Any) -> None:
        now = self.clock()
        pods = list(snap.of(Pod))
        sets = list(snap.of(ReplicaSet))
        deps = list(snap.of(Deployment))
        for dep in deps:
            self._guarded(f"deployment {dep.ref}", self._deployment, dep, sets, pods, now)
        gone = {rs.metadata.uid for rs in replicasets.orphaned(sets, deps, "Deployment")}
        for rs in sets:
            if rs.metadata.uid in gone:
                self._guarded(f"removal of replicaset {rs.ref}", self.store.delete, ReplicaSet, rs.name, rs.namespace)
            else:
                self._guarded(f"replicaset {rs.ref}", self._replicaset, rs, pods, now)
        for pod in replicasets.orphaned(pods, sets, "ReplicaSet") + replicasets.orphaned(pods, deps, "Deployment"):
            if not pod.metadata.deletion_timestamp:
                self._guarded(f"removal of pod {pod.ref}", self.store.delete, Pod, pod.name, pod.namespace)
        for recorder in (self.deployment_events, self.replicaset_events, self.scheduler_events):
            recorder.flush()
        if self._events_collected is None or (now - self._events_collected).total_seconds() >= 60:
            self._events_collected = now
            self._guarded("event collection", self.collect_events, list(snap.of(Event)), now)

    def collect_events(self, events: list[Event], now: datetime) -> None:
        """Events live ``event_ttl`` seconds after their last occurrence (the API server's
        --event-ttl, one hour by default), so they do not pile up in the store."""
        cutoff = now - timedelta(seconds=self.event_ttl)
        old = [e for e in events if (replicasets.parse_time(e.last_timestamp or e.first_timestamp) or now) < cutoff]
        if old:
            self.store.delete_many(old)

    def gc_terminating(self, pods: list[Pod], nodes: list[Any]) -> None:
        """The pod garbage collector's part for deletions: a pod being deleted on a node that no
        longer exists has no agent left to finish it, so it is removed (grace period 0)."""
        names = {n.name for n in nodes}
        for pod in pods:
            if pod.metadata.deletion_timestamp and pod.spec.node_name and pod.spec.node_name not in names:
                self._guarded(f"removal of pod {pod.ref}", self.store.delete, Pod, pod.name, pod.namespace, 0,
                              pod.metadata.uid)

    @staticmethod
    def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except (Conflict, NotFound, AlreadyExists) as exc:  # changed meanwhile: the next pass sees it
            log.info("%s: %s", what, exc.message)
        except Exception:
            log.exception("%s failed", what)

    def _deployment(self, dep: Deployment, sets: list[ReplicaSet], pods: list[Pod], now: datetime) -> None:
        plan = deployments.plan(dep, sets, pods, now)
        by_name = {rs.name: rs for rs in sets if (rs.namespace or "default") == (dep.namespace or "default")}
        for rs in plan.create:
            self.store.create(rs)
        for name in sorted(set(plan.scale) | set(plan.annotate)):
            current = by_name.get(name)
            if current is None:
                continue
            data = current.to_dict()
            data["spec"]["replicas"] = plan.scale.get(name, current.spec.replicas)
            data["metadata"]["annotations"] = plan.annotate.get(name, current.metadata.annotations)
            self.store.update(ReplicaSet.model_validate(data), check_version=True)
        for rs in plan.delete:
            self.store.delete(ReplicaSet, rs.name, rs.namespace)
        if plan.deployment_annotations is not None:
            data = dep.to_dict()
            data["metadata"]["annotations"] = plan.deployment_annotations
            self.store.update(Deployment.model_validate(data), check_version=True)
        for type_, reason, message in plan.events:
            self.deployment_events.record(dep, type_, reason, message)
        self._status(dep, plan.status)

    def _replicaset(self, rs: ReplicaSet, pods: list[Pod], now: datetime) -> None:
        plan = replicasets.plan(rs, pods, now)
        for pod in plan.create:
            made = self.store.create(pod)
            self.replicaset_events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {made.name}")
        for pod in plan.delete:
            if self.store.delete(Pod, pod.name, pod.namespace):
                self.replicaset_events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.name}")
        self._status(rs, plan.status)

    def _status(self, obj: Resource, status: dict[str, Any]) -> None:
        current = getattr(obj, "status", None) or {}
        merged = {**current, **status}
        if merged == current:
            return
        data = obj.to_dict()
        data["status"] = merged
        try:
            self.store.update_status(type(obj).model_validate(data))
        except PodnetError as exc:
            log.info("status of %s not written: %s", obj.ref, exc.message)
