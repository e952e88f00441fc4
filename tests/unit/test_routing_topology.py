"""The lab topology is a pure value shaped like the seeds' cluster."""
from __future__ import annotations

import pytest

from podnet.cluster.topology import Topology, node_names, plan_topology
from podnet.errors import PodnetError


def test_seed_names_and_addresses_l2():
    t = plan_topology(3, "l2")
    assert [n.name for n in t.nodes] == ["k8s-master01", "k8s-node01", "k8s-node02"]
    assert [n.address for n in t.nodes] == ["192.168.10.71", "192.168.10.72", "192.168.10.73"]
    assert {n.segment for n in t.nodes} == {"a"} and all(n.gateway == "192.168.10.2" for n in t.nodes)
    assert [n.netns for n in t.nodes] == ["k8s-master01", "k8s-node01", "k8s-node02"]
    assert t.externals[0].address == "192.168.94.134" and t.externals[0].gateway == "192.168.94.1"
    assert len(set(t.namespaces())) == len(t.namespaces()) == 1 + 1 + 1 + 3 + 1


def test_l3_splits_nodes_over_two_subnets():
    t = plan_topology(5, "l3", prefix="pt-x-")
    segs = [(n.name, n.segment, n.address) for n in t.nodes]
    assert segs[:3] == [("k8s-master01", "a", "192.168.10.71"), ("k8s-node01", "a", "192.168.10.72"),
                        ("k8s-node02", "a", "192.168.10.73")]
    assert segs[3:] == [("k8s-node03", "b", "192.168.20.71"), ("k8s-node04", "b", "192.168.20.72")]
    assert all(ns.startswith("pt-x-") for ns in t.namespaces())
    assert Topology.from_dict(t.to_dict()) == t


def test_bad_input_is_refused_with_a_hint():
    with pytest.raises(PodnetError, match="unknown underlay 'l4'"):
        plan_topology(3, "l4")
    with pytest.raises(PodnetError, match="out of range"):
        plan_topology(0)
    with pytest.raises(PodnetError, match="at least 2 nodes"):
        plan_topology(1, "l3")
    assert node_names(12)[-1] == "k8s-node11"
