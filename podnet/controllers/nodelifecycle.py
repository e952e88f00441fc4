"""Node liveness, the Kubernetes way: each node's agent renews a lease in the store
(``/podnet/leases/nodes/<node>``, like kubelet's Lease in ``kube-node-lease``), and the
control plane marks a node whose lease stopped moving for longer than the grace period
``Ready=Unknown`` ("Kubelet stopped posting node status.", the node lifecycle controller's
words). Staleness is judged by when the control plane last *saw* the lease change, never by
the time written in it, so clocks of different hosts need not agree.

What a NotReady node keeps is documented in docs/cluster.md: its pods stay (nothing evicts
them), and its routes stay with its IPAM blocks; BGP peers drop its routes when its sessions
go down, and ``podnet delete node`` withdraws them everywhere.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LEASES = "/podnet/leases/nodes/"
LEASE_DURATION = 40.0  # kubelet's default; the control plane's grace period
RENEW_INTERVAL = 10.0  # kubelet renews at a quarter of the duration
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def lease_key(node: str) -> str:
    return LEASES + node


def lease_value(node: str, renew_time: str, duration: float = LEASE_DURATION) -> dict[str, Any]:
    return {"holderIdentity": node, "renewTime": renew_time, "leaseDurationSeconds": int(duration)}


@dataclass
class LeaseWatch:
    """What the control plane saw of each lease: its value and when it last changed."""

    grace: float = LEASE_DURATION
    seen: dict[str, tuple[Any, float]] = field(default_factory=dict)
    last_look: float | None = None

    def observe(self, leases: Mapping[str, Any], now: float) -> None:
        if self.last_look is not None and now - self.last_look > self.grace / 2:
            # The control plane itself could not look (the store was unreachable): nobody could
            # renew meanwhile, so every lease gets a fresh grace period rather than a verdict.
            self.seen = {node: (value, now) for node, (value, _) in self.seen.items()}
        self.last_look = now
        for node, value in leases.items():
            last = self.seen.get(node)
            if last is None or last[0] != value:
                self.seen[node] = (value, now)

    def stale(self, ready_nodes: Iterable[str], now: float) -> list[str]:
        """Ready nodes whose lease has not moved for ``grace`` seconds (or never appeared
        within ``grace`` of the control plane's first look)."""
        out = []
        for node in ready_nodes:
            last = self.seen.get(node)
            if last is None:
                self.seen[node] = (None, now)
            elif now - last[1] > self.grace:
                out.append(node)
        return sorted(out)


def leases_from_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """node -> lease value, from a snapshot's raw keys."""
    return {key[len(LEASES):]: value for key, value in raw.items() if key.startswith(LEASES)}
