"""One pass of a node's routing loop (``podnet routing-loop``, run inside the node's namespace):
snapshot -> ``RoutingReconciler`` -> publish the VTEP. ``agent/node.py`` runs it on the loop
runner, woken only by the keys routing reads; the same reconciler can equally be plugged into
the agent's reconciler list.

Publishing the node's VTEP MAC and address in its Calico Node resource is how the other nodes
learn them (Flannel keeps them in node annotations)."""
from __future__ import annotations

import time
from typing import Any

from podnet.ipam.blocks import BLOCKS
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, EndpointSlice, IPPool, Node, Service
from podnet.routing import ClusterFacts
from podnet.store.resources import REGISTRY, ResourceStore
from podnet.telemetry import NULL, Telemetry
from podnet.telemetry.dataplane import DataplaneMetrics

from .routing import RoutingReconciler
from .runner import loop_logger

LOOP = "routing-loop"
# What facts_from_snapshot and publish_vtep read: v1 and Calico nodes, pools, BGP resources,
# IPAM blocks (their affinities say which node routes which block), Services and their
# EndpointSlices (the Service prefixes announced over BGP). Pod churn (status writes, IPAM
# handles) changes no route; a write that leaves the facts as they were costs one snapshot.
ROUTING_KEYS = (*(f"{REGISTRY}{cls.PLURAL}/" for cls in (Node, CalicoNode, IPPool, BGPConfiguration, BGPPeer,
                                                         Service, EndpointSlice)),
                BLOCKS)
# A burst of node, pool or block writes (a node joining) settles into one pass.
MIN_INTERVAL = 0.05

log = loop_logger(LOOP)


def publish_vtep(store: Any, node: str, vtep: dict[str, Any] | None) -> bool:
    """Write the VTEP MAC/address into the node's Calico Node if they differ. True if written."""
    if not vtep:
        return False
    cur = store.get(CalicoNode, node)
    if cur is None:
        return False
    if cur.spec.vxlan_tunnel_mac_addr == vtep["mac"] and cur.spec.ipv4_vxlan_tunnel_addr == vtep["address"]:
        return False
    data = cur.to_dict()
    data["spec"]["vxlanTunnelMACAddr"] = vtep["mac"]
    if vtep.get("address"):
        data["spec"]["ipv4VXLANTunnelAddr"] = vtep["address"]
    store.update(CalicoNode.model_validate(data), check_version=False)
    return True


class RoutingPass:
    """Reconcile this node's routing from a fresh snapshot, log what changed, publish the VTEP.
    A store or kernel failure raises, and the runner retries it. A pass at the revision of the
    last one that still changed the kernel repaired drift."""

    def __init__(self, store: ResourceStore, reconciler: RoutingReconciler, node: str,
                 telemetry: Telemetry = NULL) -> None:
        self.store = store
        self.reconciler = reconciler
        self.node = node
        self.metrics = DataplaneMetrics(telemetry, "routing")
        self.routes = telemetry.gauge("podnet_routing_routes", "Routes to other nodes' pod blocks programmed.").labels()
        self.unreachable = telemetry.gauge(
            "podnet_routing_unreachable_blocks", "Pod blocks of other nodes this node has no way to reach "
            "(e.g. host-gw across subnets).").labels()
        self._last_revision = -1
        self._last_facts: ClusterFacts | None = None  # of the last pass that succeeded

    def __call__(self) -> int:
        snap = self.store.snapshot()
        facts = self.reconciler.facts(snap)
        if facts == self._last_facts and snap.revision != self._last_revision:
            # A write routing does not depend on (a Node's heartbeat, an endpoint of a Service
            # nothing announces): the kernel is as the last pass left it; the resync reads it back.
            self._last_revision = snap.revision
            return snap.revision
        t0 = time.perf_counter()
        status = self.reconciler.reconcile_facts(facts)
        self.metrics.applied("full", time.perf_counter() - t0)
        self.routes.set(len(status.routes))
        self.unreachable.set(len(status.refusals))
        if status.errors:
            self.metrics.failures.inc()
        if snap.revision == self._last_revision:  # the resync timer's pass: the kernel read back
            self.metrics.resyncs.inc()
            if status.changes and not status.errors:
                self.metrics.drift.inc()
        if not status.errors:
            self.metrics.revision.set(snap.revision)
        self._last_facts = None if status.errors else facts
        self._last_revision = snap.revision
        for line in status.changes:
            log.info("%s", line)
        for line in status.errors:
            log.error("%s", line)
        publish_vtep(self.store, self.node, status.vtep)
        return snap.revision
