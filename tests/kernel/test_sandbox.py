"""Pods are sandboxed like containers: a busybox pod run by `podnet agent` cannot write the
host's /tmp, see podnet's state or the host's processes, lacks CAP_NET_ADMIN unless its
securityContext adds it, has its pod name as hostname and the resolv.conf and /etc/hosts a
kubelet writes; `podnet exec` and exec probes run inside the same sandbox."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from podnet.model import Endpoints, Node
from podnet.pki import CLUSTER_CA_KEY, new_cluster_ca
from podnet.testing import leaks
from podnet.testing.cni_lab import make_node_ns
from podnet.workloads.podfiles import parse_resolv_conf

from test_pods import Cluster

pytestmark = pytest.mark.kernel
NODE_IP = "192.168.200.1"  # make_node_ns's address: where the API server listens

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: box, namespace: default}
spec:
  containers: [{name: c, image: busybox, command: [sh, -c, "echo $$$$ > /tmp/pid; sleep 36000"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: admin, namespace: default}
spec:
  hostname: netops
  subdomain: tools
  dnsPolicy: None
  automountServiceAccountToken: false
  dnsConfig: {nameservers: [127.0.0.1], searches: [corp.example], options: [{name: ndots, value: "2"}]}
  hostAliases: [{ip: 192.0.2.10, hostnames: [db.example]}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "36000"]
    securityContext: {capabilities: {add: [NET_ADMIN], drop: [CHOWN]}}
    readinessProbe: {exec: {command: [sh, -c, "test $(hostname) = netops && test -e /tmp/ready"]}, periodSeconds: 1}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: leaks.Prefixes) -> Iterator[Cluster]:
    prefix = prefixes.new()
    node, node_ns = f"{prefix}n1", f"{prefix}node"
    state = str(tmp_path_factory.mktemp("sandbox") / "state")
    os.makedirs(state)
    make_node_ns(node_ns)
    c = Cluster(state, node, node_ns)
    try:
        c.store.create(Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                                            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}))
        c.store.kv.create(CLUSTER_CA_KEY, new_cluster_ca().to_dict())  # what `podnet up` makes
        c.start("agent", "--node", node, "--resync", "0.3", ns=node_ns)
        c.start("controllers", "--resync", "0.3")
        c.start("apiserver", "--advertise-address", NODE_IP, ns=node_ns)
        c.apply(PODS)
        c.wait("box Running", lambda: c.running("box"), timeout=30)
        c.wait("apiserver serving", lambda: c.store.get(Endpoints, "kubernetes", "default") is not None)
        yield c
    finally:
        c.stop()
        from podnet.kernel import netns
        netns.remove(node_ns)


def sh(c: Cluster, pod: str, script: str) -> tuple[int, str]:
    r = c.cli("exec", pod, "--", "sh", "-c", script, check=False)
    return r.returncode, r.stdout + r.stderr


def test_pod_cannot_touch_the_host_or_podnet_state(cluster: Cluster) -> None:
    c = cluster
    probe = os.path.join("/tmp", f"podnet-sandbox-{os.getpid()}")
    code, out = sh(c, "box", f"echo x > {probe} && cat {probe}")
    assert out == "x\n" and not os.path.exists(probe), out  # written to the pod's own /tmp
    for path in (c.state, f"{c.state}/store.db", "/run/podnet", "/run/netns", "/var/lib"):
        code, out = sh(c, "box", f"ls {path}")
        assert code != 0 and "No such file or directory" in out, (path, out)
    code, out = sh(c, "box", "echo x > /etc/passwd")
    assert code != 0 and "Read-only file system" in out, out


def test_pod_sees_only_its_own_processes_as_the_container_does(cluster: Cluster) -> None:
    c = cluster
    code, out = sh(c, "box", "ls /proc | grep -E '^[0-9]+$'; echo; cat /tmp/pid")
    pids, _, shell_pid = out.partition("\n\n")
    assert code == 0 and all(int(p) < 100 for p in pids.split()), out  # its own PID namespace
    assert str(os.getpid()) not in pids.split()
    assert shell_pid.strip() == "2", "the command is PID 2, under the sandbox's init"


def test_pod_hostname_files_and_resolv_conf_are_the_kubelets(cluster: Cluster) -> None:
    c = cluster
    ip = c.pod("box").status.pod_ip
    code, out = sh(c, "box", "hostname; cat /etc/hostname /etc/resolv.conf /etc/hosts")
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["box", "box"]
    with open("/etc/resolv.conf") as f:  # the node's search domains come after the cluster's
        node_search = parse_resolv_conf(f.read()).searches
    search = " ".join(["default.svc.cluster.local", "svc.cluster.local", "cluster.local", *node_search])
    assert lines[2:5] == [f"search {search}", "nameserver 10.96.0.10", "options ndots:5"], out
    assert "# Kubernetes-managed hosts file." in lines and f"{ip}\tbox" in lines
    c.wait("admin Running", lambda: c.pod("admin").status.phase == "Running", timeout=30)
    code, out = sh(c, "admin", "hostname; cat /etc/resolv.conf; grep -v '^#' /etc/hosts | grep . | tail -2")
    admin_ip = c.pod("admin").status.pod_ip
    assert out.splitlines() == ["netops", "search corp.example", "nameserver 127.0.0.1", "options ndots:2",
                                f"{admin_ip}\tnetops.tools.default.svc.cluster.local\tnetops",
                                "192.0.2.10\tdb.example"], out


def test_capabilities_default_added_and_dropped(cluster: Cluster) -> None:
    c = cluster
    code, out = sh(c, "box", "ip link set eth0 down")
    assert code != 0 and "Operation not permitted" in out  # no CAP_NET_ADMIN by default
    code, out = sh(c, "box", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
    assert out.split() == ["CapEff:", "00000000a80425fb", "NoNewPrivs:", "1"], out  # containerd's default set
    code, out = sh(c, "admin", "ip link set lo mtu 60000 && echo changed; touch /tmp/f; chown 1 /tmp/f")
    assert out.startswith("changed\n") and code != 0 and "Operation not permitted" in out, out  # +NET_ADMIN −CHOWN


def test_exec_probe_runs_inside_the_sandbox(cluster: Cluster) -> None:
    c = cluster
    assert not c.pod("admin").ready  # the probe's /tmp/ready is the sandbox's, not the host's
    sh(c, "admin", "touch /tmp/ready")
    c.wait("admin Ready", lambda: c.pod("admin").ready, timeout=10)


def test_wget_honours_timeout_inside_pods(cluster: Cluster) -> None:
    c = cluster
    # a server that accepts and never answers: wget gives up after -T seconds, exit 1
    code, out = sh(c, "box", "sleep 3 | nc -l -p 8081 >/dev/null 2>&1 & sleep 0.3; "
                             "wget -T 1 -qO- http://127.0.0.1:8081/; echo rc=$?")
    assert "wget: download timed out" in out and "rc=1" in out and "Segmentation" not in out, out
    code, out = sh(c, "box", "timeout 5 wget -T 1 -q -O /dev/null http://127.0.0.1:1/; echo rc=$?")
    assert "wget: can't connect to remote host (127.0.0.1): Connection refused" in out and "rc=1" in out, out


IN_CLUSTER = """
import sys
from podnet.apiclient import ApiClient, ApiError
client = ApiClient.in_cluster()
try:
    print(sorted(p["metadata"]["name"] for p in client.list("/api/v1/pods")[0]))
except ApiError as exc:
    print(exc.code, exc.message)
"""

READER = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "pod-reader"}
rules: [{apiGroups: [""], resources: [pods], verbs: [list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "pod-reader"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "pod-reader"}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"""


def test_pods_read_the_api_with_their_service_account_token(cluster: Cluster) -> None:
    import sys

    c = cluster
    code, out = sh(c, "box", "ls /var/run/secrets/kubernetes.io/serviceaccount; "
                             "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace")
    assert out.split() == ["ca.crt", "namespace", "token", "default"], out
    code, out = sh(c, "admin", "ls /var/run/secrets/kubernetes.io/serviceaccount")
    assert code != 0, "automountServiceAccountToken: false"
    ep = c.store.get(Endpoints, "kubernetes", "default")
    assert ep is not None and ep.to_dict()["subsets"][0]["addresses"] == [{"ip": NODE_IP}]

    def in_cluster() -> str:  # the client a pod's program uses, run inside the pod
        r = c.cli("exec", "box", "--", "env", f"KUBERNETES_SERVICE_HOST={NODE_IP}", "KUBERNETES_SERVICE_PORT=6443",
                  sys.executable, "-c", IN_CLUSTER, check=False)
        return r.stdout + r.stderr
    assert in_cluster().startswith('403 pods is forbidden: User "system:serviceaccount:default:default" cannot list')
    c.apply(READER)
    assert in_cluster().strip() == "['admin', 'box']"


QUERIES = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
s.settimeout(2)
try:
    while True:
        data = s.recv(512)
        labels, i = [], 12
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        print(".".join(labels), flush=True)
except OSError:
    pass
"""


def test_nslookup_asks_the_pods_nameserver_with_its_search_path(cluster: Cluster) -> None:
    c = cluster
    code, out = sh(c, "admin", f"python3 -c '{QUERIES}' > /tmp/queries & sleep 0.5; "
                               "nslookup -timeout=1 web >/dev/null 2>&1; sleep 2; cat /tmp/queries")
    assert "web.corp.example" in out.split(), out
