"""SCENARIOS S7 (seeds/004) on a 3-node cluster, for every backend, through the CLI with every
node's `podnet proxy` programming the kernel: a Deployment of 3 nginx replicas behind a
ClusterIP Service answers a client pod from every replica; the same pods through a NodePort
answer the external host on every node's address; a LoadBalancer address and an externalIP are
DNATed on the node; a headless Service gets no rules; a Service without endpoints is refused at
once; scaled to 0 the Service refuses, scaled back it answers from the new replicas. On one
backend the proxy is SIGKILLed and restarted under traffic: no request fails, and the restarted
proxy finds the table as it should be and changes nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from podnet.testing.leaks import Prefixes
from podnet.testing.service_lab import http_get

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: nginx, image: nginx, ports: [{containerPort: 80}]}
"""

SERVICES = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {run: client}}
spec:
  containers:
  - {name: client, image: busybox, command: ["sleep", "36000"]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
  externalIPs: [192.168.77.7]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80, nodePort: 30080}]
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: lb-pool}
spec: {cidr: 192.168.78.0/26, allowedUses: [LoadBalancer], nodeSelector: all()}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: nothing, namespace: default}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
"""


class Cluster:
    def __init__(self, state_dir: str, prefix: str) -> None:
        self.sd = state_dir
        self.prefix = prefix

    def cli(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([PODNET, "--state-dir", self.sd, *args], capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT, input=stdin)
        if check and res.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def apply(self, text: str) -> None:
        self.cli("apply", "-f", "-", stdin=text)

    def status(self) -> dict[str, Any]:
        from podnet.cluster.lifecycle import status

        return status(self.sd)

    def read(self, fn: Callable[[Any], T]) -> T:
        """``fn`` of the cluster's store, opened for it and closed again."""
        from podnet.store.open import open_store

        store = open_store(self.sd, bootstrap=False)
        try:
            return fn(store)
        finally:
            store.close()

    def synced(self, timeout: float = 20.0) -> None:
        """Every node's proxy has programmed the store's current revision."""
        from podnet.agent.proxy import read_status

        want = self.read(lambda store: store.revision())
        nodes = [n["name"] for n in self.status()["nodes"]]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = [read_status(self.sd, n) for n in nodes]
            if all(s and s["revision"] >= want and not s.get("error") for s in st):
                return
            time.sleep(0.05)
        raise AssertionError(f"proxies not synced at revision {want}: {st}")

    def settled(self, replicas: int) -> None:
        """The Deployment has ``replicas`` ready pods and no terminating one, the slices say so and
        the proxies programmed it."""
        from podnet.model import EndpointSlice

        self.cli("wait", "pods", "--all", "--for", "condition=Ready", "--timeout", "60s")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            slices = self.read(lambda store: [s for s in store.list(EndpointSlice) if s.service_name == "web"])
            endpoints = [e for s in slices for e in s.endpoints]
            if sum(1 for e in endpoints if e.conditions.ready) == replicas == len(endpoints):
                break  # no terminating pod left either
            time.sleep(0.1)
        self.synced()

    def pod_netns(self, name: str) -> str:
        from podnet.agent.pods import pod_netns_name
        from podnet.model import Pod

        pod = self.read(lambda store: store.get(Pod, name, "default"))
        assert pod is not None and pod.spec.node_name
        return pod_netns_name(pod.spec.node_name, "default", name, pod.metadata.uid or "")

    def service(self, name: str) -> Any:
        from podnet.model import Service

        svc = self.read(lambda store: store.get(Service, name, "default"))
        assert svc is not None
        return svc

    def web_pods(self) -> set[str]:
        from podnet.model import Pod

        return self.read(lambda store: {p.name for p in store.list(Pod)
                                        if p.labels.get("app") == "web" and p.status.pod_ip})


@pytest.fixture(params=["bgp", "vxlan", "host-gw"], scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp(f"s7-{request.param}")), prefixes.new())
    try:
        c.cli("up", "--nodes", "3", "--backend", request.param, "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def _state(cluster: Cluster) -> dict[str, Any]:
    from podnet.cluster.builder import read_state

    state = read_state(cluster.sd)
    assert state is not None
    return state


def _names(ns: str, ip: str, port: int, tries: int) -> list[str]:
    return [http_get(ns, ip, port) for _ in range(tries)]


def test_s7_services(cluster: Cluster) -> None:
    cluster.apply(APP.replace("REPLICAS", "3") + "---" + SERVICES)
    cluster.settled(3)
    client = cluster.pod_netns("client")
    replicas = cluster.web_pods()
    web = cluster.service("web")
    cip = web.spec.cluster_ip
    # ClusterIP: over repeated requests, every replica answers (3 of 3 within 30 tries: 1 - 3·(2/3)^30).
    assert set(_names(client, cip, 80, 30)) == replicas
    # externalIP and the LoadBalancer's address are DNATed on the node as well.
    assert http_get(client, "192.168.77.7", 80) in replicas
    lb = cluster.service("web-lb").ingress_addresses
    assert lb and http_get(client, lb[0], 8080) in replicas
    # NodePort from the external host, on every node's address.
    st = cluster.status()
    external = st["topology"].externals[0].netns
    for node in st["nodes"]:
        assert http_get(external, node["address"], 30080, 2.0) in replicas, node["name"]
    # Headless: no ClusterIP, no rules; no endpoints: refused at once.
    from podnet.dataplane.nft.services import SERVICE_TABLE
    from podnet.kernel.nft.apply import NftApplier

    table = NftApplier(st["nodes"][0]["netns"], table=SERVICE_TABLE).read()
    assert table is not None and not any("web-headless" in c for c in table.chains)
    t0 = time.monotonic()
    assert http_get(client, cluster.service("nothing").spec.cluster_ip, 80, 3.0) == "refused"
    assert time.monotonic() - t0 < 0.5
    # Scale to 0: refused at once; back to 3: the new replicas answer.
    cluster.apply(APP.replace("REPLICAS", "0"))
    cluster.settled(0)
    t0 = time.monotonic()
    assert http_get(client, cip, 80, 3.0) == "refused" and time.monotonic() - t0 < 0.5
    cluster.apply(APP.replace("REPLICAS", "3"))
    cluster.settled(3)
    again = cluster.web_pods()
    assert set(_names(client, cip, 80, 30)) == again


POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {run: client}}}]
    ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {run: other}}
spec:
  containers:
  - {name: other, image: busybox, command: ["sleep", "36000"]}
"""


def test_probe_verify_and_trace_through_a_service(cluster: Cluster) -> None:
    """Policy on the endpoints holds through the Service; probe/verify --service and explain
    --trace show it from the kernel."""
    import json

    if cluster.status()["backend"] != "bgp":
        pytest.skip("once is enough: the CLI does not depend on the backend")
    cluster.apply(POLICY)
    cluster.settled(3)
    from podnet.agent.policy import read_status

    want = cluster.read(lambda store: store.revision())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all((read_status(cluster.sd, n["name"]) or {}).get("revision", -1) >= want for n in cluster.status()["nodes"]):
            break
        time.sleep(0.05)
    attempts = json.loads(cluster.cli("probe", "--service", "svc/web", "--service", "svc/nothing", "-o", "json",
                                      "--timeout", "0.5").stdout)
    by = {(a["from"], a["service"]): a for a in attempts}
    assert by[("default/client", "default/web")]["outcome"] == "connected"
    assert by[("default/other", "default/web")]["outcome"] == "timeout"  # policy at the endpoint, after DNAT
    assert by[("default/other", "default/nothing")]["outcome"] == "refused"
    res = cluster.cli("verify", "--service", "svc/web", "--service", "svc/nothing", "--timeout", "0.5")
    assert "OK:" in res.stdout and "MISMATCH" not in res.stdout
    res = cluster.cli("explain", "--from", "default/client", "--to", "svc/web:80", "--trace")
    assert "ALLOWED" in res.stdout
    assert "connected" in res.stdout and "default/web:80 to 10.244." in res.stdout, res.stdout
    res = cluster.cli("explain", "--from", "default/other", "--to", "svc/web:80", "--trace")
    assert "timeout" in res.stdout and "default deny ingress" in res.stdout, res.stdout
    cluster.cli("delete", "networkpolicy", "web-from-client")
    cluster.cli("delete", "pod", "other")


def test_proxy_sigkill_and_restart_keep_the_table_and_the_traffic(cluster: Cluster) -> None:
    """SIGKILL the client's node proxy under traffic; its supervisor restarts it: nothing
    fails, and the new proxy adopts the table without a flush or a rewrite."""
    from podnet.agent.proxy import read_status
    from podnet.dataplane.nft.services import SERVICE_TABLE
    from podnet.kernel.nft.apply import NftApplier
    from podnet.model import Pod

    if cluster.status()["backend"] != "bgp":
        pytest.skip("once is enough: the proxy does not depend on the backend")
    cluster.settled(3)
    client_pod = cluster.read(lambda store: store.get(Pod, "client", "default"))
    assert client_pod is not None
    node = client_pod.spec.node_name

    def proxy_pid() -> int | None:
        row = next(n for n in cluster.status()["nodes"] if n["name"] == node)
        pid, running = row["processes"].get("proxy", (None, False))
        return pid if running else None

    pid = proxy_pid()
    assert pid is not None
    netns_name = next(n for n in cluster.status()["nodes"] if n["name"] == node)["netns"]
    client, cip = cluster.pod_netns("client"), cluster.service("web").spec.cluster_ip
    applier = NftApplier(netns_name, table=SERVICE_TABLE)
    before = applier.read()
    previous = read_status(cluster.sd, node)
    assert previous is not None
    os.kill(pid, signal.SIGKILL)
    replicas = cluster.web_pods()
    assert all(a in replicas for a in _names(client, cip, 80, 10)), "a request failed while the proxy was down"
    deadline = time.monotonic() + 15
    while proxy_pid() in (pid, None):
        assert time.monotonic() < deadline, "the supervisor did not restart the proxy"
        time.sleep(0.05)
    _restarted(cluster, node, previous, applier, before, client, cip, replicas)


def _restarted(cluster: Cluster, node: str, previous: dict[str, Any], applier: Any, before: Any, client: str,
               cip: str, replicas: set[str]) -> None:
    from podnet.agent.proxy import read_status

    answers: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answers.append(http_get(client, cip, 80))
        st = read_status(cluster.sd, node)
        if st and st["synced_at"] > previous["synced_at"]:
            break
    else:
        raise AssertionError("the restarted proxy did not report a pass")
    assert st["path"] == "none" and st["plan"]["commands"] == 0, st  # no flush, no rewrite
    assert applier.read() == before
    answers += _names(client, cip, 80, 10)
    assert all(a in replicas for a in answers), answers


HOST_PORTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hp, namespace: default}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: hp}}
  template:
    metadata: {labels: {app: hp}}
    spec:
      containers:
      - {name: nginx, image: nginx, ports: [{containerPort: 80, hostPort: 8088}]}
"""


def test_host_ports_through_the_cli(cluster: Cluster) -> None:
    """One replica per node answers on that node's address:8088 from the external host; the
    replica no node has a free port for stays Pending with kube-scheduler's event; scaled
    down, the forwards go with the pods."""
    from podnet.dataplane.nft.hostports import HOSTPORT_TABLE
    from podnet.kernel.nft.apply import NftApplier
    from podnet.model import Pod

    if cluster.status()["backend"] != "bgp":
        pytest.skip("once is enough: host ports do not depend on the backend")
    nodes = cluster.status()["nodes"]
    cluster.apply(HOST_PORTS.replace("REPLICAS", str(len(nodes) + 1)))

    def hp_pods() -> list[Pod]:
        return cluster.read(lambda store: [p for p in store.list(Pod) if p.labels.get("app") == "hp"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = hp_pods()
        running = {p.spec.node_name: p.name for p in pods if p.status.pod_ip and p.status.phase == "Running"}
        if len(pods) == len(nodes) + 1 and len(running) == len(nodes):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"host port pods did not settle: {[(p.name, p.spec.node_name) for p in hp_pods()]}")
    (pending,) = [p for p in hp_pods() if not p.spec.node_name]
    described = cluster.cli("describe", "pod", pending.name).stdout
    assert "FailedScheduling" in described, described
    assert (f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) didn't have free ports for the "
            "requested pod ports.") in described, described
    cluster.synced()
    external = cluster.status()["topology"].externals[0].netns
    for node in nodes:
        assert http_get(external, node["address"], 8088, 2.0) == running[node["name"]], node["name"]
    cluster.cli("delete", "deployment", "hp")
    deadline = time.monotonic() + 60
    while hp_pods() and time.monotonic() < deadline:
        time.sleep(0.2)
    cluster.synced()
    for node in nodes:
        assert NftApplier(node["netns"], table=HOSTPORT_TABLE).read() is None, node["name"]
        assert http_get(external, node["address"], 8088, 1.0) in ("refused", "timeout")
