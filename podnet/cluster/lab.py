"""An in-process lab: the topology plus one routing reconciler per node, driven from outside
the node namespaces, with no store and no agent processes. Tests and benchmarks use it to
exercise the real kernel datapath of every backend quickly; ``podnet up`` runs the same
reconcilers inside per-node agents instead."""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import uuid
from typing import Any, TypeVar

from podnet.agent.registration import default_pool, node_objects
from podnet.agent.routing import RoutingReconciler, RoutingStatus
from podnet.kernel import netns
from podnet.kernel.bird import Bird
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node, Resource
from podnet.routing import ClusterFacts, cluster_facts

from . import builder
from .topology import Topology, plan_topology

R = TypeVar("R", bound=Resource)


def node_resources(topo: Topology, blocks: dict[str, list[str]] | None = None) -> list[Resource]:
    """The v1 Node and Calico Node of every lab node, with their underlay addresses."""
    return [obj for n in topo.nodes for obj in node_objects(n.name, n.address, n.prefixlen, n is topo.nodes[0])]


class Lab:
    def __init__(self, nodes: int = 3, underlay: str = "l2", backend: str = "host-gw", *,
                 prefix: str | None = None, pod_cidr: str = "10.244.0.0/16", block_size: int | None = None,
                 vxlan_mode: str = "Never", nat_outgoing: bool = True, externals: int = 1) -> None:
        self.prefix = prefix if prefix is not None else f"pl-{uuid.uuid4().hex[:5]}-"
        self.backend = backend
        self.topo = plan_topology(nodes, underlay, self.prefix, externals)
        self.state_dir = tempfile.mkdtemp(prefix="podnet-lab-")
        size = block_size or (26 if backend == "bgp" else 24)
        net = ipaddress.ip_network(pod_cidr)
        subnets = net.subnets(new_prefix=size)
        self.blocks = {n.name: [str(next(subnets))] for n in self.topo.nodes}
        self.resources: list[Resource] = [*node_resources(self.topo),
                                          default_pool(pod_cidr, size, vxlan_mode, nat_outgoing)]
        self.pods: dict[str, tuple[str, str]] = {}  # pod netns -> (node, ip)
        self._pod_count: dict[str, int] = {}
        self._routing: dict[str, RoutingReconciler] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def up(self) -> Lab:
        builder.build(self.topo, self.state_dir, {"backend": self.backend, "kind": "lab"})
        return self

    def run_dir(self, node: str) -> str:
        return os.path.join(self.state_dir, "nodes", node)

    def down(self) -> None:
        for n in self.topo.nodes:
            Bird(self.run_dir(n.name), n.netns).stop()
        builder.destroy(self.state_dir)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Lab:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.down()

    # -- desired state ----------------------------------------------------------------------
    def facts(self) -> ClusterFacts:
        def of(cls: type[R]) -> list[R]:
            return [r for r in self.resources if isinstance(r, cls)]

        return cluster_facts(of(Node), of(CalicoNode), of(IPPool), of(BGPConfiguration), of(BGPPeer),
                             blocks_by_node=self.blocks)

    def put(self, obj: Resource) -> None:
        """Add or replace a resource (same kind and name)."""
        self.resources = [r for r in self.resources
                          if not (type(r) is type(obj) and r.name == obj.name)] + [obj]

    def get(self, cls: type, name: str) -> Any:
        return next(r for r in self.resources if isinstance(r, cls) and r.name == name)

    def routing(self, node: str) -> RoutingReconciler:
        """The node's routing manager, as its agent would run it."""
        rec = self._routing.get(node)
        if rec is None:
            rec = self._routing[node] = RoutingReconciler(node, self.backend, self.state_dir,
                                                          netns_name=self.node_ns(node))
        return rec

    def reconcile(self, nodes: list[str] | None = None) -> dict[str, RoutingStatus]:
        facts = self.facts()
        return {name: self.routing(name).reconcile_facts(facts)
                for name in (nodes or [n.name for n in self.topo.nodes])}

    # -- pods and probes --------------------------------------------------------------------
    def add_pod(self, node: str, mtu: int = 1500) -> tuple[str, str]:
        """A Calico-style pod on ``node``; returns (netns, ip). Addresses start at .2 of the
        node's block (.0 is the VTEP's, as in Flannel)."""
        k = self._pod_count.get(node, 0)
        self._pod_count[node] = k + 1
        ip = str(ipaddress.ip_network(self.blocks[node][0]).network_address + 2 + k)
        idx = [n.name for n in self.topo.nodes].index(node)
        pod_ns = f"{self.prefix}p{idx}-{k}"
        host_if = f"cali{idx:03d}p{k:03d}"
        builder.add_lab_pod(self.state_dir, self.topo, node, pod_ns, host_if, ip, mtu=mtu)
        self.pods[pod_ns] = (node, ip)
        return pod_ns, ip

    def node_ns(self, node: str) -> str:
        return self.topo.node(node).netns

    def run(self, ns: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return netns.run_in(ns, list(argv), timeout=timeout)

    def ping(self, ns: str, ip: str, wait: float = 1.0, count: int = 1) -> bool:
        res = netns.run_in(ns, ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), "-i", "0.2", ip],
                           timeout=wait * count + 5)
        return res.returncode == 0
