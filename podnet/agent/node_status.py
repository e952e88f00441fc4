"""The agent reports its node's health the way a kubelet does: a ``Ready`` condition and
``nodeInfo`` in the v1 Node's status, so ``podnet get nodes`` shows Ready and a version.

It writes the Node only when what it would report changes, so a healthy cluster is not woken
by heartbeats; liveness is a lease it renews (``controllers/nodelifecycle.py``), a raw key the
other loops do not watch. ``mark_stopped`` flips the node to NotReady when the agent shuts
down.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from podnet import __version__
from podnet.controllers.nodelifecycle import RENEW_INTERVAL, lease_key, lease_value
from podnet.model import Node
from podnet.store.api import Put


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def node_info() -> dict[str, str]:
    """What this machine is, in kubelet's nodeInfo fields."""
    return {
        "kubeletVersion": f"v{__version__}-podnet",
        "kubeProxyVersion": f"v{__version__}-podnet",
        "kernelVersion": os.uname().release,
        "osImage": _os_image(),
        "containerRuntimeVersion": f"podnet://{__version__}",
        "operatingSystem": "linux",
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
    }


class NodeStatusReporter:
    """An agent reconciler: keeps ``status.conditions[Ready]`` and ``nodeInfo`` current."""

    def __init__(self, store: Any, node: str, renew_interval: float = RENEW_INTERVAL) -> None:
        self.store = store
        self.node = node
        self.info = node_info()
        self.renew_interval = renew_interval
        self._renewed = -renew_interval

    def reconcile(self, snapshot: Any) -> None:
        self.renew_lease()
        self._report(snapshot.get(Node, self.node), "True", "PodnetAgentReady", "podnet agent is running")

    def renew_lease(self) -> None:
        """Renew this node's lease if it is due (the agent's pass runs every second)."""
        now = time.monotonic()
        if now - self._renewed < self.renew_interval:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.store.kv.txn([], [Put(lease_key(self.node), lease_value(self.node, stamp))])
        self._renewed = now

    def alive_while(self, watchdog: Callable[[], None]) -> Callable[[], None]:
        """What a long pass calls after each step: it is alive for the watchdog, and for the
        control plane, which marks the node Ready=Unknown once its lease stops moving (a pass
        starting 200 pods outlasts the lease's grace on a busy machine)."""
        def progress() -> None:
            watchdog()
            self.renew_lease()  # at most once per renew interval

        return progress

    def mark_stopped(self) -> None:
        self._report(self.store.get(Node, self.node), "False", "PodnetAgentStopped", "podnet agent stopped")

    def _report(self, node: Node | None, ready: str, reason: str, message: str) -> None:
        if node is None:
            return
        status = node.status
        current = {c.get("type"): c for c in status.conditions or []}
        if current.get("Ready", {}).get("status") == ready and status.node_info == self.info:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        current["Ready"] = {"type": "Ready", "status": ready, "reason": reason, "message": message,
                            "lastHeartbeatTime": now, "lastTransitionTime": now}
        new_status = status.model_copy(update={"conditions": list(current.values()), "node_info": self.info})
        self.store.update_status(node.model_copy(update={"status": new_status}))
