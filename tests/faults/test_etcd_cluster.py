"""A three-node cluster on a three-member etcd cluster with TLS (`podnet up --store etcd`),
every node on its own state directory, under faults — the bounded form of bench/faults.py:

- S1 gives the same results as on the embedded store (0 probe disagreements);
- a hostile pod finds every way out closed: its node's ports, the store, pods of other
  namespaces, spoofed sources, a changed address of its own;
- node processes SIGKILLed at random points of a churn of pods and policies: afterwards 0
  disagreements, 0 duplicate or leaked addresses, veths, namespaces or pod records;
- a TCP flow between pods on two nodes keeps flowing every second while the agent, routing
  loop and policy loop of both nodes are SIGKILLed;
- BIRD killed: routes come back;
- every etcd member paused (no answer, no reset): nodes keep their policy and routes, CNI ADD
  fails fast with a clear error, and after the heal a new policy is enforced within seconds;
- one node cut off from etcd on the underlay: it keeps enforcing, turns NotReady after the
  grace period and Ready again after the heal;
- a node removed: its peers drop its routes.
"""
from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator

import pytest

from podnet.agent.cnicall import CniCallFailed, CniRuntime
from podnet.cluster.datastore import etcd_cluster, node_state_dir
from podnet.kernel import netns
from podnet.kernel.probe import REACHED, probe
from podnet.testing import faultkit
from podnet.testing.cli_cluster import EX, Cluster, connect
from podnet.testing.cluster_audit import audit
from podnet.testing.leaks import Prefixes
from podnet.testing.tcp_flow import TcpFlow

pytestmark = pytest.mark.kernel

KILLS = 6  # bench/faults.py does 100
WORKER = "k8s-node01"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("etcd-lab")), prefixes.new())
    try:
        c.cli("up", "--nodes", "3", "--store", "etcd", "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


Targets = list[tuple[str, str, str, str]]  # (src pod, its netns, dst pod, dst IP)


def targets(cluster: Cluster) -> Targets:
    """Every pair of default pods, read from the store once (probing them later needs no store)."""
    pods = cluster.pods()
    return [(src, cluster.pod_netns(src), dst, p["status"]["podIP"])
            for src in pods for dst, p in pods.items() if src != dst]


def s1_matrix(cluster: Cluster, pairs: Targets | None = None) -> dict[tuple[str, str], bool]:
    """Reachability of port 80 between the default pods, by real connections."""
    return {(src, dst): probe(ns, ip, 80, "TCP", 0.5)[0] in REACHED
            for src, ns, dst, ip in (pairs if pairs is not None else targets(cluster))}


def test_s1_on_etcd_gives_the_embedded_stores_results(cluster: Cluster) -> None:
    cluster.apply_text((EX / "s1" / "web.yaml").read_text() + "\n---\n" + (EX / "s1" / "clients.yaml").read_text())
    cluster.ready()
    cluster.cli("apply", "-f", str(EX / "s1" / "pod_policy.yaml"))
    cluster.enforced()
    web = next(n for n in cluster.pods() if n.startswith("web-"))
    m = s1_matrix(cluster)
    assert m[("client1", web)] and not m[("client2", web)]
    cluster.verify("-n", "default", "--ports", "80", "--protocols", "TCP,ICMP")
    # every node process talks to etcd over the underlay, from its own state directory
    for n in cluster.nodes():
        sd = node_state_dir(cluster.sd, n["name"])
        assert sd != cluster.sd and "192.168.10.11:2379" in open(os.path.join(sd, "store.json")).read()
        assert not os.path.exists(os.path.join(sd, "store.db"))


def test_a_hostile_pod_finds_every_way_out_closed(cluster: Cluster) -> None:
    pods = cluster.pods()
    web = next(n for n in pods if n.startswith("web-"))
    web_ip, client1_ip = pods[web]["status"]["podIP"], pods["client1"]["status"]["podIP"]
    node = pods["client1"]["spec"]["nodeName"]
    cluster.apply_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: hostile, namespace: default, labels: {{run: hostile}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""")
    cluster.ready()
    cluster.enforced()
    hostile = cluster.pod_netns("hostile")
    hostile_ip = cluster.pods()["hostile"]["status"]["podIP"]
    node_ip = cluster.node_address(node)

    # 1. its node's ports: BIRD listens on 179 (the node itself connects), the pod cannot
    assert connect(cluster.node_ns(node), node_ip, 179) == "connected"
    assert connect(hostile, node_ip, 179) == "timeout"
    assert connect(hostile, node_ip, 22) == "timeout"  # dropped, not even refused
    # 2. the store: etcd answers only clients with the cluster's certificate
    assert connect(hostile, "192.168.10.11", 2379) == "connected"  # reachable, but...
    store_try = netns.run_in(hostile, ["python3", "-c", (
        "import ssl, socket, sys\n"
        "ctx = ssl._create_unverified_context()\n"
        "s = ctx.wrap_socket(socket.create_connection(('192.168.10.11', 2379), timeout=3))\n"
        "s.sendall(b'POST /v3/kv/range HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 12\\r\\n\\r\\n{\"key\":\"AA==\"}')\n"
        "print(s.recv(200))\n")], timeout=15)
    assert store_try.returncode != 0 and "certificate" in store_try.stderr.lower(), store_try.stdout + store_try.stderr
    # 3. pods of other namespaces and pods it is not allowed to: web admits client1 only
    assert connect(hostile, web_ip, 80) == "timeout"
    assert connect(cluster.pod_netns("client1"), web_ip, 80) == "connected"
    # 4. a spoofed source: client1's address, which web would admit
    netns.run_in(hostile, ["ip", "addr", "add", f"{client1_ip}/32", "dev", "eth0"], check=True)
    try:
        assert connect(hostile, web_ip, 80, source=client1_ip) == "timeout"
        assert connect(hostile, node_ip, 179, source=client1_ip) == "timeout"
    finally:
        netns.run_in(hostile, ["ip", "addr", "del", f"{client1_ip}/32", "dev", "eth0"], check=True)
    # 5. its own address changed to another one
    netns.run_in(hostile, ["ip", "addr", "del", f"{hostile_ip}/32", "dev", "eth0"], check=True)
    netns.run_in(hostile, ["ip", "addr", "add", f"{client1_ip}/32", "dev", "eth0"], check=True)
    netns.run_in(hostile, ["ip", "route", "replace", "default", "via", "169.254.1.1", "dev", "eth0", "onlink"])
    try:
        assert connect(hostile, web_ip, 80) == "timeout"
        assert connect(hostile, node_ip, 179) == "timeout"
    finally:
        netns.run_in(hostile, ["ip", "addr", "del", f"{client1_ip}/32", "dev", "eth0"])
        netns.run_in(hostile, ["ip", "addr", "add", f"{hostile_ip}/32", "dev", "eth0"], check=True)
        netns.run_in(hostile, ["ip", "route", "replace", "default", "via", "169.254.1.1", "dev", "eth0", "onlink"])
    cluster.cli("delete", "pod", "hostile")


def test_node_processes_killed_during_churn_leave_nothing_behind(cluster: Cluster) -> None:
    rng = random.Random(14)
    for i in range(KILLS):
        cluster.churn_and_kill(i, rng)
        if i % 2 == 1:
            cluster.cli("delete", "pod", f"churn{i - 1}")
    cluster.ready(timeout="120s")
    cluster.enforced()
    cluster.verify("-n", "default", "--ports", "80", "--protocols", "TCP")
    deadline = time.monotonic() + 30
    while not (result := audit(cluster.sd)).clean:
        assert time.monotonic() < deadline, result.to_dict()
        time.sleep(0.5)
    status = cluster.cli("status").stdout
    assert "restart" in status and "killed by SIGKILL" in status


def test_a_running_flow_sees_no_zero_second_while_node_processes_are_killed(cluster: Cluster) -> None:
    peer = "k8s-master01"
    cluster.apply_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: flow-src, namespace: default, labels: {{run: flow}}}}
spec:
  nodeName: {WORKER}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: flow-dst, namespace: default, labels: {{run: flow}}}}
spec:
  nodeName: {peer}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""")
    cluster.cli("wait", "pods", "flow-src", "flow-dst", "--for", "condition=Ready", "--timeout", "90s")
    pods = cluster.pods()
    rng = random.Random(9)
    kills = 0
    with TcpFlow(cluster.pod_netns("flow-src"), cluster.pod_netns("flow-dst"), pods["flow-dst"]["status"]["podIP"],
                 rate=2_000_000) as flow:
        flow.settle(2)
        for _ in range(8):  # bench/faults_converge.py does 100
            pid = cluster.service_pid(rng.choice((WORKER, peer)), rng.choice(("agent", "policy", "routing")))
            if pid:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            time.sleep(rng.uniform(0.4, 1.0))
        flow.settle(2)
    assert kills >= 6
    assert len(flow.result.per_second) >= 6, flow.result
    assert flow.result.zero_seconds == 0, f"seconds without a byte: {flow.result.per_second}"
    cluster.cli("delete", "pod", "flow-src", "flow-dst")


def test_bird_killed_routes_come_back(cluster: Cluster) -> None:
    ns = cluster.node_ns(WORKER)
    before = sorted(line for line in netns.run_in(ns, ["ip", "route"]).stdout.splitlines() if "proto bird" in line)
    assert before
    pid = cluster.service_pid(WORKER, "bird")
    assert pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = sorted(line for line in netns.run_in(ns, ["ip", "route"]).stdout.splitlines() if "proto bird" in line)
        if now == before and cluster.service_pid(WORKER, "bird") not in (None, pid):
            break
        assert time.monotonic() < deadline, f"routes did not come back: {now} (was {before})"
        time.sleep(0.2)


def test_etcd_unreachable_nodes_fail_static_and_converge_after(cluster: Cluster, tmp_path: object) -> None:
    etcd = etcd_cluster(cluster.state())
    assert etcd is not None
    pairs = targets(cluster)
    before = s1_matrix(cluster, pairs)
    for m in etcd.members:
        etcd.kill(m.name, signal.SIGSTOP)  # no answer and no reset: the hardest way to be gone
    paused = time.monotonic()
    try:
        node_sd = node_state_dir(cluster.sd, WORKER)
        run_dir = os.path.join(node_sd, "nodes", WORKER)
        import json

        with open(os.path.join(run_dir, "cni", "net.d", "10-podnet.conflist")) as f:
            conflist = json.load(f)
        runtime = CniRuntime(conflist, bin_dirs=(os.path.join(run_dir, "cni", "bin"),),
                             netns_exec=netns.nsenter_argv(cluster.node_ns(WORKER), [])[:-1])
        pod_ns = f"{cluster.prefix}cni-outage"
        netns.create(pod_ns)
        try:
            t0 = time.monotonic()
            with pytest.raises(CniCallFailed) as info:
                runtime.call("ADD", "outage-1", netns.path(pod_ns), "eth0", timeout=30)
            assert time.monotonic() - t0 < 10, "CNI ADD must fail fast, not hang"
            assert "etcd is unreachable" in str(info.value)
        finally:
            netns.remove(pod_ns)
        while time.monotonic() - paused < 10:  # bench/faults.py holds it for 60 s
            assert s1_matrix(cluster, pairs) == before, "a node changed its policy while etcd was unreachable"
            time.sleep(1)
    finally:
        for m in etcd.members:
            etcd.kill(m.name, signal.SIGCONT)
    healed = time.monotonic()
    cluster.apply_text("""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: after-heal, namespace: default}
spec:
  podSelector: {matchLabels: {run: client1}}
  policyTypes: [Ingress]
""")
    cluster.enforced(timeout=30)
    converged = time.monotonic() - healed
    after = s1_matrix(cluster)
    assert not after[("client2", "client1")] and before[("client2", "client1")]
    assert converged < 15, f"converged {converged:.1f} s after the heal"
    cluster.cli("delete", "netpol", "after-heal")


def test_a_node_cut_off_from_etcd_keeps_enforcing_and_turns_not_ready(cluster: Cluster) -> None:
    ns = cluster.node_ns(WORKER)
    pairs = targets(cluster)
    before = s1_matrix(cluster, pairs)
    faultkit.blackhole(ns, ["192.168.10.11", "192.168.10.12", "192.168.10.13"], 2379)
    try:
        deadline = time.monotonic() + 40
        while "NotReady" not in _node_row(cluster, WORKER):
            assert time.monotonic() < deadline, "the cut-off node never turned NotReady"
            time.sleep(0.5)
        assert s1_matrix(cluster, pairs) == before
    finally:
        faultkit.heal(ns)
    deadline = time.monotonic() + 40
    while " Ready " not in _node_row(cluster, WORKER) + " ":
        assert time.monotonic() < deadline, "the node did not come back Ready after the heal"
        time.sleep(0.5)


def _node_row(cluster: Cluster, node: str) -> str:
    return next(line for line in cluster.cli("get", "nodes").stdout.splitlines() if line.startswith(node)) + " "


def test_a_removed_node_is_dropped_by_its_peers(cluster: Cluster) -> None:
    gone = "k8s-node02"
    master = cluster.node_ns("k8s-master01")
    via = f"via {cluster.node_address(gone)}"
    assert via in netns.run_in(master, ["ip", "route"]).stdout
    cluster.cli("delete", "node", gone)
    cluster.cli("delete", "caliconode", gone, check=False)
    deadline = time.monotonic() + 30
    while via in netns.run_in(master, ["ip", "route"]).stdout:
        assert time.monotonic() < deadline, "the peers kept the removed node's routes"
        time.sleep(0.2)
