"""The EndpointSlice and Endpoints controllers (pure plan): the same slices whatever order the
changes arrive in, stable names, one slice written per pod change, and the API's rules for
conditions, named target ports, publishNotReadyAddresses, hostnames and zones."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.model import Endpoints, EndpointSlice, Node, Pod, Resource, Service
from podnet.services.endpointslices import (
    CONTROLLER,
    HEADLESS_LABEL,
    MAX_PER_SLICE,
    OVER_CAPACITY,
    desired_endpoints,
    desired_slices,
    plan,
)

SERVICE_LABEL = "kubernetes.io/service-name"


def service(name: str = "web", **spec: Any) -> Service:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "http"}])
    return Service.model_validate({"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                                                "labels": {"team": "a"}}, "spec": spec})


def pod(name: str, ip: str, *, app: str = "web", port: int = 8080, ready: bool | None = True,
        terminating: bool = False, node: str = "node-1", phase: str = "Running", **spec: Any) -> Pod:
    status: dict[str, Any] = {"phase": phase, "podIP": ip}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": app}}
    if terminating:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return Pod.model_validate({"metadata": meta, "status": status, "spec": {
        "nodeName": node, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}], **spec}})


def endpoint_view(slices: list[EndpointSlice]) -> dict[str, tuple[Any, ...]]:
    """address → (conditions, ports of its slice)."""
    return {e.addresses[0]: (e.conditions.ready, e.conditions.serving, e.conditions.terminating,
                             tuple((p.name, p.port) for p in s.ports or ()))
            for s in slices for e in s.endpoints}


class Controller:
    """What the stored slices and Endpoints become when the plan is applied after each change."""

    def __init__(self, services: list[Service], nodes: list[Node] | None = None) -> None:
        self.services, self.nodes = services, nodes or []
        self.objects: dict[tuple[str, str], Resource] = {}
        self.writes = 0

    def sync(self, pods: list[Pod]) -> None:
        slices = [o for o in self.objects.values() if isinstance(o, EndpointSlice)]
        eps = [o for o in self.objects.values() if isinstance(o, Endpoints)]
        p = plan(self.services, pods, self.nodes, slices, eps)
        for obj in p.apply:
            self.objects[(obj.kind, obj.name)] = obj
        for obj in p.delete:
            del self.objects[(obj.kind, obj.name)]
        self.writes += len(p.apply) + len(p.delete)

    def state(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {k: v.to_dict() for k, v in sorted(self.objects.items())}


def test_conditions_follow_the_pod() -> None:
    pods = [pod("ready", "10.244.0.2"), pod("unready", "10.244.0.3", ready=False),
            pod("no-condition", "10.244.0.4", ready=None), pod("pending", "10.244.0.5", ready=None, phase="Pending"),
            pod("leaving", "10.244.0.6", terminating=True), pod("done", "10.244.0.7", phase="Succeeded"),
            pod("other", "10.244.0.8", app="db")]
    view = endpoint_view(desired_slices(service(), pods))
    assert view == {"10.244.0.2": (True, True, False, (("http", 8080),)),
                    "10.244.0.3": (False, False, False, (("http", 8080),)),
                    "10.244.0.4": (True, True, False, (("http", 8080),)),  # Running, no Ready condition yet
                    "10.244.0.5": (False, False, False, (("http", 8080),)),
                    "10.244.0.6": (False, True, True, (("http", 8080),))}
    published = endpoint_view(desired_slices(service(publishNotReadyAddresses=True), pods))
    assert all(ready for ready, *_ in published.values())
    ep = desired_endpoints(service(), pods)
    (subset,) = ep.subsets or []
    assert [a.ip for a in subset.addresses or []] == ["10.244.0.2", "10.244.0.4"]
    assert [a.ip for a in subset.not_ready_addresses or []] == ["10.244.0.3", "10.244.0.5"]  # no terminating pod


def test_a_named_target_port_is_resolved_per_pod_into_separate_slices() -> None:
    pods = [pod("a", "10.244.0.2", port=8080), pod("b", "10.244.0.3", port=9090), pod("c", "10.244.0.4", port=8080)]
    slices = desired_slices(service(), pods)
    assert sorted((tuple(p.port for p in s.ports or ()), [e.addresses[0] for e in s.endpoints]) for s in slices) == [
        ((8080,), ["10.244.0.2", "10.244.0.4"]), ((9090,), ["10.244.0.3"])]
    numbered = desired_slices(service(ports=[{"port": 80, "targetPort": 7000}]), pods)
    assert len(numbered) == 1 and numbered[0].ports[0].port == 7000 and numbered[0].ports[0].name == ""  # type: ignore[index]


def test_slice_shape_labels_owner_hostname_and_zone() -> None:
    nodes = [Node.model_validate({"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}}})]
    svc = service("db", clusterIP="None", selector={"app": "db"})
    (slice_,) = desired_slices(svc, [pod("db-0", "10.244.0.9", app="db", hostname="db-0", subdomain="db"),
                                     pod("db-1", "10.244.0.10", app="db", hostname="db-1", subdomain="x")], nodes)
    assert slice_.labels == {"team": "a", HEADLESS_LABEL: "", SERVICE_LABEL: "db",
                             "endpointslice.kubernetes.io/managed-by": CONTROLLER}
    assert slice_.metadata.owner_references == [{"apiVersion": "v1", "kind": "Service", "name": "db", "uid": "uid-db",
                                                 "controller": True, "blockOwnerDeletion": True}]
    first, second = slice_.endpoints
    assert (first.hostname, first.zone, first.node_name) == ("db-0", "z1", "node-1") and second.hostname is None
    assert first.target_ref == {"kind": "Pod", "namespace": "default", "name": "db-0", "uid": "uid-db-0"}
    assert slice_.address_type == "IPv4" and slice_.name.startswith("db-") and len(slice_.name) == 8


def test_no_pod_means_one_empty_slice_and_empty_endpoints() -> None:
    (empty,) = desired_slices(service(), [])
    assert empty.endpoints == [] and empty.ports is None
    assert desired_endpoints(service(), []).subsets is None


def test_slices_hold_at_most_100_and_keep_their_names() -> None:
    pods = [pod(f"p{i}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(250)]
    slices = desired_slices(service(), pods)
    assert [len(s.endpoints) for s in slices] == [MAX_PER_SLICE, MAX_PER_SLICE, 50]
    assert [s.name for s in desired_slices(service(), list(reversed(pods)))] == [s.name for s in slices]
    assert len({s.name for s in slices}) == 3


def test_endpoints_are_truncated_at_1000_addresses() -> None:
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(1001)]
    ep = desired_endpoints(service(), pods)
    assert sum(len(s.addresses or ()) for s in ep.subsets or ()) == 1000
    assert ep.metadata.annotations == {OVER_CAPACITY: "truncated"}


def test_one_pod_change_writes_one_slice_and_a_quiet_pass_writes_nothing() -> None:
    controller = Controller([service()])
    pods = [pod(f"p{i}", f"10.244.0.{i + 2}") for i in range(5)]
    controller.sync(pods)
    assert controller.writes == 2  # one slice, one Endpoints
    controller.sync(pods)
    assert controller.writes == 2
    controller.sync(pods + [pod("new", "10.244.0.50")])
    assert controller.writes == 4  # the slice and the Endpoints, nothing else
    names = {k for k in controller.objects}
    controller.sync(pods)
    assert {k for k in controller.objects} == names  # the slice kept its name


def test_selectorless_services_keep_their_own_slices_and_deleted_services_lose_theirs() -> None:
    mine = EndpointSlice.model_validate({
        "metadata": {"name": "ext-1", "namespace": "default", "labels": {SERVICE_LABEL: "ext"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}], "ports": [{"name": "", "port": 80}]})
    ext = Service.model_validate({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}})
    controller = Controller([ext, service()])
    controller.objects[("EndpointSlice", "ext-1")] = mine
    controller.sync([pod("a", "10.244.0.2")])
    assert ("EndpointSlice", "ext-1") in controller.objects and ("Endpoints", "ext") not in controller.objects
    controller.services = [ext]
    controller.sync([pod("a", "10.244.0.2")])
    assert list(controller.objects) == [("EndpointSlice", "ext-1")]


POD_STATES = st.tuples(st.sampled_from(["web", "db"]), st.sampled_from([8080, 9090]),
                       st.sampled_from([True, False, None]), st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(POD_STATES, min_size=0, max_size=12), st.randoms(use_true_random=False),
       st.lists(st.tuples(st.integers(0, 11), POD_STATES), max_size=10))
def test_the_same_slices_whatever_order_changes_arrive_in(final: list[Any], rnd: Any, detours: list[Any]) -> None:
    """Pods reach their final state through different paths (other states first, in another
    order); the controller ends with exactly the slices planned from the final state alone."""
    def make(i: int, state: Any) -> Pod:
        app, port, ready, terminating = state
        return pod(f"p{i}", f"10.244.0.{i + 2}", app=app, port=port, ready=ready, terminating=terminating)

    services = [service(), service("db", selector={"app": "db"}, ports=[{"port": 5432, "targetPort": "http"}])]
    target = {f"p{i}": make(i, s) for i, s in enumerate(final)}
    fresh = Controller(services)
    fresh.sync(list(target.values()))
    current: dict[str, Pod] = {}
    walked = Controller(services)
    walked.sync([])  # the Services exist before any pod
    events = [(i, s) for i, s in detours if i < len(final)] + list(enumerate(final))
    rnd.shuffle(events)
    for i, state in events + list(enumerate(final)):  # detours in any order, then the final states
        current[f"p{i}"] = make(i, state)
        walked.sync(list(current.values()))
    assert walked.state() == fresh.state()


def test_the_control_loop_writes_slices_and_assigns_pending_load_balancers() -> None:
    from podnet.agent.control import ControlLoop
    from podnet.model import IPPool
    from podnet.store.open import open_store_url

    store = open_store_url("memory://")
    store.apply([service(), Service.model_validate({"metadata": {"name": "lb"},
                                                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})])
    store.create(pod("a", "10.244.0.2"))
    loop = ControlLoop(store, gc_every=1e9)
    loop.reconcile(store.snapshot())
    (slice_,) = store.list(EndpointSlice)
    assert isinstance(slice_, EndpointSlice) and [e.addresses for e in slice_.endpoints] == [["10.244.0.2"]]
    assert [o.name for o in store.list(Endpoints)] == ["web"]
    lb = store.get(Service, "lb")
    assert isinstance(lb, Service) and lb.ingress_addresses == []
    revision = store.revision()
    loop.reconcile(store.snapshot())
    assert store.revision() == revision  # nothing to do, nothing written (no pool to retry with)
    store.apply([IPPool.model_validate({"metadata": {"name": "lb"}, "spec": {
        "cidr": "192.168.200.0/30", "blockSize": 30, "allowedUses": ["LoadBalancer"]}})])
    loop.reconcile(store.snapshot())
    lb = store.get(Service, "lb")
    assert isinstance(lb, Service) and lb.ingress_addresses == ["192.168.200.1"]
    store.delete(Service, "web")
    loop.reconcile(store.snapshot())
    assert store.list(EndpointSlice) == [] and store.list(Endpoints) == []  # the lb Service has no selector
