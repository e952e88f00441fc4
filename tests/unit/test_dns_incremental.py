"""The zone kept current event by event (``LiveZone``) against the zone built from scratch
(``ZoneIndex.build``) from the objects that remain: after any sequence of Service,
EndpointSlice and Namespace changes the two hold the same records and answer every question
alike, and each change reports every name whose answers it changed (what the answer cache
relies on). Pure: no sockets, no root."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from podnet.dns.records import Answer, LiveZone, ZoneIndex
from podnet.model import EndpointSlice, Service

Z = "cluster.local."
NAMESPACES = ["default", "prod"]
SERVICES = ["a", "b"]
SLICES = ["s1", "s2"]
CLUSTER_IPS = ["10.96.0.1", "10.96.0.2", "10.96.0.3"]  # few, so two Services may share one
POD_IPS = ["10.244.0.1", "10.244.0.2", "10.244.0.3", "10.244.0.4"]  # few, so Services share pods


def service(ns: str, name: str, shape: str, ip: str, named: bool, target: str) -> Service:
    ports = [{"name": "http", "port": 80, "protocol": "TCP"} if named else {"port": 80}]
    spec: dict[str, Any] = {"ports": ports}
    if shape == "ClusterIP":
        spec["clusterIP"] = ip
    elif shape == "headless":
        spec["clusterIP"] = "None"
    else:
        spec = {"type": "ExternalName", "externalName": target}
    return Service.model_validate({"metadata": {"name": name, "namespace": ns}, "spec": spec})


def endpoint_slice(ns: str, name: str, owner: str | None, endpoints: list[tuple[str, bool, bool, bool]],
                   named: bool) -> EndpointSlice:
    labels = {"kubernetes.io/service-name": owner} if owner else {}
    return EndpointSlice.model_validate({
        "metadata": {"name": name, "namespace": ns, "labels": labels}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"} if named else {"port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready, "terminating": terminating},
                       **({"hostname": f"h-{ip.rsplit('.', 1)[1]}"} if hostname else {})}
                      for ip, ready, terminating, hostname in endpoints]})


namespaces = st.sampled_from(["default", "default", "prod"])  # mostly one: objects meet
targets = st.sampled_from([f"{s}.{n}.svc.{Z}" for s in SERVICES for n in NAMESPACES] + ["www.example.org"])
service_events = st.builds(lambda ns, name, shape, ip, named, target: ("service", service(ns, name, shape, ip, named, target)),
                           namespaces, st.sampled_from(SERVICES), st.sampled_from(["ClusterIP", "headless", "ExternalName"]),
                           st.sampled_from(CLUSTER_IPS), st.booleans(), targets)
ready = st.sampled_from([True, True, False])
endpoints = st.lists(st.tuples(st.sampled_from(POD_IPS), ready, st.sampled_from([False, False, True]), st.booleans()), max_size=3,
                     unique_by=lambda e: e[0])
slice_events = st.builds(lambda ns, name, owner, eps, named: ("slice", endpoint_slice(ns, name, owner, eps, named)),
                         namespaces, st.sampled_from(SLICES), st.sampled_from([*SERVICES, None]), endpoints, st.booleans())
deletions = st.tuples(st.sampled_from(["delete service", "delete slice"]), namespaces,
                      st.sampled_from(SERVICES + SLICES))
namespace_events = st.tuples(st.sampled_from(["namespace", "delete namespace"]), st.sampled_from([*NAMESPACES, "other"]))
events = st.lists(st.one_of(service_events, slice_events, deletions, namespace_events), max_size=25)

QUESTIONS = [(name, rtype)
             for name in [Z, f"svc.{Z}", f"pod.{Z}", f"dns-version.{Z}", f"other.svc.{Z}",
                          *(f"{ns}.svc.{Z}" for ns in NAMESPACES),
                          *(f"{s}.{ns}.svc.{Z}" for s in SERVICES for ns in NAMESPACES),
                          *(f"_http._tcp.{s}.{ns}.svc.{Z}" for s in SERVICES for ns in NAMESPACES),
                          *(f"{host}.{s}.default.svc.{Z}" for s in SERVICES
                            for host in ("h-1", "h-2", "10-244-0-3", "10-244-0-4")),
                          *(f"{ip.split('.')[3]}.0.96.10.in-addr.arpa." for ip in CLUSTER_IPS),
                          *(f"{ip.split('.')[3]}.0.244.10.in-addr.arpa." for ip in POD_IPS)]
             for rtype in ("A", "SRV", "PTR", "ANY")]


def normal(answer: Answer) -> tuple[object, ...]:
    """An answer as a DNS client sees it: record order within a set does not matter."""
    return (answer.rcode, sorted(answer.answer, key=repr), sorted(answer.additional, key=repr), answer.authority,
            answer.forward, answer.chase)


def contents(index: ZoneIndex) -> tuple[set[str], dict[str, dict[str, set[str]]], set[str]]:
    return index.names, {n: {t: set(d) for t, d in types.items()} for n, types in index.records.items()}, index.namespaces


def apply(live: LiveZone, event: tuple[Any, ...]) -> set[str]:
    kind = event[0]
    if kind == "service":
        return live.set_service(event[1])
    if kind == "slice":
        return live.set_slice(event[1])
    if kind == "delete service":
        return live.delete_service(event[1], event[2])
    if kind == "delete slice":
        return live.delete_slice(event[1], event[2])
    if kind == "namespace":
        return live.set_namespace(event[1])
    return live.delete_namespace(event[1])


def up(ns: str, name: str, owner: str | None, *ips: str) -> tuple[str, EndpointSlice]:
    return "slice", endpoint_slice(ns, name, owner, [(ip, True, False, False) for ip in ips], True)


def svc(ns: str, name: str, shape: str, ip: str = "10.96.0.1", target: str = "") -> tuple[str, Service]:
    return "service", service(ns, name, shape, ip, True, target)


# The transitions that are easy to get wrong, always run (hypothesis adds random ones).
@example([svc("default", "a", "ClusterIP"), up("default", "s1", "a", "10.244.0.1"),
          up("default", "s1", "b", "10.244.0.1")])  # a slice relabelled to another Service
@example([svc("default", "a", "headless"), up("default", "s1", "a", "10.244.0.1"), svc("default", "a", "ClusterIP"),
          svc("default", "a", "ExternalName", target=f"b.default.svc.{Z}"), svc("default", "b", "ClusterIP"),
          svc("default", "a", "headless")])  # a Service changing shape
@example([svc("default", "a", "ClusterIP"), svc("default", "b", "ClusterIP"), up("default", "s1", "a", "10.244.0.1"),
          up("default", "s2", "b", "10.244.0.1"), ("delete slice", "default", "s1"),
          ("delete service", "default", "b")])  # a pod behind two Services
@example([svc("prod", "a", "ClusterIP"), ("delete namespace", "prod"), ("namespace", "prod"),
          ("delete service", "prod", "a"), ("delete namespace", "prod")])  # a namespace and its Services
@example([up("default", "s1", "a", "10.244.0.1"), svc("default", "a", "headless"),
          svc("default", "b", "ClusterIP", ip="10.96.0.1"), svc("default", "a", "ClusterIP", ip="10.96.0.1"),
          ("delete service", "default", "b")])  # slices before their Service; two Services, one address
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_event_by_event_equals_a_build_from_the_final_state(sequence: list[tuple[Any, ...]]) -> None:
    live = LiveZone.empty()
    for ns in NAMESPACES:
        live.set_namespace(ns)
    before = {q: live.index.lookup(*q) for q in QUESTIONS}
    for event in sequence:
        touched = apply(live, event)
        after = {q: live.index.lookup(*q) for q in QUESTIONS}
        for q in QUESTIONS:  # an answer that changed was drawn from a name the change reports
            if normal(after[q]) != normal(before[q]):
                assert touched & set(before[q].depends), (event, q, before[q], after[q])
        before = after
    fresh = ZoneIndex.build(live.services.values(), live.slices.values(), live.index.namespaces)
    assert contents(live.index) == contents(fresh)
    for q in QUESTIONS:
        assert normal(live.index.lookup(*q)) == normal(fresh.lookup(*q)), q


def test_a_pod_shared_by_two_services_keeps_its_other_ptr_when_one_goes() -> None:
    live = LiveZone.empty()
    live.set_namespace("default")
    for name in ("a", "b"):
        live.set_service(service("default", name, "ClusterIP", f"10.96.0.{1 if name == 'a' else 2}", True, ""))
        live.set_slice(endpoint_slice("default", f"{name}-x", name, [("10.244.0.1", True, False, False)], True))
    reverse = "1.0.244.10.in-addr.arpa."
    assert {r.data for r in live.index.lookup(reverse, "PTR").answer} == {
        f"10-244-0-1.a.default.svc.{Z}", f"10-244-0-1.b.default.svc.{Z}"}
    touched = live.delete_service("default", "a")
    assert reverse in touched and f"a.default.svc.{Z}" in touched and f"b.default.svc.{Z}" not in touched
    assert {r.data for r in live.index.lookup(reverse, "PTR").answer} == {f"10-244-0-1.b.default.svc.{Z}"}
    assert live.index.lookup(f"a.default.svc.{Z}", "A").rcode == "NXDOMAIN"
    assert live.index.lookup(f"default.svc.{Z}", "A").rcode == "NOERROR"  # the namespace still exists


def test_a_change_touches_only_its_own_service_among_many() -> None:
    live = LiveZone.empty()
    live.set_namespace("default")
    for i in range(200):
        live.set_service(Service.model_validate({"metadata": {"name": f"s{i}", "namespace": "default"},
                                                 "spec": {"clusterIP": f"10.96.1.{i + 1}", "ports": [{"port": 80}]}}))
    touched = live.set_service(Service.model_validate({"metadata": {"name": "s7", "namespace": "default"},
                                                       "spec": {"clusterIP": "10.96.2.1", "ports": [{"port": 80}]}}))
    assert touched == {f"s7.default.svc.{Z}", "8.1.96.10.in-addr.arpa.", "1.2.96.10.in-addr.arpa."}
    assert {r.data for r in live.index.lookup(f"s7.default.svc.{Z}", "A").answer} == {"10.96.2.1"}
    assert live.index.lookup("8.1.96.10.in-addr.arpa.", "PTR").forward  # the old address is no longer ours


def test_a_headless_service_appears_with_its_first_ready_endpoint_and_goes_with_its_last() -> None:
    live = LiveZone.empty()
    live.set_namespace("default")
    live.set_service(service("default", "db", "headless", "", True, ""))
    name = f"db.default.svc.{Z}"
    assert live.index.lookup(name, "A").rcode == "NXDOMAIN"
    touched = live.set_slice(endpoint_slice("default", "db-x", "db", [("10.244.0.1", True, False, True)], True))
    assert name in touched and {r.data for r in live.index.lookup(name, "A").answer} == {"10.244.0.1"}
    assert {r.data for r in live.index.lookup(f"_http._tcp.{name}", "SRV").answer} == {f"0 100 80 h-1.{name}"}
    live.set_slice(endpoint_slice("default", "db-x", "db", [("10.244.0.1", False, False, True)], True))
    assert live.index.lookup(name, "A").rcode == "NXDOMAIN"
    assert live.index.lookup(f"h-1.{name}", "A").rcode == "NXDOMAIN"


def test_an_external_name_loop_ends() -> None:
    live = LiveZone.empty()
    live.set_namespace("default")
    live.set_service(service("default", "a", "ExternalName", "", True, f"b.default.svc.{Z}"))
    live.set_service(service("default", "b", "ExternalName", "", True, f"a.default.svc.{Z}"))
    answer = live.index.lookup(f"a.default.svc.{Z}", "A")
    assert answer.rcode == "NOERROR" and all(r.rtype == "CNAME" for r in answer.answer) and answer.chase is None
