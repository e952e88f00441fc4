"""A pass over a list of reconcilers, run by the loop runner: the node agent's and the control
plane's loop.

Reconcilers are plain objects with ``reconcile(snapshot)`` (the node status reporter and the
pod runner; the control loop; the routing and policy reconcilers fit as well). Each pass hands
every one of them the same consistent snapshot; the resync timer re-runs them even without
changes, which is what notices crashed containers and repairs drift. A failing reconciler is
logged and does not stop the others, nor does it slow the loop down: only a pass the store
fails (busy, unreachable) is retried after a back-off.
"""
from __future__ import annotations

import threading
from typing import Any, Protocol

from podnet.store.resources import REGISTRY, ResourceStore, Snapshot
from podnet.telemetry import NULL, Telemetry
from podnet.telemetry.loops import LoopMetrics

from .runner import LoopRunner, StoreChanges, Timing, loop_logger


class Reconciler(Protocol):
    def reconcile(self, snapshot: Any) -> Any: ...


class Agent:
    """Runs ``reconcilers`` against ``store`` until ``stop`` is set; logs as ``podnet.<name>``."""

    def __init__(self, store: ResourceStore, node: str, reconcilers: list[Reconciler] | None = None,
                 resync: float = 1.0, *, name: str = "agent", stop: threading.Event | None = None,
                 telemetry: Telemetry = NULL, first_snapshot: Snapshot | None = None) -> None:
        self.store = store
        self._first = first_snapshot  # a snapshot the caller already read serves the first pass
        self.node = node
        self.reconcilers: list[Reconciler] = list(reconcilers or [])
        self.resync = resync
        self.passes = 0
        self.stop = stop if stop is not None else threading.Event()
        self.log = loop_logger(name)
        self.runner = LoopRunner(name, self._pass, StoreChanges(store.kv, (REGISTRY,)), Timing(max_interval=resync),
                                 stop=self.stop, metrics=LoopMetrics(telemetry, name))

    def run_once(self) -> Snapshot:
        """One pass over every reconciler with a fresh snapshot; returns the snapshot."""
        snap, self._first = self._first or self.store.snapshot(), None
        for r in self.reconcilers:
            try:
                r.reconcile(snap)
            except Exception:  # one broken reconciler must not starve the others
                self.log.exception("reconciler %s failed", type(r).__name__)
        self.passes += 1
        return snap

    def _pass(self) -> int:
        return self.run_once().revision

    def run(self) -> None:
        """Passes until ``stop``. A pass the store fails is retried after a back-off: ending the
        loop would end the agent, and an agent that ends tears its pods down."""
        self.runner.run()
