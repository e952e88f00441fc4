"""The ingress controller's routing against real nginx on loopback, table-driven from the
Ingress API's rules and the network-policy-api's ingress conformance tables (path_rules,
host_rules, default_backend, ingress_class): backends are HTTP servers on loopback that say who
they are and what path and Host they saw. Plus the API's validation, and a reload under a
request loop that loses no request."""
from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from podnet.ingress.controller import NginxProcess
from podnet.ingress.nginx import render, server_name
from podnet.ingress.plan import plan
from podnet.manifest.loader import load_text
from podnet.model import EndpointSlice, Ingress, IngressClass, Service
from podnet.model.secrets import Secret

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                reason="nginx is not installed (make setup installs nginx-light)")


class Backend:
    """An HTTP server on loopback answering ``<name> <path> <host>``."""

    def __init__(self, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = f"{name} {self.path} {self.headers.get('Host')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def service(name: str, backend: Backend | None) -> list[Any]:
    out: list[Any] = [Service.model_validate({"metadata": {"name": name, "namespace": "default"},
                                              "spec": {"clusterIP": "10.96.0.50",
                                                       "ports": [{"name": "http", "port": 80}]}})]
    if backend is not None:
        out.append(EndpointSlice.model_validate({
            "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": backend.port, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}))
    return out


CLASSES = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other}
"""

INGRESSES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: paths, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: paths.example
    http:
      paths:
      - {path: /foo, pathType: Exact, backend: {service: {name: exact, port: {number: 80}}}}
      - {path: /foo, pathType: Prefix, backend: {service: {name: prefix, port: {name: http}}}}
      - {path: /aaa, pathType: Prefix, backend: {service: {name: aaa, port: {number: 80}}}}
      - {path: /aaa/bbb/, pathType: Prefix, backend: {service: {name: bbb, port: {number: 80}}}}
      - {path: /exactslash/, pathType: Exact, backend: {service: {name: exact, port: {number: 80}}}}
      - {path: /empty, pathType: Prefix, backend: {service: {name: noendpoints, port: {number: 80}}}}
  - host: "*.wild.example"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}
  - http:
      paths:
      - {path: /nohost, pathType: Prefix, backend: {service: {name: nohost, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fallback, namespace: default}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: not-mine, namespace: default}
spec:
  ingressClassName: other
  rules:
  - host: other.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: exact, port: {number: 80}}}}
"""

NAMES = ["exact", "prefix", "aaa", "bbb", "wild", "nohost", "fallback"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def objects(text: str) -> list[Any]:
    return [item.obj for item in load_text(text, "<test>")]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NginxProcess, list[Any], dict[str, Backend]]]:
    backends = {n: Backend(n) for n in NAMES}
    world = [o for n in NAMES for o in service(n, backends[n])] + service("noendpoints", None)
    world += objects(CLASSES) + objects(INGRESSES)
    proc = NginxProcess(str(tmp_path_factory.mktemp("nginx")), free_port(), free_port())
    assert proc.apply(desired(world)) == "started"
    wait_listening(proc.http_port)
    yield proc, world, backends
    proc.stop()


def desired(world: list[Any]) -> Any:
    def of(cls: type) -> list[Any]:
        return [o for o in world if isinstance(o, cls)]
    return plan(of(Ingress), of(IngressClass), of(Service), of(EndpointSlice), of(Secret))


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not listen")


def get(port: int, host: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path, headers={"Host": host})
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


CASES = [  # host, path, status, backend (None: no backend answered)
    ("paths.example", "/foo", 200, "exact"),          # Exact beats Prefix for the same path
    ("paths.example", "/foo/", 200, "prefix"),
    ("paths.example", "/foo/bar", 200, "prefix"),
    ("paths.example", "/FOO", 200, "fallback"),       # paths are case-sensitive
    ("paths.example", "/foobar", 200, "fallback"),    # whole elements only
    ("paths.example", "/aaa", 200, "aaa"),
    ("paths.example", "/aaa/ccc", 200, "aaa"),
    ("paths.example", "/aaaccc", 200, "fallback"),
    ("paths.example", "/aaa/bbb", 200, "bbb"),        # the trailing slash of a Prefix is ignored
    ("paths.example", "/aaa/bbb/ccc", 200, "bbb"),    # the longest match wins
    ("paths.example", "/exactslash/", 200, "exact"),
    ("paths.example", "/exactslash", 200, "fallback"),  # Exact "/foo/" does not serve "/foo"
    ("paths.example", "/empty/x", 503, None),         # no ready endpoint
    ("a.wild.example", "/x", 200, "wild"),
    ("b.a.wild.example", "/x", 200, "fallback"),      # a wildcard matches exactly one label
    ("wild.example", "/x", 200, "fallback"),
    ("unknown.example", "/nohost/y", 200, "nohost"),  # a rule without host
    ("unknown.example", "/", 200, "fallback"),        # defaultBackend
    ("other.example", "/", 200, "fallback"),          # another class's Ingress is left alone
]


@pytest.mark.parametrize("host, path, status, backend", CASES)
def test_routes_by_the_api_rules(nginx: Any, host: str, path: str, status: int, backend: str | None) -> None:
    proc, _, _ = nginx
    code, body = get(proc.http_port, host, path)
    assert code == status, body
    if backend is not None:
        name, seen_path, seen_host = body.split()
        assert (name, seen_path, seen_host) == (backend, path, host)  # path and Host unchanged


def test_without_a_default_backend_unmatched_requests_get_404(tmp_path: Path) -> None:
    world = objects(CLASSES) + objects(INGRESSES.split("---")[0])
    config, _ = render(desired(world), str(tmp_path))
    assert "return 404;" in config


def test_a_reload_under_a_request_loop_loses_no_request(nginx: Any) -> None:
    proc, world, _ = nginx
    results: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                results.append(get(proc.http_port, "paths.example", "/aaa/x")[0])
            except OSError:
                results.append(-1)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    extra = objects(INGRESSES.split("---")[0].replace("name: paths,", "name: paths2,").replace(
        "paths.example", "paths2.example"))
    for i in range(5):
        time.sleep(0.2)
        changed = world + (extra if i % 2 == 0 else [])
        assert proc.apply(desired(changed)) == "reloaded"
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert results and set(results) == {200}, (len(results), sorted(set(results)))
    assert proc.reloads >= 5


def test_wildcards_become_one_label_patterns() -> None:
    assert server_name("*.foo.com") == r"~^[^.]+\.foo\.com$"
    assert server_name("foo.com") == "foo.com"


@pytest.mark.parametrize("fragment, message", [
    ("{path: foo, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}", "absolute path"),
    ("{path: /, backend: {service: {name: a, port: {number: 80}}}}", "pathType"),
    ("{path: /, pathType: Regex, backend: {service: {name: a, port: {number: 80}}}}", "pathType"),
    ("{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80, name: x}}}}", "exactly one of"),
    ("{path: /, pathType: Prefix, backend: {}}", "exactly one of service or resource"),
])
def test_invalid_paths_are_refused_where_they_are(fragment: str, message: str) -> None:
    from podnet.errors import ValidationError

    text = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: default}\nspec:\n"
            "  rules:\n  - host: a.example\n    http:\n      paths:\n      - " + fragment + "\n")
    with pytest.raises(ValidationError) as err:
        load_text(text, "ing.yaml")
    assert message in str(err.value) and "ing.yaml:9:" in str(err.value)


@pytest.mark.parametrize("host", ["*.*.foo.com", "foo.*.com", "1.2.3.4", "Foo.com", "*"])
def test_invalid_hosts_are_refused(host: str) -> None:
    from podnet.errors import ValidationError

    text = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: default}\nspec:\n"
            f"  rules:\n  - host: \"{host}\"\n")
    with pytest.raises(ValidationError):
        load_text(text, "ing.yaml")


def test_tls_certificates_are_served(tmp_path: Path) -> None:
    import base64

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=tls.example",
                    "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c")], check=True, capture_output=True)
    secret = Secret.model_validate({"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
                                    "data": {"tls.crt": base64.b64encode((tmp_path / "c").read_bytes()).decode(),
                                             "tls.key": base64.b64encode((tmp_path / "k").read_bytes()).decode()}})
    backend = Backend("secure")
    world = objects(CLASSES) + service("secure", backend) + [secret] + objects(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: s, namespace: default}\nspec:\n"
        "  tls: [{hosts: [tls.example], secretName: tls}]\n  rules:\n  - host: tls.example\n    http:\n"
        "      paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 80}}}}]\n")
    proc = NginxProcess(str(tmp_path / "run"), free_port(), free_port())
    try:
        proc.apply(desired(world))
        wait_listening(proc.https_port)
        import ssl

        ctx = ssl.create_default_context(cafile=str(tmp_path / "c"))
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", proc.https_port, context=ctx, timeout=3)
        conn.request("GET", "/x", headers={"Host": "tls.example"})
        res = conn.getresponse()
        assert res.status == 200 and res.read().decode().startswith("secure /x")
        conn.close()
    finally:
        proc.stop()


def test_a_new_ingress_without_class_gets_the_default_class(tmp_path: Path) -> None:
    """DefaultIngressClass admission: the newest default class on create; not on update."""
    from podnet.store.open import open_store

    store = open_store(str(tmp_path / "s"))
    try:
        store.apply(objects(CLASSES))
        ing = objects("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x, namespace: default}\n"
                      "spec: {defaultBackend: {service: {name: a, port: {number: 80}}}}\n")
        store.apply(ing)
        got = store.get(Ingress, "x", "default")
        assert got is not None and got.spec.ingress_class_name == "nginx"
        time.sleep(1.1)  # creationTimestamp has a resolution of one second
        store.apply(objects("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: later, annotations: "
                            "{ingressclass.kubernetes.io/is-default-class: \"true\"}}\nspec: {controller: k8s.io/x}\n"))
        store.apply(objects("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: z, namespace: default}\n"
                            "spec: {defaultBackend: {service: {name: a, port: {number: 80}}}}\n"))
        newer = store.get(Ingress, "z", "default")
        assert newer is not None and newer.spec.ingress_class_name == "later"  # the most recently created default
        store.apply(ing)  # an update keeps what it has
        again = store.get(Ingress, "x", "default")
        assert again is not None and again.spec.ingress_class_name != "later"  # no admission on update
    finally:
        store.close()
