"""One pass of a node's policy loop (``podnet policy-loop``, run inside the node's namespace):
the watch-fed live view -> ``PolicyReconciler`` -> this node's nft table. ``agent/node.py``
runs it on the loop runner, woken by any store change; the same reconciler can be put in the
agent's reconciler list instead.

Stopping the loop (SIGTERM, or SIGKILL) leaves the table in the kernel: isolated pods stay
isolated until another loop takes over and reconciles from what is there.
"""
from __future__ import annotations

import gc

from .policy import PolicyReconciler
from .policy_view import LiveView
from .runner import PassFailed

LOOP = "policy-loop"


class PolicyPass:
    """Bring the view up to date and enforce it. A failed sync raises (the reconciler has logged
    it and kept the old rules: fail closed), and the runner retries it."""

    def __init__(self, reconciler: PolicyReconciler, view: LiveView) -> None:
        self.reconciler = reconciler
        self.view = view
        self._first = True

    def __call__(self) -> int:
        try:
            status = self.reconciler.reconcile_view(self.view)
        finally:
            if self._first:
                # The cluster view is long-lived: move it out of the collector's sight so a full
                # collection does not walk it in the middle of a pass (a latency spike).
                gc.collect()
                gc.freeze()
                self._first = False
        if status.error is not None:  # logged by the reconciler; the old rules stay
            raise PassFailed(status.error)
        return self.view.revision
