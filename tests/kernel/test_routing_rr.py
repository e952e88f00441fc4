"""The seeds' route-reflector recipe (SCENARIOS S6) step by step on a real 4-node BGP lab:
mesh (N(N-1)/2 sessions) -> mesh off (no peers) -> label + routeReflectorClusterID + BGPPeer
(N-1 sessions, each node one "node specific" peer), pods reachable throughout."""
from __future__ import annotations

import time

import pytest

from podnet.kernel.bird import Bird, peer_rows
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, Node

from test_routing_backends import ping_matrix, wait_bird_routes

pytestmark = pytest.mark.kernel


def sessions(lab) -> dict[str, list]:
    return {n.name: peer_rows(Bird(lab.run_dir(n.name), n.netns).protocols()) for n in lab.topo.nodes}


def wait_established(lab, expected_total: int, timeout: float = 15) -> dict[str, list]:
    """Until the number of Established sessions (each counted once) is ``expected_total``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sessions(lab)
        est = sum(1 for r in sum(rows.values(), []) if r.info == "Established")
        total = sum(len(r) for r in rows.values())
        if est == total == 2 * expected_total:
            return rows
        assert time.monotonic() < deadline, f"sessions: {rows}"
        time.sleep(0.1)


def test_route_reflector_recipe(make_lab):
    n = 4
    lab = make_lab(n, "l2", "bgp")
    pods = [lab.add_pod(x.name) for x in lab.topo.nodes]
    lab.reconcile()
    rows = wait_established(lab, n * (n - 1) // 2)
    assert {r.peer_type for r in rows["k8s-master01"]} == {"node-to-node mesh"}
    assert sorted(r.address for r in rows["k8s-master01"]) == ["192.168.10.72", "192.168.10.73", "192.168.10.74"]
    wait_bird_routes(lab, n - 1)
    assert all(ping_matrix(lab, pods).values())

    # 1. BGPConfiguration default: nodeToNodeMeshEnabled false, asNumber 64512 -> "No IPv4 peers found."
    lab.put(BGPConfiguration.model_validate({
        "apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
        "spec": {"logSeverityScreen": "Info", "nodeToNodeMeshEnabled": False, "asNumber": 64512}}))
    statuses = lab.reconcile()
    assert {s.bird for s in statuses.values()} == {"reconfigured"}
    assert all(r == [] for r in sessions(lab).values())

    # 2. kubectl label node k8s-node01 route-reflector=true
    node01 = lab.get(Node, "k8s-node01")
    lab.put(node01.with_meta(labels={**node01.labels, "route-reflector": "true"}))
    # 3. routeReflectorClusterID: 244.0.0.1 on its Calico Node
    cal = lab.get(CalicoNode, "k8s-node01")
    lab.put(CalicoNode.model_validate({**cal.to_dict(), "spec": {"bgp": {
        "ipv4Address": cal.spec.bgp.ipv4_address, "routeReflectorClusterID": "244.0.0.1"}}}))
    # 4. BGPPeer peer-with-route-reflectors
    lab.put(BGPPeer.model_validate({
        "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "peer-with-route-reflectors"},
        "spec": {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}}))
    lab.reconcile()
    rows = wait_established(lab, n - 1)
    for name, peers in rows.items():
        if name == "k8s-node01":
            assert len(peers) == n - 1 and all(p.peer_type == "node specific" for p in peers)
        else:
            assert [(p.address, p.peer_type, p.state, p.info) for p in peers] == [
                ("192.168.10.72", "node specific", "up", "Established")]
    wait_bird_routes(lab, n - 1)
    assert all(ping_matrix(lab, pods).values())
