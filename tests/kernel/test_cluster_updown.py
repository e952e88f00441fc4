"""`podnet up` / `down` end to end through the CLI: nodes registered with underlay addresses,
BGP Established everywhere, `node status` and `node exec` as in the seeds, routing follows a
store change (IPPool vxlanMode), a routing process killed with -9 and restarted duplicates
nothing, and `down` leaves the root namespace exactly as it was."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from podnet.kernel import netns

pytestmark = pytest.mark.kernel


@pytest.fixture
def cluster(tmp_path, prefix, root_unchanged):
    sd = str(tmp_path / "state")

    def podnet(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, *args],
                             capture_output=True, text=True, timeout=timeout)
        if check:
            assert res.returncode == 0, res.stdout + res.stderr
        return res

    yield podnet, sd, prefix
    podnet("down", check=False)
    assert not os.path.exists(os.path.join(sd, "store.db"))


def test_up_status_change_restart_down(cluster):
    podnet, sd, prefix = cluster
    res = podnet("up", "--nodes", "3", "--backend", "bgp", "--prefix", prefix)
    assert "cluster up: 3 nodes (k8s-master01, k8s-node01, k8s-node02), backend bgp" in res.stdout
    assert res.stderr == ""  # progress is for terminals: a pipe gets only the result

    nodes = json.loads(podnet("get", "nodes", "-o", "json").stdout)
    items = nodes.get("items", nodes if isinstance(nodes, list) else [])
    addrs = {i["metadata"]["name"]: i["status"]["addresses"][0]["address"] for i in items}
    assert addrs == {"k8s-master01": "192.168.10.71", "k8s-node01": "192.168.10.72", "k8s-node02": "192.168.10.73"}

    out = podnet("node", "status", "k8s-master01").stdout
    assert "Calico process is running." in out
    assert "| 192.168.10.72 | node-to-node mesh | up    |" in out and out.count("Established") == 2

    routes = podnet("node", "exec", "k8s-master01", "--", "ip", "route").stdout
    assert "blackhole 10.244.0.0/26 proto bird" in routes
    assert "10.244.0.64/26 via 192.168.10.72 dev eth0 proto bird" in routes
    protos = podnet("node", "exec", "k8s-node01", "--", "birdc", "show", "protocols").stdout
    assert "Mesh_192_168_10_71" in protos
    for node in ("k8s-master01", "k8s-node01", "k8s-node02"):  # up wrote BIRD's configuration before
        # the routing loops started, and each loop's first pass rendered the very same text
        with open(os.path.join(sd, "nodes", node, "routing-status.json")) as f:
            assert json.load(f)["bird"] == "unchanged", node

    status = podnet("status").stdout
    assert status.count("Ready") == 3 and "192.168.94.134" in status

    # A store change reaches every node: vxlanMode Always moves the blocks onto vxlan.calico.
    pool = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    pool.write("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: default-ipv4-ippool\n"
               "spec:\n  cidr: 10.244.0.0/16\n  blockSize: 26\n  vxlanMode: Always\n  natOutgoing: true\n")
    pool.close()
    podnet("apply", "-f", pool.name)
    os.unlink(pool.name)
    deadline = time.monotonic() + 10
    while "dev vxlan.calico" not in podnet("node", "exec", "k8s-master01", "--", "ip", "route").stdout:
        assert time.monotonic() < deadline, "routing did not follow the IPPool change"
        time.sleep(0.1)
    fdb = podnet("node", "exec", "k8s-master01", "--", "bridge", "fdb", "show", "dev", "vxlan.calico").stdout
    assert fdb.count("self permanent") == 2

    # kill -9 a routing process; its supervisor starts a new one, which adopts the kernel state:
    # no change, nothing duplicated.
    pid = service_pid(sd, "k8s-node01", "routing")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while service_pid(sd, "k8s-node01", "routing") in (pid, None):
        assert time.monotonic() < deadline, "the supervisor did not restart the routing loop"
        time.sleep(0.05)
    assert "routing:" in podnet("status").stdout and "1 restart, last exit killed by SIGKILL" in podnet("status").stdout
    before = podnet("node", "exec", "k8s-node01", "--", "ip", "route").stdout
    ns = f"{prefix}k8s-node01"
    again = netns.run_in(ns, [sys.executable, "-c",
                              "import json, sys; from podnet.agent.routing import RoutingReconciler; "
                              "from podnet.store.open import open_store; "
                              f"r = RoutingReconciler('k8s-node01', 'bgp', {sd!r}); "
                              f"s = r.reconcile(open_store({sd!r}, bootstrap=False).snapshot()); "
                              "print(json.dumps([s.changes, s.errors, s.bird]))"])
    changes, errors, bird = json.loads(again.stdout)
    assert (changes, errors, bird) == ([], [], "unchanged"), again.stderr
    assert podnet("node", "exec", "k8s-node01", "--", "ip", "route").stdout == before

    res = podnet("down")
    assert "cluster down" in res.stdout
    assert podnet("down").stdout.strip() == "no cluster is running"


def test_l3_host_gw_reason_in_node_status(cluster):
    podnet, sd, prefix = cluster
    podnet("up", "--nodes", "3", "--underlay", "l3", "--backend", "host-gw", "--prefix", prefix)
    out = podnet("node", "status", "k8s-master01").stdout
    assert "10.244.1.0/24 via 192.168.10.72 dev eth0" in out
    assert ("unreachable: host-gw: node k8s-node02 (192.168.20.71) is not on this node's L2 segment "
            "192.168.10.0/24") in out
    assert "2 unreachable blocks" in podnet("status").stdout


def test_down_stops_the_pods_of_an_agent_that_died(cluster):
    """An agent killed with -9 never tears its pods down: `down` finds them in the agent's
    records and stops their processes and removes their namespaces before it drops them."""
    podnet, sd, prefix = cluster
    podnet("up", "--nodes", "1", "--backend", "host-gw", "--prefix", prefix)
    spec = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    spec.write("apiVersion: v1\nkind: Pod\nmetadata: {name: orphan}\n"
               "spec:\n  containers: [{name: c, image: busybox, command: [sleep, '36000']}]\n")
    spec.close()
    podnet("apply", "-f", spec.name)
    os.unlink(spec.name)
    record = os.path.join(sd, "nodes", "k8s-master01", "pods", "default_orphan", "pod.json")
    deadline = time.monotonic() + 20
    while '"Running"' not in (open(record).read() if os.path.exists(record) else ""):
        assert time.monotonic() < deadline, "pod did not start"
        time.sleep(0.1)
    with open(record) as f:
        pod = json.load(f)
    pod_ns, pid = pod["netns"], pod["containers"][0]["pid"]
    try:
        # The node's supervisor killed with -9 takes its services along (SIGKILL: no teardown).
        with open(os.path.join(sd, "cluster.json")) as f:
            sup = next(p for p in json.load(f)["processes"] if p["name"] == "supervisor/k8s-master01")
        agent = service_pid(sd, "k8s-master01", "agent")
        os.kill(sup["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while agent is not None and _running(agent):
            assert time.monotonic() < deadline, "the agent outlived its supervisor"
            time.sleep(0.02)
        podnet("down")
        assert not netns.exists(pod_ns), "the dead agent's pod namespace was left behind"
        assert not _running(pid), "the dead agent's container was left running"
    finally:  # whatever the outcome, nothing of this test stays
        if _running(pid):
            os.killpg(pid, signal.SIGKILL)
        if netns.exists(pod_ns):
            netns.remove(pod_ns)


def service_pid(sd: str, node: str, service: str) -> int | None:
    """The PID of a node's service, as its supervisor reports it."""
    try:
        with open(os.path.join(sd, "nodes", node, "supervisor.json")) as f:
            return json.load(f)["services"][service]["pid"]
    except (OSError, ValueError, KeyError):
        return None


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
