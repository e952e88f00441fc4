"""One pass of a node's routing loop (``podnet routing-loop``, run inside the node's namespace):
snapshot -> ``RoutingReconciler`` -> publish the VTEP. ``agent/node.py`` runs it on the loop
runner, woken only by the keys routing reads; the same reconciler can equally be plugged into
the agent's reconciler list.

Publishing the node's VTEP MAC and address in its Calico Node resource is how the other nodes
learn them (Flannel keeps them in node annotations)."""
from __future__ import annotations

from typing import Any

from podnet.ipam.blocks import BLOCKS
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node
from podnet.store.resources import REGISTRY, ResourceStore

from .routing import RoutingReconciler
from .runner import loop_logger

LOOP = "routing-loop"
# What facts_from_snapshot and publish_vtep read: v1 and Calico nodes, pools, BGP resources,
# IPAM blocks (their affinities say which node routes which block). Pod churn (status writes,
# IPAM handles) changes no route: waking every node's loop for it would cost a full pass each.
ROUTING_KEYS = (*(f"{REGISTRY}{cls.PLURAL}/" for cls in (Node, CalicoNode, IPPool, BGPConfiguration, BGPPeer)),
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
    A store or kernel failure raises, and the runner retries it."""

    def __init__(self, store: ResourceStore, reconciler: RoutingReconciler, node: str) -> None:
        self.store = store
        self.reconciler = reconciler
        self.node = node

    def __call__(self) -> int:
        snap = self.store.snapshot()
        status = self.reconciler.reconcile(snap)
        for line in status.changes:
            log.info("%s", line)
        for line in status.errors:
            log.error("%s", line)
        publish_vtep(self.store, self.node, status.vtep)
        return snap.revision
