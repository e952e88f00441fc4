"""Pure routing planners: host-gw, vxlan, bgp peering (mesh, route reflectors), vxlanMode,
natOutgoing and ipipMode, from resource values."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dataplane.node_routing import desired_routing
from podnet.dataplane.routes import RouteSpec, diff
from podnet.errors import PodnetError
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node
from podnet.routing import cluster_facts, plan_node
from podnet.routing.bgp import neighbors
from podnet.routing.plan import default_vtep_mac

ADDRS = {"k8s-master01": "192.168.10.71/24", "k8s-node01": "192.168.10.72/24", "k8s-node02": "192.168.10.73/24"}
L3 = {"k8s-master01": "192.168.10.71/24", "k8s-node01": "192.168.10.72/24", "k8s-node02": "192.168.20.71/24"}


def node(name: str, labels: dict | None = None) -> Node:
    return Node.model_validate({"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": name, "labels": labels or {}}})


def cnode(name: str, addr: str, rr: str | None = None, mac: str | None = None) -> CalicoNode:
    bgp = {"ipv4Address": addr}
    if rr:
        bgp["routeReflectorClusterID"] = rr
    spec: dict = {"bgp": bgp}
    if mac:
        spec["vxlanTunnelMACAddr"] = mac
    return CalicoNode.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                                      "metadata": {"name": name}, "spec": spec})


def pool(vxlan: str = "Never", nat: bool = True, ipip: str = "Never", size: int = 24) -> IPPool:
    return IPPool.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                  "metadata": {"name": "default-ipv4-ippool"},
                                  "spec": {"cidr": "10.244.0.0/16", "blockSize": size, "vxlanMode": vxlan,
                                           "ipipMode": ipip, "natOutgoing": nat}})


BLOCKS = {"k8s-master01": ["10.244.0.0/24"], "k8s-node01": ["10.244.5.0/24"], "k8s-node02": ["10.244.3.0/24"]}


def facts(addrs=ADDRS, pools=None, configs=(), peers=(), labels=None, rr=None, blocks=BLOCKS, **kw):
    labels = labels or {}
    rr = rr or {}
    return cluster_facts([node(n, labels.get(n)) for n in addrs], [cnode(n, a, rr.get(n)) for n, a in addrs.items()],
                         pools if pools is not None else [pool()], configs, peers, blocks_by_node=blocks, **kw)


def test_hostgw_routes_via_each_peer_underlay_address():
    plan = plan_node(facts(), "k8s-master01", "host-gw")
    got = {(r.dst, r.via, r.dev) for r in plan.routes}
    # The seeds' table: 10.244.3.0/24 via 192.168.10.74, 10.244.5.0/24 via 192.168.10.72 dev eth0.
    assert got == {("10.244.5.0/24", "192.168.10.72", "eth0"), ("10.244.3.0/24", "192.168.10.73", "eth0")}
    assert plan.refusals == ()


def test_hostgw_refuses_peer_on_other_segment_and_says_why():
    plan = plan_node(facts(L3), "k8s-master01", "host-gw")
    assert [r.dst for r in plan.routes] == ["10.244.5.0/24"]
    (ref,) = plan.refusals
    assert ref.peer == "k8s-node02" and ref.dst == "10.244.3.0/24"
    assert "not on this node's L2 segment 192.168.10.0/24" in ref.reason and "vxlan" in ref.reason


def test_vxlan_flannel_layout():
    f = facts()
    plan = plan_node(f, "k8s-master01", "vxlan")
    assert plan.vtep is not None
    assert (plan.vtep.name, plan.vtep.vni, plan.vtep.port, plan.vtep.mtu) == ("flannel.1", 1, 8472, 1450)
    assert plan.vtep.address == "10.244.0.0" and plan.vtep.local == "192.168.10.71"
    assert {(r.dst, r.via, r.dev, r.onlink) for r in plan.routes} == {
        ("10.244.5.0/24", "10.244.5.0", "flannel.1", True), ("10.244.3.0/24", "10.244.3.0", "flannel.1", True)}
    want = desired_routing(plan)
    assert {(n.ip, n.mac) for n in want.neighbours} == {("10.244.5.0", default_vtep_mac("k8s-node01")),
                                                        ("10.244.3.0", default_vtep_mac("k8s-node02"))}
    assert {(x.mac, x.dst) for x in want.fdb} == {(default_vtep_mac("k8s-node01"), "192.168.10.72"),
                                                  (default_vtep_mac("k8s-node02"), "192.168.10.73")}
    assert want.subnet_env == ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\n"
                               "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")


def test_vxlan_uses_published_mac_and_underlay_mtu():
    f = cluster_facts([], [cnode("a", "10.0.0.1/24"), cnode("b", "10.0.0.2/24", mac="0e:11:22:33:44:55")],
                      [pool(nat=False)], blocks_by_node={"a": ["10.244.1.0/24"], "b": ["10.244.2.0/24"]},
                      underlay_mtu=9000)
    plan = plan_node(f, "a", "vxlan")
    assert plan.vtep.mtu == 8950
    assert plan.vxlan_peers[0].vtep_mac == "0e:11:22:33:44:55"
    assert dict(plan.subnet_env)["FLANNEL_IPMASQ"] == "false"


def test_vtep_mac_is_stable_locally_administered_unicast():
    mac = default_vtep_mac("k8s-node01")
    assert mac == default_vtep_mac("k8s-node01") != default_vtep_mac("k8s-node02")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01


def test_bgp_mesh_by_default():
    plan = plan_node(facts(), "k8s-node01", "bgp")
    assert plan.bgp is not None and plan.bgp.as_number == 64512
    assert plan.bgp.announce == ("10.244.5.0/24",)
    assert [(n.address, n.peer_type, n.name) for n in plan.bgp.neighbors] == [
        ("192.168.10.71", "node-to-node mesh", "Mesh_192_168_10_71"),
        ("192.168.10.73", "node-to-node mesh", "Mesh_192_168_10_73")]
    # Exactly one side of each session is passive.
    other = plan_node(facts(), "k8s-master01", "bgp").bgp.neighbors
    mine = {n.address: n.passive for n in plan.bgp.neighbors}
    theirs = {n.address: n.passive for n in other}
    assert mine["192.168.10.71"] != theirs["192.168.10.72"]
    assert plan.routes == () and plan.vtep is None


def rr_facts(n: int = 3):
    addrs = {name: f"192.168.10.{71 + i}/24" for i, name in
             enumerate(["k8s-master01"] + [f"k8s-node{i:02d}" for i in range(1, n)])}
    blocks = {name: [f"10.244.{i}.0/26"] for i, name in enumerate(addrs)}
    cfg = BGPConfiguration.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                                           "metadata": {"name": "default"},
                                           "spec": {"logSeverityScreen": "Info", "nodeToNodeMeshEnabled": False,
                                                    "asNumber": 64512}})
    peer = BGPPeer.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                                   "metadata": {"name": "peer-with-route-reflectors"},
                                   "spec": {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}})
    return facts(addrs, configs=[cfg], peers=[peer], labels={"k8s-node01": {"route-reflector": "true"}},
                 rr={"k8s-node01": "244.0.0.1"}, blocks=blocks)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_route_reflector_recipe_gives_n_minus_1_sessions(n):
    f = rr_facts(n)
    per_node = {x.name: neighbors(f, x) for x in f.nodes}
    rr = per_node["k8s-node01"]
    assert len(rr) == n - 1 and all(p.rr_client and p.peer_type == "node specific" for p in rr)
    for name, peers in per_node.items():
        if name != "k8s-node01":
            assert [(p.address, p.peer_type, p.rr_client) for p in peers] == [("192.168.10.72", "node specific", False)]
    sessions = {frozenset((name, p.node)) for name, peers in per_node.items() for p in peers}
    assert len(sessions) == n - 1


def test_mesh_session_count_is_n_choose_2():
    f = facts()
    sessions = {frozenset((x.name, p.node)) for x in f.nodes for p in neighbors(f, x)}
    assert len(sessions) == 3


def test_global_peer_by_ip():
    peer = BGPPeer.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                                   "metadata": {"name": "tor"}, "spec": {"peerIP": "192.168.10.1", "asNumber": 65001}})
    ns = neighbors(facts(peers=[peer]), facts(peers=[peer]).node("k8s-node02"))
    tor = [n for n in ns if n.address == "192.168.10.1"]
    assert tor and tor[0].peer_type == "global" and tor[0].as_number == 65001 and tor[0].name == "Global_192_168_10_1"


@pytest.mark.parametrize("mode,encap", [("Always", {"10.244.5.0/24", "10.244.3.0/24"}),
                                        ("CrossSubnet", {"10.244.3.0/24"}), ("Never", set())])
def test_bgp_vxlan_modes_on_l3(mode, encap):
    plan = plan_node(facts(L3, pools=[pool(vxlan=mode)]), "k8s-master01", "bgp")
    assert {r.dst for r in plan.routes} == encap
    assert set(plan.bgp.no_kernel) == encap
    if encap:
        assert plan.vtep.name == "vxlan.calico" and plan.vtep.vni == 4096 and plan.vtep.port == 4789
    if mode == "Never":
        assert [r.dst for r in plan.refusals] == ["10.244.3.0/24"]
        assert "vxlanMode: CrossSubnet" in plan.refusals[0].reason
    else:
        assert plan.refusals == ()
    cross = {n.address: n.direct for n in plan.bgp.neighbors}
    assert cross == {"192.168.10.72": True, "192.168.20.71": False}


def test_ipip_refused_with_reason_when_kernel_lacks_it():
    plan = plan_node(facts(pools=[pool(ipip="Always")]), "k8s-master01", "bgp")
    assert len(plan.problems) == 1 and "ipipMode Always" in plan.problems[0] and "vxlanMode" in plan.problems[0]
    ok = plan_node(facts(pools=[pool(ipip="Always")], ipip_supported=True), "k8s-master01", "bgp")
    assert ok.problems == ()


def test_nat_outgoing_plan():
    assert plan_node(facts(), "k8s-master01", "vxlan").nat.masquerade == ("10.244.0.0/16",)
    assert plan_node(facts(pools=[pool(nat=False)]), "k8s-master01", "vxlan").nat.masquerade == ()
    assert desired_routing(plan_node(facts(pools=[pool(nat=False)]), "k8s-master01", "host-gw")).nat is None


def test_unknown_backend_and_node():
    with pytest.raises(PodnetError, match="unknown routing backend 'ipip'"):
        plan_node(facts(), "k8s-master01", "ipip")
    assert "no underlay address" in plan_node(facts(), "ghost", "vxlan").problems[0]


def test_diff_is_smallest_change():
    a = RouteSpec("10.244.1.0/24", "192.168.10.72", "eth0")
    b = RouteSpec("10.244.2.0/24", "192.168.10.73", "eth0")
    c = RouteSpec("10.244.3.0/24", "192.168.10.74", "eth0")
    assert diff({a, b}, {b, c}) == ([a], [c])
    assert diff({a}, {a}) == ([], [])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), backend=st.sampled_from(["host-gw", "vxlan", "bgp"]))
def test_plans_do_not_depend_on_input_order(seed, backend):
    rng = random.Random(seed)
    names = list(L3)
    rng.shuffle(names)
    addrs = {n: L3[n] for n in names}
    blocks = {n: list(reversed(BLOCKS[n])) for n in reversed(list(BLOCKS))}
    assert plan_node(facts(addrs, blocks=blocks), "k8s-node01", backend) == \
        plan_node(facts(L3), "k8s-node01", backend)
