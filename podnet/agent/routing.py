"""The agent's routing reconciler: store snapshot -> cluster facts -> this node's plan ->
kernel (``kernel.routes_apply``). The agent calls ``reconcile(snapshot)`` on every change and
on its resync timer; the timer is what repairs drift (a route deleted by hand comes back)."""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from podnet.kernel import routes
from podnet.kernel.routes_apply import RoutingStatus, apply_routing, read_status, teardown_routing
from podnet.routing import ClusterFacts, cluster_facts, plan_node
from podnet.routing.plan import RoutingPlan

__all__ = ["RoutingReconciler", "RoutingStatus", "facts_from_snapshot", "node_run_dir", "pod_mtu", "read_node_status"]


def node_run_dir(state_dir: str, node: str) -> str:
    """Per-node files: bird.conf/ctl/pid/log, subnet.env, routing-status.json."""
    return os.path.join(state_dir, "nodes", node)


def read_node_status(state_dir: str, node: str) -> dict[str, Any] | None:
    return read_status(node_run_dir(state_dir, node))


def blocks_from_raw(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """node -> CIDRs of the IPAM blocks affine to it, from a snapshot's raw keys."""
    from podnet.ipam.blocks import BLOCKS, Block

    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key.startswith(BLOCKS):
            block = Block.from_dict(value)
            if block.node:
                out.setdefault(block.node, []).append(block.cidr)
    return out


def facts_from_snapshot(snapshot: Any, blocks_by_node: Mapping[str, Sequence[str]] | None = None,
                        underlay_mtu: int = 1500, ipip_supported: bool = False) -> ClusterFacts:
    """ClusterFacts from a store snapshot: anything with ``list(cls)``, or a mapping from kind
    (class, class name, plural) to objects."""
    from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node

    def items(cls: type) -> list:
        if hasattr(snapshot, "of"):
            return [o for o in snapshot.of(cls) if isinstance(o, cls)]
        if hasattr(snapshot, "list"):
            try:
                return [o for o in snapshot.list(cls) if isinstance(o, cls)]
            except TypeError:
                pass
        objects = getattr(snapshot, "objects", snapshot)
        for key in (cls, cls.__name__, getattr(cls, "PLURAL", ""), getattr(cls, "KIND", "")):
            try:
                got = objects.get(key)
            except (AttributeError, TypeError):
                got = None
            found = [o for o in (got or []) if isinstance(o, cls)]
            if found:
                return found
        return []

    if blocks_by_node is None:
        blocks_by_node = blocks_from_raw(getattr(snapshot, "raw", {}) or {})
    return cluster_facts(items(Node), items(CalicoNode), items(IPPool), items(BGPConfiguration),
                         items(BGPPeer), blocks_by_node=blocks_by_node, underlay_mtu=underlay_mtu,
                         ipip_supported=ipip_supported)


class RoutingReconciler:
    """One node's routing. ``netns_name`` None: the namespace the agent runs in."""

    def __init__(self, node: str, backend: str, state_dir: str, *, netns_name: str | None = None,
                 underlay_dev: str = "eth0",
                 blocks_source: Callable[[], Mapping[str, Sequence[str]]] | None = None) -> None:
        self.node = node
        self.backend = backend
        self.netns = netns_name
        self.underlay_dev = underlay_dev
        self.run_dir = node_run_dir(state_dir, node)
        self.blocks_source = blocks_source
        self.ipip_supported = routes.kernel_has_ipip()
        self.last_plan: RoutingPlan | None = None

    def reconcile(self, snapshot: Any) -> RoutingStatus:
        blocks = self.blocks_source() if self.blocks_source else None
        return self.reconcile_facts(facts_from_snapshot(snapshot, blocks, ipip_supported=self.ipip_supported))

    def reconcile_facts(self, facts: ClusterFacts) -> RoutingStatus:
        self.last_plan = plan_node(facts, self.node, self.backend)
        return apply_routing(self.last_plan, self.run_dir, self.netns, self.underlay_dev)

    def teardown(self) -> None:
        teardown_routing(self.run_dir, self.netns)


def pod_mtu(snapshot: Any, node: str, backend: str, underlay_mtu: int = 1500) -> int:
    """The MTU a pod interface on ``node`` should get: the VTEP's (underlay − 50) when this
    node encapsulates any pod traffic, else the underlay's (Flannel's FLANNEL_MTU)."""
    from podnet.routing.mtu import pod_mtu as mtu_for

    return mtu_for(plan_node(facts_from_snapshot(snapshot, underlay_mtu=underlay_mtu), node, backend),
                   underlay_mtu=underlay_mtu)
