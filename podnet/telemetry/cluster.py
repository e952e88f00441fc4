"""The control plane's metrics of the cluster, counted at scrape time from the last snapshot
its loop took (kube-state-metrics' and Calico kube-controllers' gauges): objects by kind,
pods by phase and node, nodes by readiness, IPAM blocks and addresses in use per pool and node.

``ClusterCollector`` is also a reconciler: the control loop hands it every snapshot, which it
keeps (a frozen value) until the next; counting happens only when Prometheus asks.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from podnet.ipam.blocks import BLOCKS, Block, usage
from podnet.model import IPPool, Node, Pod
from podnet.model.registry import KINDS

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def object_counts(snapshot: Any) -> Counter[str]:
    """Objects per resource name (``pods``, ``networkpolicies.networking.k8s.io``, …), every
    known kind present (0 when there is none)."""
    counts: Counter[str] = Counter({cls.resource_name(): 0 for cls in KINDS})
    for objs in snapshot.objects.values():
        for obj in objs:
            counts[type(obj).resource_name()] += 1
    return counts


def pod_phases(snapshot: Any) -> Counter[tuple[str, str]]:
    """(phase, node) → pods; a pod not given a phase yet is Pending, as the API server says."""
    return Counter((p.status.phase or "Pending", p.spec.node_name or "")
                   for p in snapshot.of(Pod) if isinstance(p, Pod))


def node_readiness(snapshot: Any) -> Counter[str]:
    """Nodes by their Ready condition's status (True, False; Unknown without one)."""
    out: Counter[str] = Counter({"True": 0, "False": 0, "Unknown": 0})
    for node in snapshot.of(Node):
        if not isinstance(node, Node):
            continue
        ready = next((c.get("status") for c in node.status.conditions or [] if c.get("type") == "Ready"), None)
        out[ready if ready in ("True", "False") else "Unknown"] += 1
    return out


class ClusterCollector:
    """Counts the last snapshot handed to ``reconcile`` when scraped."""

    def __init__(self) -> None:
        self.snapshot: Any = None

    def reconcile(self, snapshot: Any) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterator[Any]:
        yield from _families()

    def collect(self) -> Iterator[Any]:
        families = _families()
        objects, pods, nodes, blocks, in_use, pool_size = families
        snap = self.snapshot
        if snap is not None:
            for kind, n in sorted(object_counts(snap).items()):
                objects.add_metric([kind], n)
            phases = pod_phases(snap)
            for phase, node in sorted(set(phases) | {(ph, "") for ph in PHASES}):
                pods.add_metric([phase, node], phases.get((phase, node), 0))
            for ready, n in sorted(node_readiness(snap).items()):
                nodes.add_metric([ready], n)
            pools = [(p.name, p.spec.cidr, p.spec.disabled) for p in snap.of(IPPool) if isinstance(p, IPPool)]
            raw = [Block.from_dict(v) for k, v in snap.raw.items() if k.startswith(BLOCKS)]
            for pool in usage(pools, raw):
                pool_size.add_metric([pool.name], pool.size)
                per_node: Counter[str] = Counter()
                used: Counter[str] = Counter()
                for row in pool.blocks:
                    per_node[row.node or ""] += 1
                    used[row.node or ""] += row.used
                for node in sorted(per_node):
                    blocks.add_metric([pool.name, node], per_node[node])
                    in_use.add_metric([pool.name, node], used[node])
        yield from families


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily("podnet_store_objects", "Objects in the store by resource.", labels=["resource"]),
        GaugeMetricFamily("podnet_pods", "Pods by phase and node (node empty: not scheduled yet).",
                          labels=["phase", "node"]),
        GaugeMetricFamily("podnet_nodes", "Nodes by the status of their Ready condition.", labels=["ready"]),
        GaugeMetricFamily("podnet_ipam_blocks", "IPAM blocks by pool and the node they are affine to "
                          "(node empty: released).", labels=["ippool", "node"]),
        GaugeMetricFamily("podnet_ipam_addresses_in_use", "Addresses allocated from IPAM blocks, by pool and "
                          "the blocks' node.", labels=["ippool", "node"]),
        GaugeMetricFamily("podnet_ipam_pool_addresses", "Addresses in each IP pool's CIDR.", labels=["ippool"]),
    )
