"""A 200-step generated sequence through the real pieces: Services and Pods written to a store
(the API server's Service admission allocates), the control plane's EndpointSlice controller,
and each node's proxy pass (watch-fed view → live table → kernel) after every step. Steps
create and delete Services, scale, relabel, make unready, terminate (gracefully: still
serving) and kill pods. At the end each node's
kernel table equals a fresh render of the store, and every ClusterIP answers from exactly the
ready pods its selector picks (or is refused when there are none)."""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from podnet.agent.policy_view import LiveView
from podnet.agent.proxy import ProxyReconciler, ProxyView, node_context
from podnet.agent.proxy_loop import ProxyPass
from podnet.agent.service_control import ServiceController
from podnet.cluster.lifecycle import register_services
from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.services import SERVICE_TABLE, render
from podnet.kernel import underlay
from podnet.kernel.nft.apply import NftApplier
from podnet.model import EndpointSlice, IPPool, Node, Pod, Service
from podnet.services.allocation import CONFIG_KEY
from podnet.services.cluster import service_config
from podnet.services.proxy import plan
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import LabPod, PolicyLab
from podnet.testing.service_lab import NameServer, ask_tcp

pytestmark = pytest.mark.kernel

PORT, APPS, STEPS = 8080, ("a", "b", "c"), 200


class World:
    """The lab, the store and the proxies; each step changes the store, then everything syncs."""

    def __init__(self, lab: PolicyLab) -> None:
        self.lab = lab
        self.store = ResourceStore(MemoryStore(history=100000))
        self.store.bootstrap()
        register_services(self.store, service_config("10.96.0.0/16"))
        self.store.apply([IPPool.model_validate({"metadata": {"name": "pods"}, "spec": {"cidr": "10.244.0.0/16"}})])
        for name, node in lab.nodes.items():
            obj = Node.model_validate({"metadata": {"name": name},
                                       "status": {"addresses": [{"type": "InternalIP", "address": node.ip}]}})
            self.store.apply([obj])
            self.store.update_status(obj)
        self.control = ServiceController(self.store)
        self.passes = {name: ProxyPass(ProxyReconciler(name, netns=node.netns, health=False),
                                       ProxyView(LiveView(self.store), name)) for name, node in lab.nodes.items()}
        self.pods: dict[str, LabPod] = {}
        self.servers: dict[str, NameServer] = {}
        self.seq = 0

    def sync(self) -> None:
        self.control.reconcile(self.store.snapshot())
        for run in self.passes.values():
            run()

    def add_pod(self, rnd: random.Random) -> None:
        self.seq += 1
        name, node = f"p{self.seq}", rnd.choice(sorted(self.lab.nodes))
        pod = self.lab.add_pod("default", name, node, {"app": rnd.choice(APPS)})
        underlay.wait_carrier([self.lab.nodes[node].netns, pod.netns])
        self.pods[name] = pod
        self.servers[name] = NameServer(pod.netns, pod.ip, PORT, name).start()
        obj = pod.model(self.lab.nodes[node].ip)
        self.store.apply([obj])
        self.store.update_status(obj)

    def set_pod(self, name: str, labels: dict[str, str] | None = None, ready: bool | None = None) -> None:
        cur = self.store.get(Pod, name, "default")
        assert cur is not None
        data = cur.to_dict()
        if labels is not None:
            self.pods[name].labels = labels
            data["metadata"]["labels"] = labels
            self.store.update(Pod.model_validate(data), check_version=False)
        if ready is not None:
            data["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
            self.store.update_status(Pod.model_validate(data))

    def kill_pod(self, name: str) -> None:
        """Gone for good: what the agent's final delete (grace 0) leaves."""
        self.servers.pop(name).close()
        self.lab.remove_pod(self.pods.pop(name).key)
        self.store.delete(Pod, name, "default", grace_period_seconds=0)

    def terminate_pod(self, name: str) -> None:
        """A graceful delete: the pod is terminating and still serves until it is killed."""
        self.store.delete(Pod, name, "default")

    def step(self, rnd: random.Random) -> str:
        services = [s.name for s in self.store.list(Service) if s.name != "kubernetes"]
        roll = rnd.random()
        if roll < 0.2 or not services:
            name = f"s{rnd.randrange(6)}"
            extra: dict[str, Any] = {}
            if rnd.random() < 0.3:
                extra["sessionAffinity"] = "ClientIP"
            if rnd.random() < 0.3:
                extra.update(type="NodePort", externalTrafficPolicy=rnd.choice(["Cluster", "Local"]))
            self.store.apply([Service.model_validate({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": {"app": rnd.choice(APPS)}, "ports": [{"port": 80, "targetPort": PORT}], **extra}})])
            return f"service {name}"
        if roll < 0.3:
            name = rnd.choice(services)
            self.store.delete(Service, name, "default")
            return f"delete service {name}"
        if roll < 0.55 and len(self.pods) < 14:
            self.add_pod(rnd)
            return "scale up"
        if not self.pods:
            return "nothing"
        name = rnd.choice(sorted(self.pods))
        if roll < 0.75:
            self.set_pod(name, labels={"app": rnd.choice(APPS)})
            return f"relabel {name}"
        if roll < 0.85:
            self.set_pod(name, ready=rnd.random() < 0.5)
            return f"readiness {name}"
        if roll < 0.92:
            self.terminate_pod(name)
            return f"terminate {name}"
        self.kill_pod(name)
        return f"kill {name}"

    def expected(self, svc: Service) -> set[str]:
        """The pods a ClusterIP should answer from: the ready ones, else the terminating ones
        that still serve."""
        selector = svc.spec.selector or {}
        serving, terminating = set(), set()
        for pod in self.store.list(Pod):
            ready = all(c.get("status") == "True" for c in pod.status.conditions or () if c.get("type") == "Ready")
            if ready and all(pod.labels.get(k) == v for k, v in selector.items()):
                (terminating if pod.metadata.deletion_timestamp else serving).add(pod.name)
        return serving or terminating

    def close(self) -> None:
        for s in self.servers.values():
            s.close()
        self.store.close()


@pytest.fixture()
def world(prefixes: Prefixes) -> Iterator[World]:
    lab = PolicyLab.build(prefixes.new(sep=""), nodes=2)
    w = World(lab)
    try:
        yield w
    finally:
        w.close()
        lab.close()


def _answers(ns: str, ip: str, want: set[str]) -> set[str]:
    seen: set[str] = set()
    for _ in range(150):
        seen.add(ask_tcp(ns, ip, 80, 0.5))
        if seen - want or (want and seen >= want):
            break
    return seen


def test_200_generated_steps_end_with_the_store_in_the_kernel(world: World) -> None:
    rnd = random.Random(20261204)
    for _ in range(3):
        world.add_pod(rnd)
    world.sync()
    for _ in range(STEPS):
        world.step(rnd)
        world.sync()
    assert all(p.reconciler.status.error is None for p in world.passes.values())
    paths = {p.reconciler.status.path for p in world.passes.values()}
    assert paths <= {"live", "none"}, paths  # the steps went the incremental way
    services = [s for s in world.store.list(Service) if isinstance(s, Service)]
    slices = [s for s in world.store.list(EndpointSlice) if isinstance(s, EndpointSlice)]
    config = world.store.kv.get(CONFIG_KEY)
    for name, node in world.lab.nodes.items():
        ctx = node_context(world.store.get(Node, name), world.store.list(IPPool), config.value if config else None)
        fresh = render(plan(services, slices, name), ctx)
        kernel = NftApplier(node.netns, table=SERVICE_TABLE).read()
        assert kernel is not None and plan_sync(fresh, kernel).empty, f"{name}: the kernel differs from a fresh render"
    client = world.lab.add_pod("default", "client", "n1", {"run": "client"})
    underlay.wait_carrier([world.lab.nodes["n1"].netns, client.netns])
    checked = 0
    for svc in services:
        if svc.name == "kubernetes":
            continue
        want = world.expected(svc)
        sticky = svc.spec.session_affinity == "ClientIP" and bool(want)  # one client sees one endpoint
        ip = svc.spec.cluster_ip or ""
        got = {ask_tcp(client.netns, ip, 80, 0.5) for _ in range(10)} if sticky else _answers(client.netns, ip, want)
        ok = (len(got) == 1 and got <= want) if sticky else got == (want or {"refused"})
        assert ok, f"{svc.name} ({svc.spec.selector}): {got} != {want}"
        checked += 1
    assert checked >= 2
