"""SCENARIOS S1, S2, S3, S4 and S5 on a 3-node emulated cluster, through the CLI, with the
kernel enforcing: what users see (a fetch works or times out, no ping), and ``podnet verify``
finding 0 disagreements between real connections and the engine's matrix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.testing.leaks import Prefixes

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")  # the installed command users run
STORE = os.environ.get("PODNET_TEST_STORE", "sqlite")  # etcd: the same scenarios on a 3-member etcd cluster


class Cluster:
    def __init__(self, state_dir: str, prefix: str) -> None:
        self.sd = state_dir
        self.prefix = prefix

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([PODNET, "--state-dir", self.sd, *args],
                             capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if check and res.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def apply(self, *files: Path) -> None:
        self.cli("apply", *[a for f in files for a in ("-f", str(f))])

    def store_revision(self) -> int:
        from podnet.store.open import open_store

        store = open_store(self.sd, bootstrap=False)
        try:
            return store.revision()
        finally:
            store.close()

    def objects(self) -> list[tuple[str, int]]:
        """Every object's key and revision (the agents' lease renewals move the store's revision)."""
        from podnet.store.open import open_store

        store = open_store(self.sd, bootstrap=False)
        try:
            return [(r.key, r.mod_revision) for r in store.kv.list("/registry/")[0]]
        finally:
            store.close()

    def enforced(self, timeout: float = 20.0) -> None:
        """Wait until every node's policy loop has synced the store's current revision."""
        from podnet.agent.policy import read_status
        from podnet.cluster.datastore import node_state_dir

        want = self.store_revision()
        nodes = self.nodes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = [read_status(node_state_dir(self.sd, n), n) for n in nodes]
            if all(s and s["revision"] >= want and not s.get("error") for s in st):
                return
            time.sleep(0.05)
        raise AssertionError(f"policy not enforced at revision {want}: {st}")

    def nodes(self) -> list[str]:
        from podnet.cluster.lifecycle import status

        return [n["name"] for n in status(self.sd)["nodes"]]

    def ready(self, *namespaces: str) -> None:
        for ns in namespaces:
            self.cli("wait", "pods", "--all", "-n", ns, "--for", "condition=Ready", "--timeout", "60s")

    def probe(self, *args: str) -> dict[str, Any]:
        return json.loads(self.cli("probe", "-o", "json", "--timeout", "0.5", *args).stdout)

    def verify(self, *args: str) -> str:
        res = self.cli("verify", "--timeout", "0.5", *args, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "OK:" in res.stdout
        return res.stdout


def allowed(matrix: dict[str, Any], key: str, src: str, dst: str) -> bool:
    pods = matrix["pods"]
    return matrix["allowed"][key][pods.index(src)][pods.index(dst)]


def pod_named(matrix: dict[str, Any], ns: str, prefix: str) -> str:
    return next(p for p in matrix["pods"] if p.startswith(f"{ns}/{prefix}"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("policy-scn")), prefixes.new())
    try:
        c.cli("up", "--nodes", "3", "--prefix", c.prefix, "--store", STORE, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def test_s1_only_client1_reaches_web(cluster: Cluster) -> None:
    cluster.apply(EX / "s1" / "web.yaml", EX / "s1" / "clients.yaml")
    cluster.ready("default")
    cluster.enforced()
    before = cluster.probe("-n", "default", "--ports", "80")
    web = pod_named(before, "default", "web")
    assert allowed(before, "80/TCP", "default/client1", web) and allowed(before, "80/TCP", "default/client2", web)

    cluster.apply(EX / "s1" / "pod_policy.yaml")
    cluster.enforced()
    after = cluster.probe("-n", "default", "--ports", "80", "--protocols", "TCP,ICMP")
    assert allowed(after, "80/TCP", "default/client1", web)
    assert not allowed(after, "80/TCP", "default/client2", web)       # hangs / times out
    assert not allowed(after, "ICMP", "default/client1", web)          # only TCP 80 is allowed
    assert not allowed(after, "ICMP", "default/client2", web)
    cluster.verify("-n", "default", "--ports", "80,81", "--protocols", "TCP,UDP,ICMP")

    # flow logs: the node of web recorded the drop and the allow, naming the policy and rule
    drops = [json.loads(x) for x in cluster.cli("flows", "--verdict", "DROPPED", "--from-pod", "default/client2",
                                                "--to-pod", web, "--port", "80", "-o", "json").stdout.splitlines()]
    assert drops and all(d["policies"] == ["default/test-network-policy"] and d["hint"] for d in drops)
    assert "default deny ingress (isolated by default/test-network-policy)" in drops[-1]["rule"]
    allows = [json.loads(x) for x in cluster.cli("flows", "--verdict", "ALLOWED", "--from-pod", "default/client1",
                                                 "--to-pod", web, "--port", "80", "-o", "json").stdout.splitlines()]
    assert allows and allows[-1]["rule"] == "default/test-network-policy ingress rule 0"

    # explain --trace: the engine's reason, then the rule that dropped a real attempt.
    res = cluster.cli("explain", "--from", "default/client2", "--to", f"{web}:80", "--trace")
    assert "DENIED" in res.stdout
    assert "kernel: one 80/TCP attempt" in res.stdout and "timeout" in res.stdout
    assert "default deny ingress (isolated by default/test-network-policy)" in res.stdout
    res = cluster.cli("explain", "--from", "default/client1", "--to", f"{web}:80", "--trace")
    assert "spec.ingress[0].from[1] ports" in res.stdout


def test_s2_namespace_isolation(cluster: Cluster) -> None:
    cluster.apply(EX / "s2" / "test-namespace.yaml")
    cluster.ready("test")
    cluster.apply(EX / "s2" / "ns-acl.yaml")
    cluster.enforced()
    m = cluster.probe("-n", "default,test", "--ports", "80")
    web, test_web = pod_named(m, "default", "web"), pod_named(m, "test", "web")
    assert not allowed(m, "80/TCP", "test/client", web)
    assert allowed(m, "80/TCP", "test/client", test_web)
    assert allowed(m, "80/TCP", "default/client2", "default/client1")  # default pods reach each other
    cluster.verify("-n", "default,test", "--ports", "80", "--protocols", "TCP,UDP")


def test_s5_refused_manifest_changes_nothing(cluster: Cluster) -> None:
    from podnet.cluster.lifecycle import node_netns
    from podnet.kernel.nft.apply import NftApplier

    cluster.enforced()
    before = {n: NftApplier(node_netns(cluster.sd, n)).read() for n in cluster.nodes()}
    objects = cluster.objects()
    res = cluster.cli("apply", "-f", str(EX / "broken" / "s5-fragment.yaml"), check=False)
    assert res.returncode != 0 and "s5-fragment.yaml" in (res.stdout + res.stderr)
    assert cluster.objects() == objects
    time.sleep(0.3)
    after = {n: NftApplier(node_netns(cluster.sd, n)).read() for n in cluster.nodes()}
    assert after == before


def test_s3_egress_lockdown_with_dns(cluster: Cluster) -> None:
    from podnet.cluster.lifecycle import status

    cluster.cli("label", "namespace", "kube-system", "networking/namespace=kube-system", "--overwrite")
    dns = """
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  containers:
  - name: coredns
    image: agnhost
    ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]
"""
    path = Path(cluster.sd) / "dns.yaml"
    path.write_text(dns)
    cluster.apply(path)
    cluster.ready("kube-system")
    cluster.apply(EX / "s3" / "default-deny-all-egress.yaml")
    cluster.enforced()
    cluster.verify("-n", "default,kube-system", "--ports", "53,80", "--protocols", "TCP,UDP")
    m = cluster.probe("-n", "default,kube-system", "--ports", "53,80", "--protocols", "TCP,UDP")
    assert allowed(m, "53/TCP", "default/client1", "kube-system/coredns")
    assert not allowed(m, "80/TCP", "default/client1", pod_named(m, "default", "web"))

    cluster.apply(EX / "s3" / "narrowed" / "dns-only-kube-dns.yaml", EX / "s3" / "internet-egress.yaml")
    cluster.cli("label", "pod", "client1", "networking/allow-internet-egress=true")
    cluster.enforced()
    cluster.verify("-n", "default,kube-system", "--ports", "53,80", "--protocols", "TCP,UDP")
    m = cluster.probe("-n", "default,kube-system", "--ports", "53,80", "--protocols", "TCP,UDP")
    web = pod_named(m, "default", "web")
    assert allowed(m, "80/TCP", "default/client1", web)       # labelled: reaches everything
    assert not allowed(m, "80/TCP", "default/client2", web)   # not labelled: only DNS
    assert allowed(m, "53/UDP", "default/client2", "kube-system/coredns")
    # ... including a host outside the cluster (ping through the node's natOutgoing).
    from podnet.kernel.probe import REACHED, probe

    externals = status(cluster.sd)["externals"]
    assert externals, "the lab has an external host"
    ext_ip = externals[0][1]
    assert probe(_pod_netns(cluster, "default", "client1"), ext_ip, None, "ICMP", 1.0)[0] in REACHED
    assert probe(_pod_netns(cluster, "default", "client2"), ext_ip, None, "ICMP", 0.5)[0] not in REACHED
    cluster.cli("delete", "-f", str(EX / "s3" / "internet-egress.yaml"))
    cluster.cli("delete", "netpol", "default-deny-all-egress")


def _pod_netns(cluster: Cluster, ns: str, name: str) -> str:
    from podnet.agent.pods import pod_netns_name
    from podnet.model import Pod
    from podnet.store.open import open_store

    store = open_store(cluster.sd, bootstrap=False)
    try:
        pod = store.get(Pod, name, ns)
    finally:
        store.close()
    assert pod is not None
    return pod_netns_name(pod.spec.node_name, ns, name, pod.metadata.uid or "")


def test_s4_policy_zoo_agrees_with_the_engine(cluster: Cluster) -> None:
    cluster.apply(EX / "s4" / "cs1-namespace.yaml")
    box = Path(cluster.sd) / "cs1-pods.yaml"
    box.write_text("""
apiVersion: v1
kind: Pod
metadata: {name: box, namespace: cs1, labels: {access: "true"}}
spec:
  containers: [{name: box, image: agnhost, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: cs1}
spec:
  containers: [{name: plain, image: agnhost, ports: [{containerPort: 80}]}]
""")
    cluster.apply(box)
    cluster.ready("cs1")
    scope = ("-n", "default,cs1,test", "--ports", "80", "--protocols", "TCP,ICMP")
    for name in ("pod-label-allow", "namespace-allow", "namespace-allow-in", "deny-all-access", "allow-all-egress",
                 "deny-all-egress"):
        f = EX / "s4" / f"{name}.yaml"
        cluster.apply(f)
        cluster.enforced()
        cluster.verify(*scope)
        cluster.cli("delete", "-f", str(f))
    cluster.enforced()
    cluster.verify(*scope)

    # egress to 192.168.0.0/16 except 192.168.94.134: the lab's external host is that address.
    from podnet.cluster.lifecycle import status
    from podnet.kernel.probe import REACHED, probe

    ext = [ip for _, ip in status(cluster.sd)["externals"] if ip == "192.168.94.134"]
    client1 = _pod_netns(cluster, "default", "client1")
    assert ext, "the lab has the seeds' external host"
    assert probe(client1, ext[0], None, "ICMP", 1.0)[0] in REACHED
    cluster.apply(EX / "s4" / "egress-ipblock.yaml")
    cluster.enforced()
    cluster.verify(*scope)
    assert probe(client1, ext[0], None, "ICMP", 0.5)[0] not in REACHED  # removed by the except
    res = cluster.cli("explain", "--from", "default/client1", "--to", "192.168.94.134:80")
    assert "except 192.168.94.134/32" in res.stdout
    cluster.cli("delete", "-f", str(EX / "s4" / "egress-ipblock.yaml"))
    cluster.enforced()
    assert probe(client1, ext[0], None, "ICMP", 1.0)[0] in REACHED
