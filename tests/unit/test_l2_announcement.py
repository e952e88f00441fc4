"""Which node answers ARP for a LoadBalancer address (MetalLB's layer-2 election), computed
alike by every node from the same store."""
from __future__ import annotations

from typing import Any

from podnet.model import CalicoNode, Node
from podnet.routing import cluster_facts, plan_node
from podnet.routing.l2 import l2_addresses, leader
from podnet.routing.services import service_advertisement

from test_routing_planners import ADDRS, L3, cnode, pool
from test_service_advertisement import lb_service, slice_of

IPS = [f"192.168.10.{i}" for i in range(240, 248)]


def v1_node(name: str, labels: dict[str, str] | None = None, ready: str | None = "True") -> Node:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": ready}]} if ready else {}
    return Node.model_validate({"metadata": {"name": name, "labels": labels or {}}, "status": status})


def facts(services: list[Any], slices: dict[str, Any] | None = None, addrs: dict[str, str] = ADDRS,
          labels: dict[str, dict[str, str]] | None = None, ready: dict[str, str] | None = None) -> Any:
    nodes = [v1_node(n, (labels or {}).get(n), (ready or {}).get(n, "True")) for n in addrs]
    calico: list[CalicoNode] = [cnode(n, a) for n, a in addrs.items()]
    return cluster_facts(nodes, calico, [pool()], services=service_advertisement([], services, slices or {}))


def owners(f: Any) -> dict[str, str]:
    return {ip: n for n in ADDRS for ip in l2_addresses(f, n)}


def test_every_address_has_exactly_one_owner_and_the_owners_spread() -> None:
    services = [lb_service(f"s{i}", f"10.96.0.{30 + i}", ip) for i, ip in enumerate(IPS)]
    f = facts(services)
    got = owners(f)
    assert sorted(got) == IPS
    assert len(set(got.values())) > 1  # 8 addresses over 3 nodes: not all on one
    assert got == owners(facts(list(reversed(services))))  # the order of the store does not matter


def test_an_excluded_or_unready_owner_hands_the_address_to_the_next() -> None:
    services = [lb_service("web", "10.96.0.30", IPS[0])]
    first = leader(facts(services), IPS[0])
    assert first is not None
    excluded = facts(services, labels={first: {"node.kubernetes.io/exclude-from-external-load-balancers": ""}})
    second = leader(excluded, IPS[0])
    assert second not in (None, first)
    for state in ("False", "Unknown"):
        assert leader(facts(services, ready={first: state}), IPS[0]) == second
    assert l2_addresses(excluded, first) == () and l2_addresses(excluded, second) == (IPS[0],)  # type: ignore[arg-type]


def test_a_local_service_is_answered_by_a_node_with_a_ready_endpoint() -> None:
    for holder in ADDRS:
        services = [lb_service("web", "10.96.0.30", IPS[0], policy="Local")]
        slices = {"default/web": [slice_of("web", ("10.244.0.5", holder, True, False))]}
        assert owners(facts(services, slices)) == {IPS[0]: holder}
    none_ready = {"default/web": [slice_of("web", ("10.244.0.5", "k8s-node01", False, False))]}
    assert owners(facts([lb_service("web", "10.96.0.30", IPS[0], policy="Local")], none_ready)) == {}


def test_only_nodes_on_the_address_segment_answer_and_bgp_announces_by_bgp_instead() -> None:
    services = [lb_service(f"s{i}", f"10.96.0.{30 + i}", ip) for i, ip in enumerate(IPS)]
    f = facts(services, addrs=L3)
    assert l2_addresses(f, "k8s-node02") == ()  # 192.168.20.0/24 cannot answer for 192.168.10.x
    assert plan_node(facts(services), "k8s-master01", "bgp").l2_addresses == ()
    per_node = {n: plan_node(facts(services), n, "host-gw").l2_addresses for n in ADDRS}
    assert sorted(ip for ips in per_node.values() for ip in ips) == IPS
