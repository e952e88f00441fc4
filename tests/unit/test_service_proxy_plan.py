"""The proxy planner (pure): which Services are proxied, which endpoints each port sends to
(ready, else serving-terminating; Local policies per node), affinity, external addresses, the
health check's count; and "state, not path": the plan depends on the objects, not their order."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.model import Service
from podnet.services.proxy import plan, plan_service, proxied
from podnet.testing.service_objects import ep, service, slice_


def test_ready_endpoints_then_terminating_serving_ones_never_the_rest() -> None:
    sl = slice_("web-1", "web", [ep("10.244.1.2"), ep("10.244.1.3", ready=False),
                                 ep("10.244.2.2", ready=False, serving=True, terminating=True)])
    port = plan_service(service(), [sl], "n1").ports[0]
    assert port.cluster == (("10.244.1.2", 8080),)
    # Nothing ready: the terminating endpoints that still serve (KEP-1669), not the unready one.
    sl = slice_("web-1", "web", [ep("10.244.1.3", ready=False, serving=False),
                                 ep("10.244.2.2", ready=False, serving=True, terminating=True),
                                 ep("10.244.2.3", ready=False, serving=False, terminating=True)])
    port = plan_service(service(), [sl], "n1").ports[0]
    assert port.cluster == (("10.244.2.2", 8080),)
    assert port.ready == () and port.local_ready == ()


def test_unset_conditions_follow_the_api_rules() -> None:
    # ready unset = ready; serving unset = ready's value; terminating unset = false
    sl = slice_("web-1", "web", [ep("10.244.1.2", ready=None), ep("10.244.1.3", ready=False)])
    assert plan_service(service(), [sl], "n1").ports[0].cluster == (("10.244.1.2", 8080),)


def test_ports_match_by_name_and_protocol_and_take_the_slice_number() -> None:
    svc = service(ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                         {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}])
    udp = slice_("web-a", "web", [ep("10.244.1.2")], port=5353, port_name="dns", protocol="UDP")
    tcp = slice_("web-b", "web", [ep("10.244.1.3")], port=5354, port_name="dns-tcp", protocol="TCP")
    ports = {p.protocol: p for p in plan_service(svc, [udp, tcp], "n1").ports}
    assert ports["udp"].cluster == (("10.244.1.2", 5353),) and ports["udp"].port == 53
    assert ports["tcp"].cluster == (("10.244.1.3", 5354),)


def test_local_policies_and_the_health_check_count() -> None:
    svc = service(type="LoadBalancer", externalTrafficPolicy="Local", internalTrafficPolicy="Local",
                  healthCheckNodePort=31000, ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}])
    sl = slice_("web-1", "web", [ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2"),
                                 ep("10.244.1.9", "n1", ready=False, serving=True, terminating=True)])
    here, there = plan_service(svc, [sl], "n1"), plan_service(svc, [sl], "n3")
    assert here.internal_local and here.external_local and here.health_check_port == 31000
    assert here.ports[0].local == (("10.244.1.2", 8080),) and here.local_ready == 1
    assert len(here.ports[0].cluster) == 2
    assert there.ports[0].local == () and there.local_ready == 0
    # Only a terminating endpoint here: it still serves Local traffic, the health check says 0.
    sl = slice_("web-1", "web", [ep("10.244.2.2", "n2"), ep("10.244.1.9", "n1", ready=False, serving=True,
                                                          terminating=True)])
    here = plan_service(svc, [sl], "n1")
    assert here.ports[0].local == (("10.244.1.9", 8080),) and here.local_ready == 0


def test_affinity_external_addresses_and_which_services_are_proxied() -> None:
    svc = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                  externalIPs=["192.168.5.5"], type="LoadBalancer",
                  status={"loadBalancer": {"ingress": [{"ip": "192.168.6.1"}, {"hostname": "lb.example"}]}})
    p = plan_service(svc, [], "n1")
    assert p.affinity == 60 and p.external_ips == ("192.168.5.5", "192.168.6.1")
    assert plan_service(service(sessionAffinity="ClientIP"), [], "n1").affinity == 10800
    assert not plan_service(service(), [], "n1").external_local  # ClusterIP: no external policy
    assert proxied(service())
    assert not proxied(service(labels={"service.kubernetes.io/service-proxy-name": "other"}))
    assert not proxied(service(labels={"service.kubernetes.io/headless": ""}))
    assert not proxied(service(ip="None"))
    external = Service.model_validate({"metadata": {"name": "ext", "namespace": "default"},
                                       "spec": {"type": "ExternalName", "externalName": "www.example.com"}})
    assert not proxied(external)
    assert set(plan([service(), service("h", ip="None"), external], [], "n1").services) == {"default/web"}


def test_slices_of_other_services_and_ipv6_are_ignored() -> None:
    mine = slice_("web-1", "web", [ep("10.244.1.2")])
    other = slice_("db-1", "db", [ep("10.244.9.9")])
    p = plan([service()], [mine, other], "n1")
    assert p.services["default/web"].ports[0].cluster == (("10.244.1.2", 8080),)


_EPS = st.lists(st.tuples(st.integers(2, 30), st.sampled_from(["n1", "n2"]),
                          st.sampled_from([(True, None, None), (False, True, True), (False, False, False)])),
                max_size=12, unique_by=lambda t: t[0])


@settings(max_examples=60, deadline=None)
@given(_EPS, st.randoms(use_true_random=False), st.integers(1, 4))
def test_state_not_path_the_same_objects_in_any_order_and_split_give_one_plan(
        eps: list[tuple[int, str, tuple[bool, bool | None, bool | None]]], rnd: Any, pieces: int) -> None:
    endpoints = [ep(f"10.244.1.{i}", node, *cond) for i, node, cond in eps]
    whole = plan([service(externalTrafficPolicy="Local", type="NodePort")], [slice_("web-0", "web", endpoints)], "n1")
    shuffled = list(endpoints)
    rnd.shuffle(shuffled)
    slices = [slice_(f"web-{k}", "web", shuffled[k::pieces]) for k in range(pieces)]
    rnd.shuffle(slices)
    assert plan([service(externalTrafficPolicy="Local", type="NodePort")], slices, "n1") == whole
