"""Every routing backend on a real 3-node lab: pod<->pod on one node and across nodes,
node<->pod, HTTP, natOutgoing, drift repair, idempotent restart, and the l3 underlay where
host-gw refuses with a visible reason while vxlan and bgp+CrossSubnet work.

Each lab lives in namespaces with a unique prefix and is always removed (``make_lab``, with the
root namespace's links, routes and nft tables unchanged); the leak check follows every test."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from podnet.cluster.lab import Lab
from podnet.kernel import netns
from podnet.kernel.underlay import ipr_in

pytestmark = pytest.mark.kernel


def wait_bird_routes(lab: Lab, expected: int | dict[str, int], timeout: float = 15) -> None:
    """Until every node has the expected number of unicast ``proto bird`` routes."""
    if isinstance(expected, int):
        expected = {n.name: expected for n in lab.topo.nodes}
    deadline = time.monotonic() + timeout
    while True:
        counts = {}
        for n in lab.topo.nodes:
            with ipr_in(n.netns) as ipr:
                counts[n.name] = sum(1 for r in ipr.get_routes(family=socket.AF_INET, proto=12) if r["type"] == 1)
        if counts == expected:
            return
        assert time.monotonic() < deadline, f"BGP did not converge: {counts}"
        time.sleep(0.1)


def ping_matrix(lab: Lab, pods: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    return {(a, ip): lab.ping(a, ip) for a, _ in pods for b, ip in pods if a != b}


def http_server(ns: str, ip: str, port: int = 8080) -> subprocess.Popen:
    proc = netns.popen_in(ns, ["/usr/bin/python3", "-m", "http.server", "--bind", ip, str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd="/tmp")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with netns.enter(ns):
            sock = socket.socket()
        try:
            sock.settimeout(1)
            sock.connect((ip, port))
            return proc
        except OSError:
            time.sleep(0.05)
        finally:
            sock.close()
    proc.kill()
    raise AssertionError("http server did not start")


def fetch(lab: Lab, ns: str, url: str) -> bool:
    code = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()"
    return lab.run(ns, "/usr/bin/python3", "-I", "-S", "-c", code, url).returncode == 0


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


@pytest.mark.parametrize("backend", ["host-gw", "vxlan", "bgp"])
def test_backend_on_l2(make_lab, backend):
    lab = make_lab(3, "l2", backend)
    pods = [lab.add_pod(n.name) for n in lab.topo.nodes for _ in range(2)]
    statuses = lab.reconcile()
    assert all(s.errors == [] and s.refusals == [] for s in statuses.values()), statuses
    master = lab.node_ns("k8s-master01")
    if backend == "bgp":
        wait_bird_routes(lab, 2)
        routes = lab.run(master, "ip", "route").stdout
        assert routes.count("proto bird") == 3  # two learned /26 blocks + own blackhole
        assert "blackhole 10.244.0.0/26 proto bird" in routes
    if backend == "vxlan":
        fdb = lab.run(master, "bridge", "fdb", "show", "dev", "flannel.1").stdout
        assert fdb.count("self permanent") == 2 and "dst 192.168.10.72" in fdb
        neigh = lab.run(master, "ip", "neigh", "show", "dev", "flannel.1").stdout
        assert neigh.count("PERMANENT") == 2 and "10.244.1.0 lladdr" in neigh
        assert "10.244.1.0/24 via 10.244.1.0 dev flannel.1" in lab.run(master, "ip", "route").stdout
        assert "mtu 1450" in lab.run(master, "ip", "link", "show", "flannel.1").stdout
        with open(os.path.join(lab.run_dir("k8s-master01"), "subnet.env")) as f:
            assert f.read() == ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\n"
                                "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    if backend == "host-gw":
        assert "10.244.1.0/24 via 192.168.10.72 dev eth0 proto 81" in lab.run(master, "ip", "route").stdout

    matrix = ping_matrix(lab, pods)
    assert all(matrix.values()), [k for k, ok in matrix.items() if not ok]
    # node <-> pod, across nodes and on the same node
    for n in lab.topo.nodes:
        assert all(lab.ping(n.netns, ip) for _, ip in pods)
    assert lab.ping(pods[5][0], lab.topo.nodes[0].address)

    # HTTP across nodes, and pod-to-pod is never masqueraded: the server sees the pod address
    web_ns, web_ip = pods[4]
    srv = http_server(web_ns, web_ip)
    try:
        assert fetch(lab, pods[0][0], f"http://{web_ip}:8080/")
        assert fetch(lab, pods[5][0], f"http://{web_ip}:8080/")
        assert fetch(lab, master, f"http://{web_ip}:8080/")
    finally:
        log = stop(srv)
    assert f"{pods[0][1]} - -" in log and f"{pods[5][1]} - -" in log

    # natOutgoing: the external host sees the node's address, never the pod's
    ext = lab.topo.externals[0]
    srv = http_server(ext.netns, ext.address)
    try:
        assert fetch(lab, pods[2][0], f"http://{ext.address}:8080/")
    finally:
        log = stop(srv)
    assert "192.168.10.72 - -" in log and pods[2][1] not in log

    # A restarted reconciler adopts what is there: nothing to change, nothing duplicated.
    again = lab.reconcile()
    assert all(s.changes == [] and s.errors == [] for s in again.values()), again


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_drift_is_repaired(make_lab, backend):
    lab = make_lab(2, "l2", backend)
    pod_a = lab.add_pod("k8s-master01")
    pod_b = lab.add_pod("k8s-node01")
    lab.reconcile()
    master = lab.node_ns("k8s-master01")
    assert lab.ping(pod_a[0], pod_b[1])
    subprocess.run(["ip", "-n", master, "route", "del", "10.244.1.0/24"], check=True)
    if backend == "vxlan":
        subprocess.run(netns.nsenter_argv(master, ["bridge", "fdb", "flush", "dev", "flannel.1"]), check=True)
        subprocess.run(["ip", "-n", master, "neigh", "flush", "dev", "flannel.1", "nud", "permanent"], check=True)
    assert not lab.ping(pod_a[0], pod_b[1], wait=0.5)
    st = lab.reconcile(["k8s-master01"])["k8s-master01"]
    assert any(c.startswith("route +10.244.1.0/24") for c in st.changes)
    assert lab.ping(pod_a[0], pod_b[1])


def test_l3_host_gw_refuses_cross_subnet_with_reason(make_lab):
    lab = make_lab(3, "l3", "host-gw")
    pods = [lab.add_pod(n.name) for n in lab.topo.nodes]
    st = lab.reconcile()["k8s-master01"]
    assert len(st.refusals) == 1
    assert "k8s-node02 (192.168.20.71) is not on this node's L2 segment 192.168.10.0/24" in st.refusals[0]
    with open(os.path.join(lab.run_dir("k8s-master01"), "routing-status.json")) as f:
        assert json.load(f)["refusals"] == st.refusals
    assert lab.ping(pods[0][0], pods[1][1])  # same segment still works
    assert not lab.ping(pods[0][0], pods[2][1], wait=0.5)


@pytest.mark.parametrize("backend,mode", [("vxlan", "Never"), ("bgp", "CrossSubnet")])
def test_l3_encapsulating_backends_cross_the_router(make_lab, backend, mode):
    lab = make_lab(3, "l3", backend, vxlan_mode=mode)
    pods = [lab.add_pod(n.name) for n in lab.topo.nodes for _ in range(2)]
    statuses = lab.reconcile()
    assert all(s.errors == [] and s.refusals == [] for s in statuses.values()), statuses
    if backend == "bgp":
        wait_bird_routes(lab, {"k8s-master01": 1, "k8s-node01": 1, "k8s-node02": 0})  # node02: VXLAN only
        routes = lab.run(lab.node_ns("k8s-master01"), "ip", "route").stdout
        assert "10.244.0.128/26 via 10.244.0.128 dev vxlan.calico proto 81 onlink" in routes
        assert "10.244.0.64/26 via 192.168.10.72 dev eth0 proto bird" in routes
    matrix = ping_matrix(lab, pods)
    assert all(matrix.values()), [k for k, ok in matrix.items() if not ok]
