"""The control plane (``podnet controllers``): Deployments → ReplicaSets → Pods (see
``apps_control``), the scheduler, and IPAM leak collection, each a pure planner in
``podnet.controllers`` applied to the store here, one pass per snapshot on the loop runner."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from podnet.controllers import ipamgc, scheduler
from podnet.errors import Conflict, NotFound
from podnet.ipam.allocator import IPAM
from podnet.ipam.blocks import LeakTracker
from podnet.model.core import Node, Pod
from podnet.store.open import open_store

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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.tracker = LeakTracker(grace=gc_grace)
        self.gc_every = gc_every
        self.clock = clock
        self._last_gc = -1e9
        self.apps = AppsController(store)
        self.services = ServiceController(store)

    def reconcile(self, snap: Any) -> None:
        pods = list(snap.of(Pod))
        self.apps.reconcile(snap)
        for pod, node in scheduler.schedule(pods, list(snap.of(Node))):
            try:
                self.store.update(scheduler.bind(pod, node), check_version=True)
            except (Conflict, NotFound):
                continue  # changed or deleted meanwhile: the next pass decides again
            self.apps.scheduler_events.record(pod, "Normal", "Scheduled",
                                              f"Successfully assigned {pod.namespace or 'default'}/{pod.name} to {node}")
        self.apps.gc_terminating(pods, list(snap.of(Node)))
        self.services.reconcile(snap)
        if self.clock() - self._last_gc >= self.gc_every:
            self._last_gc = self.clock()
            self.collect_ipam_leaks()

    def collect_ipam_leaks(self) -> list[str]:
        ipam = IPAM(self.store.kv)

        def live() -> set[str]:
            return ipamgc.live_handles(ipam.handles(), self.store.list(Pod))

        freed = ipam.collect_leaks(live, self.tracker, self.clock())
        for h in freed:
            log.info("released leaked IPAM handle %s", h)
        return freed


def run_controllers(config: ControllersConfig, stop: threading.Event) -> None:
    """The control plane's composition root: its loop over the store until ``stop``."""
    store = open_store(config.state_dir)
    try:
        control = ControlLoop(store, gc_grace=config.gc_grace, gc_every=config.gc_interval)
        Agent(store, LOOP, [control], resync=config.resync, name=LOOP, stop=stop).run()
    finally:
        store.close()
