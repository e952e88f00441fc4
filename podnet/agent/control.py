"""The control plane (``podnet controllers``): Deployments → ReplicaSets → Pods (see
``apps_control``), the scheduler, and IPAM leak collection, each a pure planner in
``podnet.controllers`` applied to the store here, one pass per snapshot on the loop runner."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from podnet.controllers import ipamgc, nodelifecycle, scheduler
from podnet.errors import Conflict, NotFound, PodnetError
from podnet.ipam.allocator import IPAM
from podnet.ipam.blocks import LeakTracker
from podnet.model.core import Node, Pod
from podnet.store.open import open_store
from podnet.telemetry import NULL, Telemetry
from podnet.telemetry.serving import open_metrics

from .apps_control import AppsController
from .config import ControllersConfig
from .core import Agent
from .runner import loop_logger
from .service_control import ServiceController

LOOP = "controllers"
log = loop_logger(LOOP)


class ControlLoop:
    """A reconciler for ``Agent``: one pass per snapshot."""

    def __init__(self, store: Any, gc_grace: float = 60.0, gc_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, node_grace: float = nodelifecycle.LEASE_DURATION,
                 telemetry: Telemetry = NULL) -> None:
        self.store = store
        self.leases = nodelifecycle.LeaseWatch(grace=node_grace)
        self.tracker = LeakTracker(grace=gc_grace)
        self.gc_every = gc_every
        self.clock = clock
        self._last_gc = -1e9
        self.apps = AppsController(store)
        self.services = ServiceController(store)
        self.leaks_released = telemetry.counter(
            "podnet_ipam_leaks_released_total",
            "Addresses IPAM leak collection freed (held by no pod for the grace period).").labels()

    def reconcile(self, snap: Any) -> None:
        pods = list(snap.of(Pod))
        self.apps.reconcile(snap)
        schedule = scheduler.plan(pods, list(snap.of(Node)))
        for pending in schedule.unschedulable:
            self.apps.scheduler_events.record(pending.pod, "Warning", "FailedScheduling", pending.message)
        for pod, node in schedule.bindings:
            try:
                self.store.update(scheduler.bind(pod, node), check_version=True)
            except (Conflict, NotFound):
                continue  # changed or deleted meanwhile: the next pass decides again
            self.apps.scheduler_events.record(pod, "Normal", "Scheduled",
                                              f"Successfully assigned {pod.namespace or 'default'}/{pod.name} to {node}")
        self.apps.gc_terminating(pods, list(snap.of(Node)))
        self.services.reconcile(snap)
        self.mark_silent_nodes(snap)
        if self.clock() - self._last_gc >= self.gc_every:
            self._last_gc = self.clock()
            self.collect_ipam_leaks()

    def mark_silent_nodes(self, snap: Any) -> list[str]:
        """Ready nodes whose lease stopped moving: Ready=Unknown, as the node lifecycle
        controller does (their agents set Ready=True again when they come back)."""
        now = self.clock()
        self.leases.observe(nodelifecycle.leases_from_raw(getattr(snap, "raw", {}) or {}), now)
        nodes = {n.name: n for n in snap.of(Node)}
        ready = [name for name, n in nodes.items()
                 if any(c.get("type") == "Ready" and c.get("status") == "True" for c in n.status.conditions or [])]
        marked = []
        for name in self.leases.stale(ready, now):
            node = nodes[name]
            conditions = [c for c in node.status.conditions or [] if c.get("type") != "Ready"]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            conditions.append({"type": "Ready", "status": "Unknown", "reason": nodelifecycle.UNKNOWN_REASON,
                               "message": nodelifecycle.UNKNOWN_MESSAGE, "lastTransitionTime": stamp,
                               "lastHeartbeatTime": stamp})
            try:
                self.store.update_status(node.model_copy(update={"status": node.status.model_copy(
                    update={"conditions": conditions})}))
            except PodnetError:
                continue  # changed meanwhile: the next pass looks again
            log.warning("node %s: no lease renewal for %.0f s: Ready=Unknown", name, self.leases.grace)
            marked.append(name)
        return marked

    def collect_ipam_leaks(self) -> list[str]:
        ipam = IPAM(self.store.kv)

        def live() -> set[str]:
            return ipamgc.live_handles(ipam.handles(), self.store.list(Pod))

        freed = ipam.collect_leaks(live, self.tracker, self.clock())
        self.leaks_released.inc(len(freed))
        for h in freed:
            log.info("released leaked IPAM handle %s", h)
        return freed


def run_controllers(config: ControllersConfig, stop: threading.Event) -> None:
    """The control plane's composition root: its loop over the store until ``stop``; the
    cluster's gauges are counted from the loop's last snapshot when scraped."""
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    telemetry = metrics.telemetry
    store = open_store(config.state_dir)
    try:
        control = ControlLoop(store, gc_grace=config.gc_grace, gc_every=config.gc_interval,
                              node_grace=config.node_grace, telemetry=telemetry)
        reconcilers: list[Any] = [control]
        if telemetry.enabled:
            from podnet.telemetry.cluster import ClusterCollector

            counts = ClusterCollector()
            telemetry.register(counts)
            reconcilers.append(counts)
        Agent(store, LOOP, reconcilers, resync=config.resync, name=LOOP, stop=stop, telemetry=telemetry).run()
    finally:
        store.close()
        metrics.close()
