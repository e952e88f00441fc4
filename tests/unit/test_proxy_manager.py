"""The proxy manager's pure parts: which UDP flows a plan change makes stale, the health
check's answer (kube-proxy's), the node context, and the keys that wake the loop."""
from __future__ import annotations

import json

from podnet.agent.proxy import node_context, stale_flows
from podnet.agent.proxy_health import HealthCheck, health_body
from podnet.agent.proxy_loop import PROXY_KEYS
from podnet.kernel.conntrack import StaleFlow
from podnet.model import IPPool, Node
from podnet.services.proxy import plan_service
from podnet.testing.service_objects import ep, service, slice_


def test_stale_flows_are_the_udp_endpoints_that_left() -> None:
    udp = service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
                                {"name": "tcp", "port": 53, "protocol": "TCP", "targetPort": 5353}])

    def slices(*ips: str) -> list:  # type: ignore[type-arg]
        return [slice_("dns-1", "dns", [ep(ip) for ip in ips], port=5353, port_name="dns", protocol="UDP"),
                slice_("dns-2", "dns", [ep(ip) for ip in ips], port=5353, port_name="tcp", protocol="TCP")]

    old = plan_service(udp, slices("10.244.1.2", "10.244.1.3"), "n1")
    new = plan_service(udp, slices("10.244.1.3", "10.244.1.4"), "n1")
    assert stale_flows(old, new) == {StaleFlow("udp", "10.244.1.2", 5353)}  # TCP needs no clearing
    assert stale_flows(old, None) == {StaleFlow("udp", "10.244.1.2", 5353), StaleFlow("udp", "10.244.1.3", 5353)}
    assert stale_flows(None, new) == set()


def test_the_health_check_answers_as_kube_proxy() -> None:
    code, body = health_body(HealthCheck("default", "web", 2), True)
    assert code == 200
    assert body.decode() == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},\n'
                             '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert health_body(HealthCheck("default", "web", 0), True)[0] == 503
    code, body = health_body(HealthCheck("default", "web", 1), False)
    assert code == 503 and json.loads(body)["serviceProxyHealthy"] is False


def test_node_context_and_wake_keys() -> None:
    node = Node.model_validate({"metadata": {"name": "n1"}, "status": {"addresses": [
        {"type": "InternalIP", "address": "192.168.10.71"}, {"type": "Hostname", "address": "n1"}]}})
    pools = [IPPool.model_validate({"metadata": {"name": "p"}, "spec": {"cidr": "10.244.0.0/16"}}),
             IPPool.model_validate({"metadata": {"name": "lb"}, "spec": {"cidr": "192.168.78.0/26",
                                                                          "allowedUses": ["LoadBalancer"]}})]
    ctx = node_context(node, pools, {"serviceCIDR": "10.96.0.0/12"})
    assert ctx.node_ips == ("192.168.10.71",) and ctx.pod_cidrs == ("10.244.0.0/16",)
    assert ctx.service_cidr == "10.96.0.0/12"
    assert any("services" in k for k in PROXY_KEYS) and any("endpointslices" in k for k in PROXY_KEYS)
    assert any("pods" in k for k in PROXY_KEYS)  # pods wake it for their host ports only
