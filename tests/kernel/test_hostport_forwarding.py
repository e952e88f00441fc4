"""hostPort and loadBalancerSourceRanges on the real kernel, through the store, the proxy's
watch-fed view and its reconciler (``ProxyPass``), as ``podnet proxy`` runs them: two nodes on
an underlay bridge whose namespace is the external host (10.99.0.254, and 10.99.0.253 added for
a second client), pods answering with their names on TCP and UDP.

* the upstream conformance case "[sig-network] HostPort validates that there is no conflict
  between pods with same hostPort but different hostIP and protocol": 54321 on 127.0.0.1/TCP,
  the node's IP/TCP and the node's IP/UDP all fit one node, and each answers on its own
  hostIP:hostPort/protocol; from outside, from the node, from other pods and from itself;
* the forward goes with its pod; ingress policy at the pod sees the client's own address;
* loadBalancerSourceRanges: a client outside the ranges is dropped at the LoadBalancer
  address, one inside is served, the NodePort serves both.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from podnet.agent.policy_view import LiveView
from podnet.agent.proxy import ProxyReconciler, ProxyView
from podnet.agent.proxy_loop import ProxyPass
from podnet.agent.service_control import ServiceController
from podnet.cluster.lifecycle import register_services
from podnet.controllers import scheduler
from podnet.dataplane.nft.hostports import HOSTPORT_TABLE
from podnet.kernel import netns, underlay
from podnet.kernel.localnet import route_localnet
from podnet.kernel.nft.apply import NftApplier
from podnet.model import IPPool, NetworkPolicy, Node, Pod, Service
from podnet.services.cluster import service_config
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import GATEWAY, LabPod, PolicyLab
from podnet.testing.service_lab import NameServer, UdpClient, ask_tcp

pytestmark = pytest.mark.kernel

PORT, HOST_PORT = 8080, 54321
CLIENT2 = "10.99.0.253"  # the external host's second address


@dataclass
class World:
    lab: PolicyLab
    store: ResourceStore
    passes: dict[str, ProxyPass]
    control: ServiceController
    pods: dict[str, LabPod] = field(default_factory=dict)
    servers: dict[str, NameServer] = field(default_factory=dict)

    @property
    def ul(self) -> str:
        return self.lab.prefix + "-ul"

    def node(self, name: str) -> Node:
        got = self.store.get(Node, name)
        assert isinstance(got, Node)
        return got

    def pod(self, name: str, node: str, *ports: dict[str, Any], labels: dict[str, str] | None = None) -> Pod:
        """A pod wired on ``node`` serving its name on PORT, written to the store with ``ports``."""
        lab_pod = self.pods[name] = self.lab.add_pod("default", name, node, labels or {"app": name})
        underlay.wait_carrier([self.lab.nodes[node].netns, lab_pod.netns])
        self.servers[name] = NameServer(lab_pod.netns, lab_pod.ip, PORT, name).start()
        obj = Pod.model_validate({
            "metadata": {"name": name, "namespace": "default", "labels": lab_pod.labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost", "ports": list(ports)}]},
            "status": {"phase": "Running", "podIP": lab_pod.ip, "hostIP": self.lab.nodes[node].ip}})
        self.store.apply([obj])
        self.store.update_status(obj)
        return obj

    def remove(self, name: str) -> None:
        self.servers.pop(name).close()
        self.lab.remove_pod(self.pods.pop(name).key)
        self.store.delete(Pod, name, "default", grace_period_seconds=0)

    def sync(self) -> None:
        self.control.reconcile(self.store.snapshot())
        for run in self.passes.values():
            run()


@pytest.fixture(scope="module")
def world(prefixes: Prefixes) -> Iterator[World]:
    lab = PolicyLab.build(prefixes.new(sep=""), nodes=2)
    store = ResourceStore(MemoryStore(history=100000))
    passes: dict[str, ProxyPass] = {}
    w = World(lab, store, passes, ServiceController(store))
    try:
        store.bootstrap()
        register_services(store, service_config("10.96.0.0/16"))
        netns.run_in(w.ul, ["ip", "addr", "add", f"{CLIENT2}/24", "dev", "br0"], check=True)
        store.apply([IPPool.model_validate({"metadata": {"name": "pods"}, "spec": {"cidr": "10.244.0.0/16"}})])
        for name, node in lab.nodes.items():
            obj = Node.model_validate({"metadata": {"name": name},
                                       "status": {"addresses": [{"type": "InternalIP", "address": node.ip}]}})
            store.apply([obj])
            store.update_status(obj)
            passes[name] = ProxyPass(ProxyReconciler(name, netns=node.netns, health=False),
                                     ProxyView(LiveView(store), name))
        yield w
    finally:
        for s in w.servers.values():
            s.close()
        lab.close()
        assert NftApplier(None, table=HOSTPORT_TABLE).read() is None, "a host port table appeared in the root namespace"


def hp(host_ip: str | None, protocol: str = "TCP", port: int = HOST_PORT) -> dict[str, Any]:
    out: dict[str, Any] = {"containerPort": PORT, "hostPort": port, "protocol": protocol}
    if host_ip:
        out["hostIP"] = host_ip
    return out


def ask_udp(ns: str, ip: str, port: int) -> str:
    client = UdpClient(ns)
    try:
        return client.ask(ip, port)
    finally:
        client.close()


def test_same_host_port_on_other_host_ips_and_protocols_shares_a_node(world: World) -> None:
    n1, n2 = world.lab.nodes["n1"], world.lab.nodes["n2"]
    wanted = {"pod1": hp("127.0.0.1"), "pod2": hp(n1.ip), "pod3": hp(n1.ip, "UDP")}
    unbound = [Pod.model_validate({"metadata": {"name": n, "namespace": "default"},
                                   "spec": {"containers": [{"name": "c", "ports": [p]}]}}) for n, p in wanted.items()]
    got = scheduler.plan(unbound, [world.node("n1")])  # the conformance test pins them to one node
    assert [(p.name, node) for p, node in got.bindings] == [("pod1", "n1"), ("pod2", "n1"), ("pod3", "n1")]
    for name, port in wanted.items():
        world.pod(name, "n1", port)
    world.pod("client", "n2")
    world.sync()
    status = world.passes["n1"].reconciler.status
    assert status.error is None and status.host_ports["forwards"] == 3, status
    assert route_localnet(n1.netns)
    # the conformance checks, from the node itself: 127.0.0.1 TCP, the node's IP TCP and UDP
    assert ask_tcp(n1.netns, "127.0.0.1", HOST_PORT) == "pod1"
    assert ask_tcp(n1.netns, n1.ip, HOST_PORT) == "pod2"
    assert ask_udp(n1.netns, n1.ip, HOST_PORT) == "pod3"
    # from outside (the client's address kept), from a pod on another node, from the pod itself
    assert ask_tcp(world.ul, n1.ip, HOST_PORT) == "pod2" and world.servers["pod2"].peers[-1] == GATEWAY
    assert ask_udp(world.ul, n1.ip, HOST_PORT) == "pod3"
    assert ask_tcp(world.pods["client"].netns, n1.ip, HOST_PORT) == "pod2"
    assert world.servers["pod2"].peers[-1] == world.pods["client"].ip
    assert ask_tcp(world.pods["pod2"].netns, n1.ip, HOST_PORT) == "pod2"  # hairpin: masqueraded to the node
    assert world.servers["pod2"].peers[-1] != world.pods["pod2"].ip
    # 127.0.0.1 is served only where a pod asked for it; the other node forwards nothing
    assert ask_tcp(world.ul, n2.ip, HOST_PORT, 0.5) == "refused"
    assert NftApplier(n2.netns, table=HOSTPORT_TABLE).read() is None
    # the forward goes with its pod
    world.remove("pod2")
    world.sync()
    assert ask_tcp(world.ul, n1.ip, HOST_PORT, 0.5) == "refused"
    assert ask_udp(world.ul, n1.ip, HOST_PORT) == "pod3"
    for name in ("pod1", "pod3", "client"):
        world.remove(name)
    world.sync()
    assert NftApplier(n1.netns, table=HOSTPORT_TABLE).read() is None  # nothing forwarded: no table


def test_any_address_and_policy_at_the_pod(world: World) -> None:
    n1 = world.lab.nodes["n1"]
    world.pod("guarded", "n1", hp(None, port=30500), labels={"app": "guarded"})
    world.sync()
    assert ask_tcp(n1.netns, "127.0.0.1", 30500) == "guarded"  # 0.0.0.0 answers on localhost too
    assert ask_tcp(world.ul, n1.ip, 30500, source=CLIENT2) == "guarded"
    # ingress policy at the pod sees the external client's own address
    policy = NetworkPolicy.model_validate({
        "metadata": {"name": "only-client2", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "guarded"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": f"{CLIENT2}/32"}}]}]}})
    world.lab.apply(world.lab.state([policy]))
    try:
        assert ask_tcp(world.ul, n1.ip, 30500, source=CLIENT2) == "guarded"
        assert ask_tcp(world.ul, n1.ip, 30500, 0.5) == "timeout"  # from 10.99.0.254: denied at the pod
    finally:
        for node in world.lab.nodes.values():  # no policy table: later pods need none
            node.applier.remove()
        world.remove("guarded")
        world.sync()


def test_load_balancer_source_ranges(world: World) -> None:
    n1 = world.lab.nodes["n1"]
    world.store.apply([IPPool.model_validate({"metadata": {"name": "lb"}, "spec": {
        "cidr": "192.168.77.0/29", "blockSize": 29, "allowedUses": ["LoadBalancer"]}})])
    underlay.add_route(world.ul, "192.168.77.0/29", gateway=n1.ip)
    world.pod("lb-a", "n2", labels={"app": "lb"})

    def apply(ranges: list[str]) -> str:
        world.store.apply([Service.model_validate({
            "metadata": {"name": "lb", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "lb"}, "loadBalancerSourceRanges": ranges,
                     "ports": [{"name": "http", "port": 80, "targetPort": PORT, "nodePort": 30077}]}})])
        world.sync()
        svc = world.store.get(Service, "lb", "default")
        assert isinstance(svc, Service) and svc.ingress_addresses
        return svc.ingress_addresses[0]

    try:
        lb_ip = apply([f"{CLIENT2}/32"])
        assert ask_tcp(world.ul, lb_ip, 80, source=CLIENT2) == "lb-a"
        t0 = time.perf_counter()
        assert ask_tcp(world.ul, lb_ip, 80, 0.5) == "timeout"  # 10.99.0.254 is outside the ranges: dropped
        assert time.perf_counter() - t0 >= 0.4
        assert ask_tcp(world.ul, n1.ip, 30077) == "lb-a"  # the NodePort is not filtered
        apply(["10.99.0.0/24"])
        assert ask_tcp(world.ul, lb_ip, 80) == "lb-a"
        assert ask_tcp(n1.netns, lb_ip, 80) == "lb-a"  # the node: the range holds its address
        apply([])
        assert ask_tcp(world.ul, lb_ip, 80) == "lb-a"
    finally:
        world.store.delete(Service, "lb", "default")
        world.remove("lb-a")
        world.sync()
