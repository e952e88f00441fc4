"""The service proxy on the real kernel: two nodes on an underlay bridge (whose namespace is the
"external host"), pods answering with their names, and ``ProxyReconciler`` programming each
node's ``ip podnet-svc`` table from Service and EndpointSlice values.

What a user of kube-proxy relies on: a ClusterIP lands on every endpoint, from pods and from
the node; a NodePort answers from outside (Cluster: masqueraded; Local: the client's address
kept, only local endpoints, dropped where there are none, the health check saying so); session
affinity sticks; a pod reaches itself through its Service; no endpoint means refused at once;
a UDP client fails over when its endpoint goes; policy holds on the endpoint after DNAT; a new
proxy on an existing table changes nothing."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from podnet.agent.proxy import ProxyReconciler
from podnet.dataplane.nft.services import SERVICE_TABLE, NodeContext, render
from podnet.kernel import netns, underlay
from podnet.kernel.nft.apply import NftApplier
from podnet.model import EndpointSlice, NetworkPolicy, Service
from podnet.services.proxy import plan
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import GATEWAY, LabPod, PolicyLab
from podnet.testing.service_lab import NameServer, UdpClient, ask_tcp, timed
from podnet.testing.service_objects import ep, service, slice_

pytestmark = pytest.mark.kernel

PORT = 8080
CIDR = "10.96.0.0/16"  # the lab underlay (10.99.0.0/24) lies inside the default /12


@dataclass
class ProxyLab:
    lab: PolicyLab
    proxies: dict[str, ProxyReconciler]
    servers: dict[str, NameServer] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    slices: dict[str, EndpointSlice] = field(default_factory=dict)

    def pod(self, name: str, node: str, labels: dict[str, str] | None = None, serve: bool = True) -> LabPod:
        pod = self.lab.add_pod("default", name, node, labels or {"app": "web"})
        underlay.wait_carrier([self.lab.nodes[node].netns, pod.netns])  # a new veth forwards once it has carrier
        if serve:
            self.servers[name] = NameServer(pod.netns, pod.ip, PORT, name).start()
        return pod

    def sync(self) -> None:
        for node, proxy in self.proxies.items():
            status = proxy.reconcile(plan(self.services.values(), self.slices.values(), node),
                                     NodeContext((self.lab.nodes[node].ip,), ("10.244.0.0/16",), CIDR))
            assert status.error is None, status.error

    def backends(self, name: str, *pods: LabPod, **conditions: Any) -> None:
        self.slices[name] = slice_(f"{name}-1", name, [ep(p.ip, p.node, **conditions) for p in pods], port=PORT)


@pytest.fixture()
def plab(prefixes: Prefixes) -> Iterator[ProxyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""), nodes=2)
    proxies = {name: ProxyReconciler(name, netns=node.netns) for name, node in lab.nodes.items()}
    pl = ProxyLab(lab, proxies)
    try:
        yield pl
    finally:
        for s in pl.servers.values():
            s.close()
        for p in proxies.values():
            p.close()
        lab.close()
        assert NftApplier(None, table=SERVICE_TABLE).read() is None, "a service table appeared in the root namespace"


def _answers(ns: str, ip: str, port: int, tries: int) -> list[str]:
    return [ask_tcp(ns, ip, port) for _ in range(tries)]


def test_clusterip_lands_on_every_endpoint_from_pods_and_the_node(plab: ProxyLab) -> None:
    web = [plab.pod("web-a", "n1"), plab.pod("web-b", "n2"), plab.pod("web-c", "n2")]
    client = plab.pod("client", "n1", {"run": "client"}, serve=False)
    plab.services["web"] = service("web", ip="10.96.0.20")
    plab.backends("web", *web)
    plab.sync()
    assert set(_answers(client.netns, "10.96.0.20", 80, 40)) == {"web-a", "web-b", "web-c"}
    assert set(_answers(plab.lab.nodes["n2"].netns, "10.96.0.20", 80, 40)) == {"web-a", "web-b", "web-c"}
    # Pod traffic keeps its address; the node's own is masqueraded (to its underlay address).
    assert client.ip in {p for s in plab.servers.values() for p in s.peers}
    # A port the Service does not define is refused, an unallocated address of the CIDR is dropped.
    assert ask_tcp(client.netns, "10.96.0.20", 81) == "refused"
    assert ask_tcp(client.netns, "10.96.0.99", 80, 0.5) == "timeout"


def test_no_endpoint_refuses_at_once_and_scale_back_answers(plab: ProxyLab) -> None:
    client = plab.pod("client", "n1", {"run": "client"}, serve=False)
    plab.services["web"] = service("web", ip="10.96.0.21", type="NodePort",
                                   ports=[{"name": "http", "port": 80, "targetPort": PORT, "nodePort": 30021}])
    plab.backends("web")
    plab.sync()
    outcome, seconds = timed(ask_tcp, client.netns, "10.96.0.21", 80, 3.0)
    assert outcome == "refused" and seconds < 0.3
    outcome, seconds = timed(ask_tcp, plab.lab.prefix + "-ul", plab.lab.nodes["n1"].ip, 30021, 3.0)
    assert outcome == "refused" and seconds < 0.3
    web = plab.pod("web-a", "n2")
    plab.backends("web", web)
    plab.sync()
    assert ask_tcp(client.netns, "10.96.0.21", 80) == "web-a"
    plab.backends("web")  # scaled to 0
    plab.sync()
    assert ask_tcp(client.netns, "10.96.0.21", 80) == "refused"


def _health(ns: str, ip: str, port: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    with netns.enter(ns):
        req = urllib.request.Request(f"http://{ip}:{port}/healthz")
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()), dict(err.headers)


def test_nodeport_from_outside_cluster_and_local_policies(plab: ProxyLab) -> None:
    ul = plab.lab.prefix + "-ul"
    n1, n2 = plab.lab.nodes["n1"], plab.lab.nodes["n2"]
    remote = plab.pod("web-r", "n2")
    plab.services["web"] = service("web", ip="10.96.0.22", type="NodePort",
                                   ports=[{"name": "http", "port": 80, "targetPort": PORT, "nodePort": 30022}])
    plab.backends("web", remote)
    local = plab.pod("loc-a", "n1", {"app": "loc"})
    plab.services["loc"] = service("loc", ip="10.96.0.23", type="LoadBalancer", externalTrafficPolicy="Local",
                                   healthCheckNodePort=31023,
                                   ports=[{"name": "http", "port": 80, "targetPort": PORT, "nodePort": 30023}])
    plab.backends("loc", local)
    client = plab.pod("client", "n2", {"run": "client"}, serve=False)
    plab.sync()
    # Cluster policy: any node forwards, and the endpoint sees the node's address (masqueraded).
    assert ask_tcp(ul, n1.ip, 30022) == "web-r" and plab.servers["web-r"].peers[-1] == n1.ip
    # ... and from another node (its own table leaves the address alone; n1's translates).
    assert ask_tcp(n2.netns, n1.ip, 30022) == "web-r"
    # Never on 127.0.0.1.
    assert ask_tcp(n1.netns, "127.0.0.1", 30022, 0.5) != "web-r"
    # Local policy: the client's own address, only on the node with an endpoint; dropped elsewhere.
    assert ask_tcp(ul, n1.ip, 30023) == "loc-a" and plab.servers["loc-a"].peers[-1] == GATEWAY
    assert ask_tcp(ul, n2.ip, 30023, 0.5) == "timeout"
    # ... while a pod on the node without an endpoint still gets through (short-circuit).
    assert ask_tcp(client.netns, n2.ip, 30023) == "loc-a"
    # The health check: 200 where an endpoint is ready, 503 elsewhere, with kube-proxy's body.
    code, body, headers = _health(ul, n1.ip, 31023)
    assert code == 200 and body == {"service": {"namespace": "default", "name": "loc"}, "localEndpoints": 1,
                                    "serviceProxyHealthy": True}
    assert headers["Content-Type"] == "application/json" and headers["X-Load-Balancing-Endpoint-Weight"] == "1"
    code, body, _ = _health(ul, n2.ip, 31023)
    assert code == 503 and body["localEndpoints"] == 0
    # Terminating only: still serving the NodePort, the health check says 503.
    plab.backends("loc", local, ready=False, serving=True, terminating=True)
    plab.sync()
    assert ask_tcp(ul, n1.ip, 30023) == "loc-a"
    assert _health(ul, n1.ip, 31023)[0] == 503


def test_affinity_sticks_and_a_pod_reaches_itself(plab: ProxyLab) -> None:
    web = [plab.pod("web-a", "n1"), plab.pod("web-b", "n2"), plab.pod("web-c", "n2")]
    client = plab.pod("client", "n1", {"run": "client"}, serve=False)
    plab.services["web"] = service("web", ip="10.96.0.24", sessionAffinity="ClientIP")
    plab.backends("web", *web)
    plab.sync()
    assert len(set(_answers(client.netns, "10.96.0.24", 80, 15))) == 1
    # Hairpin: every endpoint, including the pod itself, answers the pod through the Service.
    assert set(_answers(web[0].netns, "10.96.0.24", 80, 1)) <= {"web-a", "web-b", "web-c"}
    plab.services["web"] = service("web", ip="10.96.0.24")
    plab.backends("web", web[0])
    plab.sync()
    assert _answers(web[0].netns, "10.96.0.24", 80, 3) == ["web-a"] * 3


def test_udp_client_fails_over_when_its_endpoint_goes(plab: ProxyLab) -> None:
    a, b = plab.pod("dns-a", "n1"), plab.pod("dns-b", "n2")
    client = plab.pod("client", "n1", {"run": "client"}, serve=False)
    plab.services["dns"] = service("dns", ip="10.96.0.25",
                                   ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": PORT}])
    plab.slices["dns"] = slice_("dns-1", "dns", [ep(a.ip, "n1")], port=PORT, port_name="dns", protocol="UDP")
    plab.sync()
    udp = UdpClient(client.netns, 12345)
    try:
        assert udp.ask("10.96.0.25", 53) == "dns-a"
        plab.servers["dns-a"].close()  # the pod goes; the flow is still bound to it in conntrack
        plab.slices["dns"] = slice_("dns-1", "dns", [ep(b.ip, "n2")], port=PORT, port_name="dns", protocol="UDP")
        plab.sync()
        assert plab.proxies["n1"].status.conntrack_deleted >= 1
        assert udp.ask("10.96.0.25", 53) == "dns-b"
    finally:
        udp.close()


def test_policy_holds_on_the_endpoint_after_dnat(plab: ProxyLab) -> None:
    web = plab.pod("web-a", "n2")
    good = plab.pod("good", "n1", {"run": "good"}, serve=False)
    bad = plab.pod("bad", "n1", {"run": "bad"}, serve=False)
    plab.services["web"] = service("web", ip="10.96.0.26")
    plab.backends("web", web)
    plab.sync()
    policy = NetworkPolicy.model_validate({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "good"}}}],
                              "ports": [{"port": PORT}]}]}})
    plab.lab.apply(plab.lab.state([policy]))
    assert ask_tcp(good.netns, "10.96.0.26", 80) == "web-a"
    assert ask_tcp(bad.netns, "10.96.0.26", 80, 0.5) == "timeout"


def test_a_new_proxy_on_an_existing_table_changes_nothing(plab: ProxyLab) -> None:
    web = [plab.pod("web-a", "n1"), plab.pod("web-b", "n2")]
    client = plab.pod("client", "n1", {"run": "client"}, serve=False)
    plab.services["web"] = service("web", ip="10.96.0.27", sessionAffinity="ClientIP")
    plab.backends("web", *web)
    plab.sync()
    first = ask_tcp(client.netns, "10.96.0.27", 80)
    n1 = plab.lab.nodes["n1"]
    before = NftApplier(n1.netns, table=SERVICE_TABLE).read()
    fresh = ProxyReconciler("n1", netns=n1.netns, health=False)
    status = fresh.reconcile(plan(plab.services.values(), plab.slices.values(), "n1"),
                             NodeContext((n1.ip,), ("10.244.0.0/16",), CIDR))
    assert status.error is None and status.path == "none" and status.plan["commands"] == 0
    assert NftApplier(n1.netns, table=SERVICE_TABLE).read() == before
    assert ask_tcp(client.netns, "10.96.0.27", 80) == first  # the affinity entries survived too


def _listing(ns: str) -> list[dict[str, Any]]:
    with netns.enter(ns):
        import nftables

        nft = nftables.Nftables()
        nft.set_json_output(True)
        rc, out, err = nft.cmd("list table ip podnet-svc")
    assert rc == 0, err
    return [{k: {kk: vv for kk, vv in v.items() if kk != "handle"} if isinstance(v, dict) else v}
            for item in json.loads(out)["nftables"] for k, v in item.items() if k != "metainfo"]


def test_netlink_batches_build_the_table_libnftables_builds(prefix: str) -> None:
    """The raw netlink encoding of the service table (whole and changed) lists exactly as the
    same commands sent through libnftables."""
    services = [service("web", type="NodePort", externalTrafficPolicy="Local", sessionAffinity="ClientIP",
                        externalIPs=["192.168.5.5"], ports=[{"name": "http", "port": 80, "targetPort": PORT,
                                                             "nodePort": 30080}]),
                service("empty", ip="10.96.0.21"),
                service("dns", ip="10.96.0.22", internalTrafficPolicy="Local",
                        ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])]
    slices = [slice_("web-1", "web", [ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")], port=PORT),
              slice_("dns-1", "dns", [ep("10.244.1.5")], port=53, port_name="dns", protocol="UDP")]
    ctx = NodeContext(("10.99.0.1",), ("10.244.0.0/16", "10.1.0.0/24"), CIDR)
    raw, lib = f"{prefix}raw", f"{prefix}lib"
    for ns in (raw, lib):
        netns.create(ns)
    try:
        appliers = {raw: NftApplier(raw, table=SERVICE_TABLE, raw_sync=True), lib: NftApplier(lib, table=SERVICE_TABLE,
                                                                              raw_elements=False)}
        for step in (slices, slices[:1] + [slice_("dns-1", "dns", [ep("10.244.1.6")], port=53, port_name="dns",
                                                   protocol="UDP")]):
            table = render(plan(services, step, "n1"), ctx)
            for a in appliers.values():
                a.sync(table)
            assert _listing(raw) == _listing(lib)
            assert (appliers[raw].last_path, appliers[lib].last_path) == ("netlink", "libnftables")
        assert appliers[raw].last_plan is not None and not appliers[raw].last_plan.full
    finally:
        for ns in (raw, lib):
            netns.remove(ns)
