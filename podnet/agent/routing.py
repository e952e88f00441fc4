"""The node's routing manager: store snapshot → cluster facts → this node's plan → desired
kernel state (routes, VXLAN, the natOutgoing table, subnet.env, BIRD's configuration) → the
kernel (``kernel.node_routing``), and the status of the pass in ``routing-status.json``.

The agent calls ``reconcile(snapshot)`` on every change and on its resync timer; the timer is
what repairs drift (a route deleted by hand comes back)."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from podnet.dataplane.bird_config import render_bird_config
from podnet.dataplane.node_routing import desired_routing
from podnet.routing import ClusterFacts, cluster_facts, plan_node
from podnet.routing.plan import RoutingPlan

__all__ = ["RoutingReconciler", "RoutingStatus", "facts_from_snapshot", "node_run_dir", "pod_mtu", "read_node_status",
           "read_status"]

STATUS_FILE = "routing-status.json"


@dataclass
class RoutingStatus:
    """What the last reconcile did and what it could not do (shown by ``podnet node status``)."""

    node: str
    backend: str
    time: float
    routes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    bird: str | None = None
    vtep: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return not self.errors


def read_status(run_dir: str) -> dict[str, Any] | None:
    """The last routing pass recorded in a node's run directory, if one ran."""
    try:
        with open(os.path.join(run_dir, STATUS_FILE)) as f:
            status: dict[str, Any] = json.load(f)
            return status
    except (OSError, ValueError):
        return None


def node_run_dir(state_dir: str, node: str) -> str:
    """Per-node files: bird.conf/ctl/pid/log, subnet.env, routing-status.json."""
    return os.path.join(state_dir, "nodes", node)


def read_node_status(state_dir: str, node: str) -> dict[str, Any] | None:
    """``read_status`` of a node by its name."""
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
    from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, EndpointSlice, IPPool, Node, Service
    from podnet.routing.services import service_advertisement
    from podnet.services.proxy import slices_by_service

    def items(cls: type) -> list[Any]:
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
    configs = items(BGPConfiguration)
    services = service_advertisement(configs, items(Service), slices_by_service(items(EndpointSlice)))
    return cluster_facts(items(Node), items(CalicoNode), items(IPPool), configs,
                         items(BGPPeer), blocks_by_node=blocks_by_node, underlay_mtu=underlay_mtu,
                         ipip_supported=ipip_supported, services=services)


class RoutingReconciler:
    """One node's routing. ``netns_name`` None: the namespace the agent runs in."""

    def __init__(self, node: str, backend: str, state_dir: str, *, netns_name: str | None = None,
                 underlay_dev: str = "eth0",
                 blocks_source: Callable[[], Mapping[str, Sequence[str]]] | None = None,
                 supervised_bird: bool = False) -> None:
        # the kernel side (pyroute2 with it) is loaded here, not with the module: the agent
        # imports this module only to plan its pod MTU
        from podnet.kernel import routes
        from podnet.kernel.node_routing import RoutingApplier

        self.node = node
        self.backend = backend
        self.netns = netns_name
        self.underlay_dev = underlay_dev
        self.run_dir = node_run_dir(state_dir, node)
        self.blocks_source = blocks_source
        self.ipip_supported = routes.kernel_has_ipip()
        self.applier = RoutingApplier(self.run_dir, netns_name, supervised_bird)
        self.last_plan: RoutingPlan | None = None

    def facts(self, snapshot: Any) -> ClusterFacts:
        blocks = self.blocks_source() if self.blocks_source else None
        return facts_from_snapshot(snapshot, blocks, ipip_supported=self.ipip_supported)

    def reconcile(self, snapshot: Any) -> RoutingStatus:
        return self.reconcile_facts(self.facts(snapshot))

    def reconcile_facts(self, facts: ClusterFacts) -> RoutingStatus:
        """Plan this node from ``facts``, render, apply, and record the pass."""
        plan = self.last_plan = plan_node(facts, self.node, self.backend)
        status = RoutingStatus(node=plan.node, backend=plan.backend, time=time.time(),
                               refusals=[f"{r.reason} [{r.dst}]" for r in plan.refusals], problems=list(plan.problems))
        want = desired_routing(plan, self.underlay_dev)
        bird_config = None if plan.bgp is None else render_bird_config(plan.bgp, plan.node, self.applier.bird.log)
        done = self.applier.apply(want, bird_config, self.underlay_dev)
        status.routes = sorted(f"{r.dst} via {r.gateway} dev {r.dev}{' onlink' if r.onlink else ''}"
                               for r in want.routes)
        status.changes, status.errors, status.bird, status.vtep = done.changes, done.errors, done.bird, done.vtep
        self._write(json.dumps(asdict(status), indent=1))
        return status

    def teardown(self) -> None:
        """Remove what this node's passes made, and their status."""
        self.applier.teardown()
        self._write(None)

    def _write(self, text: str | None) -> None:
        from podnet.kernel.node_routing import write_file

        write_file(os.path.join(self.run_dir, STATUS_FILE), text)


def pod_mtu(snapshot: Any, node: str, backend: str, underlay_mtu: int = 1500) -> int:
    """The MTU a pod interface on ``node`` should get: the VTEP's (underlay − 50) when this
    node encapsulates any pod traffic, else the underlay's (Flannel's FLANNEL_MTU)."""
    from podnet.routing.mtu import pod_mtu as mtu_for

    return mtu_for(plan_node(facts_from_snapshot(snapshot, underlay_mtu=underlay_mtu), node, backend),
                   underlay_mtu=underlay_mtu)
