"""SCENARIOS S6 as the seeds do it, through the CLI on a 4-node BGP cluster: node-to-node
mesh, then the route-reflector recipe step by step with the seeds' own manifests; sessions
drop from N(N-1)/2 to N-1, and busybox pods on every node keep reaching each other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]

BGP_CONFIG = """\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: false
  asNumber: 64512
"""

RR_NODE = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  labels:
    kubernetes.io/hostname: k8s-node01
    route-reflector: "true"
  name: k8s-node01
spec:
  bgp:
    ipv4Address: 192.168.10.72/24
    routeReflectorClusterID: 244.0.0.1
"""

PEER = """\
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
"""


@pytest.fixture
def cli(tmp_path, prefix):
    sd = str(tmp_path / "state")

    def podnet(*args: str, stdin: str | None = None) -> str:
        res = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, *args],
                             capture_output=True, text=True, timeout=60, input=stdin)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    yield podnet, sd, prefix
    subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, "down"], capture_output=True)


def peer_lines(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| 192.")]


def wait_status(podnet, node: str, check, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = podnet("node", "status", node)
        if check(out):
            return out
        assert time.monotonic() < deadline, out
        time.sleep(0.2)


def apply(podnet, text: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return podnet("apply", "-f", f.name)
    finally:
        os.unlink(f.name)


def test_s6_mesh_to_route_reflector(cli):
    podnet, sd, prefix = cli
    n = 4
    podnet("up", "--nodes", str(n), "--backend", "bgp", "--prefix", prefix,
           "--store", os.environ.get("PODNET_TEST_STORE", "sqlite"))
    with open(os.path.join(sd, "cluster.json")) as f:
        topo = json.load(f)["topology"]
    # one busybox pod per node, placed by nodeName, run by the node agents
    docs = [f"""apiVersion: v1
kind: Pod
metadata: {{name: bs{i}, namespace: default, labels: {{run: bs{i}}}}}
spec:
  nodeName: {node["name"]}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""" for i, node in enumerate(topo["nodes"])]
    apply(podnet, "---\n".join(docs))
    deadline = time.monotonic() + 30
    while True:
        items = json.loads(podnet("get", "pods", "-o", "json"))["items"]
        ips = {p["metadata"]["name"]: (p.get("status") or {}).get("podIP") for p in items}
        if len(ips) == n and all(ips.values()):
            break
        assert time.monotonic() < deadline, items
        time.sleep(0.2)
    pods = [(f"bs{i}", ips[f"bs{i}"]) for i in range(n)]

    def ping(pod: str, ip: str) -> bool:
        res = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, "exec", pod, "--",
                              "ping", "-c1", "-W2", ip], capture_output=True, text=True, timeout=30)
        return res.returncode == 0

    mesh = wait_status(podnet, "k8s-master01", lambda o: o.count("Established") == n - 1)
    assert {row[1] for row in peer_lines(mesh)} == {"node-to-node mesh"}
    for a, _ in pods:
        for _, ip in pods:
            assert ping(a, ip), f"{a} -> {ip}"

    # 1. mesh off
    apply(podnet, BGP_CONFIG)
    wait_status(podnet, "k8s-node02", lambda o: "No IPv4 peers found." in o)
    # 2. label the reflector node; 3. its routeReflectorClusterID; 4. the BGPPeer
    podnet("label", "node", "k8s-node01", "route-reflector=true")
    apply(podnet, RR_NODE)
    apply(podnet, PEER)
    rr = wait_status(podnet, "k8s-node01", lambda o: o.count("Established") == n - 1)
    assert {row[1] for row in peer_lines(rr)} == {"node specific"}
    total = 0
    for node in topo["nodes"]:
        out = wait_status(podnet, node["name"], lambda o: "Established" in o)
        rows = peer_lines(out)
        total += len(rows)
        if node["name"] != "k8s-node01":
            assert [(r[0], r[1], r[4]) for r in rows] == [("192.168.10.72", "node specific", "Established")]
    assert total // 2 == n - 1  # each session seen from both ends
    deadline = time.monotonic() + 10
    for a, _ in pods:
        for _, ip in pods:
            while not ping(a, ip):
                assert time.monotonic() < deadline, f"{a} -> {ip}"
