"""The pod MTU: the VTEP's when the node encapsulates, the underlay's otherwise."""
from __future__ import annotations

from podnet.cluster.lab import default_pool, node_resources
from podnet.cluster.topology import plan_topology
from podnet.model import CalicoNode, Node
from podnet.routing import cluster_facts, plan_node
from podnet.routing.mtu import pod_mtu


def test_with_a_plan_the_vtep_decides() -> None:
    nodes = node_resources(plan_topology(2))
    v1 = [o for o in nodes if isinstance(o, Node)]
    calico = [o for o in nodes if isinstance(o, CalicoNode)]
    assert len(v1) == len(calico) == 2
    pool = default_pool("10.244.0.0/16", 24)
    for backend, mtu in (("vxlan", 1450), ("host-gw", 1500)):
        facts = cluster_facts(v1, calico, [pool], [], [], blocks_by_node={"k8s-node01": ["10.244.1.0/24"]})
        assert pod_mtu(plan_node(facts, "k8s-node01", backend)) == mtu, backend
    facts = cluster_facts(v1, calico, [pool], [], [], blocks_by_node={}, underlay_mtu=9000)
    assert pod_mtu(plan_node(facts, "k8s-node01", "vxlan"), underlay_mtu=9000) == 8950


def test_without_a_plan_the_pools_decide() -> None:
    assert pod_mtu(None, []) == 1500
    assert pod_mtu(None, [default_pool("10.244.0.0/16", 26, "Never")]) == 1500
    for mode in ("CrossSubnet", "Always"):
        assert pod_mtu(None, [default_pool("10.244.0.0/16", 26, "Never"), default_pool("10.245.0.0/16", 26, mode)]) == 1450
    assert pod_mtu(None, [default_pool("10.244.0.0/16", 26, "Always")], underlay_mtu=9000) == 8950
