"""The node agent's loop: store snapshot → every reconciler → wait for a change or the timer.

Reconcilers are plain objects with ``reconcile(snapshot) -> None`` (the pod runner; the
routing reconciler can be added to ``Agent.reconcilers``). Each pass sees one consistent
snapshot; the resync timer re-runs them even without changes, which is what notices crashed
containers and repairs drift. A failing reconciler is logged and does not stop the others.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from podnet.errors import Compacted

log = logging.getLogger("podnet.agent")


class Reconciler(Protocol):
    def reconcile(self, snapshot: Any) -> Any: ...


class Agent:
    """Runs ``reconcilers`` against ``store`` (a ResourceStore) until ``stop`` is set."""

    def __init__(self, store: Any, node: str, reconcilers: list[Reconciler] | None = None,
                 resync: float = 1.0) -> None:
        self.store = store
        self.node = node
        self.reconcilers: list[Reconciler] = list(reconcilers or [])
        self.resync = resync
        self.passes = 0
        self.stop = threading.Event()

    def run_once(self) -> Any:
        """One pass over every reconciler with a fresh snapshot; returns the snapshot."""
        snap = self.store.snapshot()
        for r in self.reconcilers:
            try:
                r.reconcile(snap)
            except Exception:  # one broken reconciler must not starve the others
                log.exception("reconciler %s failed", type(r).__name__)
        self.passes += 1
        return snap

    def wait_for_change(self, revision: int) -> None:
        """Block until the store moves past ``revision`` or ``resync`` seconds pass."""
        deadline = time.monotonic() + self.resync
        try:
            for _ in self.store.watch(revision + 1, timeout=max(0.01, deadline - time.monotonic())):
                return
        except Compacted:
            return

    def run(self) -> None:
        """Passes until ``stop``. A pass or a wait the store fails (busy, unreachable) is
        retried after ``resync``: ending the loop would end the agent, and an agent that ends
        tears its pods down."""
        while not self.stop.is_set():
            try:
                snap = self.run_once()
                if self.stop.is_set():
                    break
                self.wait_for_change(snap.revision)
            except Exception:
                log.exception("agent pass failed; retrying in %.1f s", self.resync)
                self.stop.wait(self.resync)
