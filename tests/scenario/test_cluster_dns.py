"""The cluster DNS in a lab cluster, through the CLI as a user would: `podnet up` installs the
coredns Deployment and the kube-dns Service at 10.96.0.10; pods resolve Services by their
short names (resolv.conf search path) and the external host's names through the cluster DNS's
upstream (unbound on the external host). S3 (seeds/001) by name: with egress locked down to
DNS toward the kube-dns pods, unlabelled pods still resolve names but connect nowhere, and
labelled pods fetch from the external host by name. A scaled Deployment behind a headless
Service shows up in DNS within the TTL."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cluster import processes
from podnet.testing.leaks import Prefixes

from test_s7_services import Cluster

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]
EX = Path(__file__).resolve().parents[2] / "examples"

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: client1, namespace: default, labels: {networking/allow-internet-egress: "true"}}
spec:
  containers:
  - {name: c, image: busybox, command: ["sleep", "36000"]}
---
apiVersion: v1
kind: Pod
metadata: {name: client2, namespace: default}
spec:
  containers:
  - {name: c, image: busybox, command: ["sleep", "36000"]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: nginx, image: nginx, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-all, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("dns")), prefixes.new())
    try:
        c.cli("up", "--nodes", "2", "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def run(cluster: Cluster, pod: str, *argv: str) -> tuple[int, str]:
    res = cluster.cli("exec", pod, "--", *argv, check=False, timeout=30)
    return res.returncode, res.stdout + res.stderr


def addresses(cluster: Cluster, pod: str, name: str) -> set[str]:
    """The A records busybox nslookup prints for ``name`` (the search path's hits)."""
    _, out = run(cluster, pod, "nslookup", "-type=a", name)
    lines = out.split("Name:", 1)[1].splitlines() if "Name:" in out else []
    return {line.split()[-1] for line in lines if line.startswith("Address")}


def test_pods_resolve_services_and_the_outside_and_s3_holds_by_name(cluster: Cluster) -> None:
    st = cluster.status()
    external = st["topology"].externals[0]
    site = Path(cluster.sd) / "site"
    site.mkdir()
    (site / "index.html").write_text("external\n")
    httpd = processes.start("test-httpd", ["busybox", "httpd", "-f", "-p", "80", "-h", str(site)],
                            os.path.join(cluster.sd, "httpd.log"), external.netns)
    try:
        cluster.apply(PODS.replace("REPLICAS", "1"))
        cluster.cli("wait", "pods", "--all", "--for", "condition=Ready", "--timeout", "60s")
        cluster.cli("wait", "pods", "--all", "-n", "kube-system", "--for", "condition=Ready", "--timeout", "60s")
        web_ip = cluster.service("web").spec.cluster_ip
        assert addresses(cluster, "client2", "web") == {web_ip}
        assert addresses(cluster, "client2", "web.default.svc.cluster.local") == {web_ip}
        code, out = run(cluster, "client2", "wget", "-qO-", "-T", "3", "http://web.default/")  # the search path
        assert code == 0 and out.strip().startswith("web-"), out
        assert addresses(cluster, "client2", "www.internet.test") == {external.address}
        code, out = run(cluster, "client2", "wget", "-qO-", "-T", "3", "http://www.internet.test/")
        assert code == 0 and "external" in out, out

        # S3 narrowed: DNS only toward the kube-dns pods, everything for the labelled pod.
        cluster.cli("label", "namespace", "kube-system", "networking/namespace=kube-system", "--overwrite")
        cluster.cli("apply", "-f", str(EX / "s3" / "narrowed" / "dns-only-kube-dns.yaml"),
                    "-f", str(EX / "s3" / "internet-egress.yaml"))
        deadline = time.monotonic() + 15
        while run(cluster, "client2", "wget", "-qO-", "-T", "1", "http://web/")[0] == 0:
            assert time.monotonic() < deadline, "the egress lock-down was not enforced"
        assert addresses(cluster, "client2", "web") == {web_ip}  # names still resolve
        assert run(cluster, "client2", "wget", "-qO-", "-T", "2", "http://www.internet.test/")[0] != 0
        code, out = run(cluster, "client1", "wget", "-qO-", "-T", "3", "http://www.internet.test/")
        assert code == 0 and "external" in out, out
        code, out = run(cluster, "client1", "wget", "-qO-", "-T", "3", "http://web/")
        assert code == 0, out
        cluster.cli("delete", "netpol", "default-deny-all-egress", "internet-egress")

        # Scaled: the headless Service's name lists every ready replica within the TTL.
        cluster.apply(PODS.replace("REPLICAS", "3"))
        cluster.cli("wait", "pods", "--all", "--for", "condition=Ready", "--timeout", "60s")
        ready_at = time.monotonic()
        from podnet.model import Pod

        want = cluster.read(lambda store: {p.status.pod_ip for p in store.list(Pod, "default")
                                           if p.labels.get("app") == "web" and p.status.pod_ip})
        assert len(want) == 3
        seen: list[tuple[float, list[str]]] = []
        while (got := addresses(cluster, "client1", "web-all")) != want:
            seen.append((round(time.monotonic() - ready_at, 1), sorted(got)))
            if time.monotonic() - ready_at >= 10:
                from podnet.model import EndpointSlice

                slices = cluster.read(lambda store: [(e.addresses, e.conditions.model_dump()) for s in
                                                     store.list(EndpointSlice, "default")
                                                     if s.labels.get("kubernetes.io/service-name") == "web-all"
                                                     for e in s.endpoints or []])
                raise AssertionError(f"the replicas did not show up in DNS within the TTL and a resync: want "
                                     f"{sorted(want)}, answers {seen[-6:]}, the slice's endpoints {slices}")
            time.sleep(0.2)
    finally:
        processes.stop(httpd)
