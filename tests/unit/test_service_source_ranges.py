"""loadBalancerSourceRanges in the proxy's plan and table (no root): the LoadBalancer addresses
are guarded, NodePorts, the ClusterIP and externalIPs are not; the node may reach a guarded
address when a range holds one of its addresses (kube-proxy's allowFromNode)."""
from __future__ import annotations

import json
from typing import Any

from podnet.dataplane.nft.services import (
    FIREWALL_CHECK,
    FIREWALL_IPS,
    SERVICE_TABLE,
    NodeContext,
    firewall_chain,
    render,
)
from podnet.dataplane.nft.services_live import LiveServiceTable
from podnet.kernel.nft.netlink import encode
from podnet.model import Service
from podnet.services.proxy import plan, plan_service
from podnet.testing.service_objects import ep, service, slice_

NODE_IP = "192.168.10.71"
CTX = NodeContext((NODE_IP,), ("10.244.0.0/16",), "10.96.0.0/12")
LB = "192.168.10.240"


def guarded(ranges: list[str], lb_ip: str | None = LB, type_: str = "LoadBalancer", **spec: Any) -> Service:
    status = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}} if lb_ip else None
    return service("web", type=type_, loadBalancerSourceRanges=ranges, status=status,
                   ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}], **spec)


SLICES = [slice_("web-1", "web", [ep("10.244.1.2")])]


def test_the_plan_guards_load_balancer_addresses_only() -> None:
    p = plan_service(guarded(["10.99.0.0/24", "172.16.5.9/16"]), SLICES, "n1")
    assert p.firewall_ips == (LB,) and p.source_ranges == ("10.99.0.0/24", "172.16.0.0/16")  # normalised
    assert plan_service(guarded([]), SLICES, "n1").firewall_ips == ()  # no ranges: no firewall
    assert plan_service(guarded(["10.0.0.0/8"], lb_ip=None), SLICES, "n1").firewall_ips == ()  # no address yet
    # a range holding the node's address lets the node reach the address it holds (it speaks from it)
    p = plan_service(guarded(["192.168.10.0/24"]), SLICES, "n1", [NODE_IP])
    assert p.source_ranges == ("192.168.10.0/24", f"{LB}/32")
    assert plan_service(guarded(["10.99.0.0/24"]), SLICES, "n1", [NODE_IP]).source_ranges == ("10.99.0.0/24",)
    # the older annotation counts when the field is empty (entries that are no CIDR are left out)
    annotated = guarded([]).with_meta(annotations={
        "service.beta.kubernetes.io/load-balancer-source-ranges": "10.99.0.0/24, bogus,172.16.0.0/12"})
    assert plan_service(annotated, SLICES, "n1").source_ranges == ("10.99.0.0/24", "172.16.0.0/12")


def _rules(table: Any, chain: str) -> list[str]:
    return [json.dumps(json.loads(r.expr_json)) for r in table.chains[chain].rules]


def test_the_table_drops_sources_outside_the_ranges_before_any_dnat() -> None:
    svc = guarded(["10.99.0.0/24", "172.16.0.7/32"], externalIPs=["192.168.5.5"])
    table = render(plan([svc], SLICES, "n1", CTX.node_ips), CTX)
    fw = firewall_chain(plan_service(svc, SLICES, "n1"))
    # only the LoadBalancer address and the Service's ports: not the externalIP, the ClusterIP or the NodePort
    assert dict(table.maps[FIREWALL_IPS].elements) == {(LB, "tcp", "80"): ("goto", fw)}
    rules = _rules(table, fw)
    assert len(rules) == 3 and '"len": 24' in rules[0] and '"return"' in rules[0]
    assert '"right": "172.16.0.7"' in rules[1] and '"drop"' in rules[2]
    # the check runs first in the pre-DNAT filter chains, for new connections, before the no-endpoint check
    for base in ("filter-prerouting", "filter-output"):
        first, second = _rules(table, base)
        assert FIREWALL_CHECK in first and '"new"' in first and "service-endpoints-check" in second
        assert table.chains[base].prio < table.chains["nat-prerouting"].prio
    assert f"@{FIREWALL_IPS}" in _rules(table, FIREWALL_CHECK)[0]
    # without ranges nothing is guarded
    assert not render(plan([guarded([])], SLICES, "n1"), CTX).maps[FIREWALL_IPS].elements
    assert encode(table.to_json(), SERVICE_TABLE, table.key_info, 1) is not None  # raw netlink covers it


def test_live_changes_of_the_ranges_equal_a_full_render() -> None:
    steps = [guarded(["10.99.0.0/24"]), guarded(["10.99.0.0/24", "10.98.0.0/16"]), guarded([]),
             guarded(["10.99.0.5/32"], lb_ip="192.168.10.241"), guarded(["10.99.0.0/24"], lb_ip=None)]
    live = LiveServiceTable(plan([], [], "n1"), CTX)
    for svc in steps:
        want = plan([svc], SLICES, "n1", CTX.node_ips)
        update = live.plan(want.services, CTX, ["default/web"])
        assert update is not None
        assert encode(update.commands, SERVICE_TABLE, live.tracker.key_info, 1) is not None
        live.commit(update)
        assert live.tracker.snapshot() == render(want, CTX)
