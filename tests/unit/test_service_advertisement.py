"""Which Service prefixes each node announces over BGP (Calico's serviceClusterIPs,
serviceExternalIPs, serviceLoadBalancerIPs), and the BIRD configuration that carries them."""
from __future__ import annotations

from typing import Any

from podnet.dataplane.bird_config import render_bird_config
from podnet.model import BGPConfiguration, EndpointSlice, Service
from podnet.routing import plan_node
from podnet.routing.services import service_advertisement

from test_bird_config import bird_parses
from test_routing_planners import facts


def bgp_config(**spec: Any) -> BGPConfiguration:
    return BGPConfiguration.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                                            "metadata": {"name": "default"}, "spec": spec})


def lb_service(name: str, cluster_ip: str, lb_ip: str, policy: str = "Cluster", **extra: Any) -> Service:
    return Service.model_validate({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": cluster_ip, "selector": {"app": name},
                 "externalTrafficPolicy": policy, "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
                 **extra},
        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}})


def slice_of(service: str, *endpoints: tuple[str, str, bool, bool]) -> EndpointSlice:
    """endpoints: (address, node, ready, terminating)."""
    return EndpointSlice.model_validate({
        "metadata": {"name": f"{service}-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP", "name": ""}],
        "endpoints": [{"addresses": [a], "nodeName": n, "conditions": {"ready": r, "terminating": t}}
                      for a, n, r, t in endpoints]})


CONFIG = bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}], serviceExternalIPs=[{"cidr": "192.168.95.0/24"}],
                    serviceLoadBalancerIPs=[{"cidr": "192.168.78.0/26"}])
WEB = lb_service("web", "10.96.0.20", "192.168.78.1", externalIPs=["192.168.95.7"])
LOCAL = lb_service("local", "10.96.0.21", "192.168.78.2", policy="Local")
LOCAL_SLICES = {"default/local": [slice_of("local", ("10.244.0.5", "a", True, False),
                                           ("10.244.1.5", "b", False, False),
                                           ("10.244.2.5", "c", True, True))]}


def test_nothing_is_announced_without_the_default_configuration() -> None:
    adv = service_advertisement([bgp_config().model_copy(update={"metadata": CONFIG.metadata.model_copy(
        update={"name": "other"})})], [WEB], {})
    assert adv.blocks == () and adv.prefixes("a") == ()
    assert service_advertisement([bgp_config()], [WEB], {}).prefixes("a") == ()


def test_every_node_announces_the_blocks_and_a_local_service_only_where_it_has_a_ready_endpoint() -> None:
    adv = service_advertisement([CONFIG], [WEB, LOCAL], LOCAL_SLICES)
    blocks = ("10.96.0.0/12", "192.168.78.0/26", "192.168.95.0/24")
    assert adv.prefixes("b") == blocks  # its endpoint is not ready
    assert adv.prefixes("c") == blocks  # its endpoint is terminating
    assert adv.prefixes("a") == ("10.96.0.0/12", "10.96.0.21/32", "192.168.78.0/26", "192.168.78.2/32",
                                 "192.168.95.0/24")
    assert set(adv.blocks) == set(blocks)


def test_without_aggregation_each_load_balancer_address_is_its_own_route() -> None:
    config = bgp_config(serviceLoadBalancerIPs=[{"cidr": "192.168.78.0/26"}], serviceLoadBalancerAggregation="Disabled")
    adv = service_advertisement([config], [WEB, LOCAL], LOCAL_SLICES)
    assert adv.prefixes("b") == ("192.168.78.1/32",)
    assert adv.prefixes("a") == ("192.168.78.1/32", "192.168.78.2/32")
    assert adv.blocks == ("192.168.78.0/26",)  # still never routed by a node's own kernel


def test_addresses_outside_the_configured_blocks_and_headless_services_are_never_announced() -> None:
    outside = lb_service("outside", "10.96.0.22", "203.0.113.9", policy="Local")
    headless = Service.model_validate({"metadata": {"name": "h", "namespace": "default"},
                                       "spec": {"clusterIP": "None", "selector": {"app": "h"}, "ports": [{"port": 80}]}})
    config = bgp_config(serviceLoadBalancerIPs=[{"cidr": "192.168.78.0/26"}], serviceLoadBalancerAggregation="Disabled")
    adv = service_advertisement([config], [outside, headless],
                                {"default/outside": [slice_of("outside", ("10.244.0.9", "a", True, False))]})
    assert adv.prefixes("a") == ()


def test_bird_announces_service_prefixes_to_peers_and_keeps_them_out_of_the_kernel(tmp_path: Any) -> None:
    adv = service_advertisement([CONFIG], [WEB, LOCAL], {})
    plan = plan_node(facts(services=adv), "k8s-master01", "bgp")
    assert plan.bgp is not None
    text = render_bird_config(plan.bgp, "k8s-master01")
    bird_parses(tmp_path, text)
    assert "protocol static podnet_services {" in text and "route 192.168.78.0/26 blackhole;" in text
    assert "if net ~ [ 10.96.0.0/12+, 192.168.95.0/24+, 192.168.78.0/26+ ] then reject;" in text
    no_services = render_bird_config(plan_node(facts(), "k8s-master01", "bgp").bgp, "k8s-master01")  # type: ignore[arg-type]
    assert "podnet_services" not in no_services and "+ ] then reject" not in no_services
