"""S7's ingress part (seeds/004) in a lab cluster started with `podnet up --ingress`: two
Services behind one Ingress, `curl -H 'Host: foo.example' http://<node>:30380/a` and `/b` from
the external host reach different Services; a wildcard host matches one label; TLS terminates
with a self-signed kubernetes.io/tls Secret; the Ingress shows the address it is reached at;
an Ingress change is served within a second, its reload losing no request of a loop; and
ingress-nginx's annotations: a rewrite with capture groups, regex paths, redirects (including
TLS's default 308), source ranges."""
from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cluster.ingress_addon import HTTP_NODE_PORT, HTTPS_NODE_PORT
from podnet.testing.leaks import Prefixes

from test_s7_services import Cluster

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]

APPS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: NAME, namespace: default}
spec: {selector: {app: NAME}, ports: [{name: http, port: 80}]}
"""

INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: foo
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/ssl-redirect: "false"}  # plain HTTP stays served here
spec:
  ingressClassName: nginx
  tls: [{hosts: [foo.example], secretName: foo-tls}]
  rules:
  - host: foo.example
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: svc-b, port: {name: http}}}}
  - host: "*.wild.example"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-b, port: {number: 80}}}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("ingress")), prefixes.new())
    try:
        c.cli("up", "--nodes", "2", "--ingress", "--no-dns", "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def curl(netns: str, *args: str) -> tuple[int, str]:
    res = subprocess.run(["ip", "netns", "exec", netns, "curl", "-s", "-m", "3", "-o", "-", "-w", " %{http_code}",
                          *args], capture_output=True, text=True)
    body, _, code = res.stdout.rpartition(" ")
    return int(code or 0), body.strip()


def tls_secret(tmp: Path) -> str:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=foo.example", "-keyout", str(tmp / "key"), "-out", str(tmp / "crt")],
                   check=True, capture_output=True)
    crt, key = (base64.b64encode((tmp / f).read_bytes()).decode() for f in ("crt", "key"))
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: foo-tls, namespace: default}\n"
            f"type: kubernetes.io/tls\ndata: {{tls.crt: {crt}, tls.key: {key}}}\n")


def test_two_services_behind_one_ingress_from_the_external_host(cluster: Cluster, tmp_path: Path) -> None:
    cluster.apply("---\n".join([*(APPS.replace("NAME", n) for n in ("svc-a", "svc-b")), tls_secret(tmp_path),
                                 INGRESS]))
    cluster.cli("wait", "pods", "--all", "--for", "condition=Ready", "--timeout", "60s")
    cluster.cli("wait", "pods", "--all", "-n", "ingress-nginx", "--for", "condition=Ready", "--timeout", "60s")
    st = cluster.status()
    ext = st["topology"].externals[0].netns
    node = st["nodes"][0]["address"]
    url = f"http://{node}:{HTTP_NODE_PORT}"
    deadline = time.monotonic() + 15
    while curl(ext, "-H", "Host: foo.example", f"{url}/a")[0] != 200:
        assert time.monotonic() < deadline, "the ingress never served /a"
        time.sleep(0.2)
    code_a, body_a = curl(ext, "-H", "Host: foo.example", f"{url}/a")
    code_b, body_b = curl(ext, "-H", "Host: foo.example", f"{url}/b/x")
    assert (code_a, code_b) == (200, 200) and body_a.startswith("svc-a-") and body_b.startswith("svc-b-")
    assert curl(ext, "-H", "Host: foo.example", f"{url}/c")[0] == 404
    assert curl(ext, "-H", "Host: x.wild.example", f"{url}/")[1].startswith("svc-b-")
    assert curl(ext, "-H", "Host: y.x.wild.example", f"{url}/")[0] == 404
    code, body = curl(ext, "--cacert", str(tmp_path / "crt"), "--resolve", f"foo.example:{HTTPS_NODE_PORT}:{node}",
                      f"https://foo.example:{HTTPS_NODE_PORT}/a")
    assert code == 200 and body.startswith("svc-a-"), body
    # The Ingress shows where it is reached, as kubectl prints it.
    deadline = time.monotonic() + 10
    while "192.168.10." not in (out := cluster.cli("get", "ingress").stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert "foo.example,*.wild.example" in out and "80, 443" in out
    # A new path is served within a second of the change, and the reloads it takes lose no
    # request of a loop running from the external host meanwhile.
    codes: list[int] = []
    stop = threading.Event()

    def request_loop() -> None:
        while not stop.is_set():
            codes.append(curl(ext, "-H", "Host: foo.example", f"{url}/a")[0])

    loop = threading.Thread(target=request_loop)
    loop.start()
    time.sleep(0.3)
    cluster.apply(INGRESS.replace("- {path: /b,", "- {path: /new, pathType: Exact, backend: {service: {name: svc-a, "
                                  "port: {number: 80}}}}\n      - {path: /b,"))
    t0 = time.monotonic()
    while curl(ext, "-H", "Host: foo.example", f"{url}/new")[0] != 200:
        assert time.monotonic() - t0 < 3, "the change was not served"
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    loop.join()
    assert len(codes) >= 5 and set(codes) == {200}, codes


ANNOTATED = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$2}
spec:
  rules:
  - host: rw.example
    http:
      paths:
      - {path: '/something(/|$)(.*)', pathType: ImplementationSpecific, backend: {service: {name: svc-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: regex
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/use-regex: "true"}
spec:
  rules:
  - host: re.example
    http:
      paths:
      - {path: '/v[0-9]+/', pathType: ImplementationSpecific, backend: {service: {name: svc-b, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: moved
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/permanent-redirect: "https://new.example/landing"}
spec:
  rules:
  - host: moved.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  namespace: default
spec:
  tls: [{hosts: [foo.example], secretName: foo-tls}]
  rules:
  - host: foo.example
    http:
      paths:
      - {path: /tls-only, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: inside
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/whitelist-source-range: "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"}
spec:
  rules:
  - host: inside.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: outside
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/allowlist-source-range: "198.51.100.0/24"}
spec:
  rules:
  - host: outside.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
"""


def test_annotations_through_the_controller(cluster: Cluster) -> None:
    cluster.apply(ANNOTATED)
    st = cluster.status()
    ext = st["topology"].externals[0].netns
    url = f"http://{st['nodes'][0]['address']}:{HTTP_NODE_PORT}"
    deadline = time.monotonic() + 15
    while curl(ext, "-H", "Host: outside.example", f"{url}/")[0] != 403:
        assert time.monotonic() < deadline, "the annotated Ingresses were never served"
        time.sleep(0.2)
    # rewrite-target /$2: the backend sees /echo?msg=…, which it answers with the message
    assert curl(ext, "-H", "Host: rw.example", f"{url}/something/echo?msg=rewritten") == (200, "rewritten")
    assert curl(ext, "-H", "Host: re.example", f"{url}/V2/x")[1].startswith("svc-b-")  # regexes: ~* (any case)
    assert curl(ext, "-H", "Host: re.example", f"{url}/vx/")[1].startswith("svc-a-")
    code, head = curl(ext, "-I", "-H", "Host: moved.example", f"{url}/a")
    assert code == 301 and "Location: https://new.example/landing" in head.splitlines(), head
    code, head = curl(ext, "-I", "-H", "Host: foo.example", f"{url}/tls-only/x/")
    assert code == 308 and "Location: https://foo.example/tls-only/x" in head.splitlines(), head  # TLS: 308, no trailing /
    assert curl(ext, "-H", "Host: inside.example", f"{url}/")[1].startswith("svc-a-")
