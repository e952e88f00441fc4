"""NetworkPolicy meets Services: explain resolves a Service to its backends (port → targetPort
per pod) with a verdict each; lint flags a rule that opens the Service's port instead of the
pods' targetPort. Offline (--from-files) and from the store."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from podnet.cli.main import cli
from podnet.errors import NotFound, PodnetError
from podnet.model import EndpointSlice, Namespace, NetworkPolicy, Pod, Service
from podnet.policy.cluster import ClusterState
from podnet.policy.lint import lint
from podnet.policy.services import explain_service, render_service_verdict

FILES = """\
apiVersion: v1
kind: Pod
metadata:
  name: client1
  labels: {app: client}
spec:
  containers:
  - name: c
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        ports:
        - containerPort: 8080
          name: http
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-allow-client
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: client}
    ports:
    - port: {port}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write(tmp_path: Path, port: int) -> str:
    (tmp_path / "all.yaml").write_text(FILES.replace("{port}", str(port)))
    return str(tmp_path)


def test_explain_a_service_offline_gives_a_verdict_per_backend_after_dnat(tmp_path: Path) -> None:
    files = write(tmp_path, 80)
    out = run("explain", "--from", "default/client1", "--to", "svc/web:80", "--from-files", files)
    lines = out.stdout.splitlines()
    assert lines[0] == "service default/web port 80/TCP → targetPort http"
    assert "  default/web-0 <no address>:8080/TCP (ready): DENIED" in lines
    assert "  default/web-1 <no address>:8080/TCP (ready): DENIED" in lines
    assert lines[-1] == "  summary: 0 of 2 ready backends allowed; no backend admits it: every connection through the Service fails"
    fixed = run("explain", "--from", "default/client1", "--to", "svc/default/web", "--from-files", write(tmp_path, 8080),
                "-o", "json")
    data = json.loads(fixed.stdout)
    assert data["allowedBackends"] == 2 and [b["port"] for b in data["backends"]] == [8080, 8080]
    assert all(b["verdict"]["allowed"] for b in data["backends"])


def test_lint_flags_a_policy_opening_the_service_port_not_the_target_port(tmp_path: Path) -> None:
    out = run("lint", "-f", write(tmp_path, 80))
    assert out.exit_code == 1
    assert f"{tmp_path}/all.yaml:50: default/web-allow-client: spec.ingress[0].ports[0]: port 80/TCP is the port of " \
           "Service default/web, but its pods (e.g. default/web-0) receive that traffic on targetPort 8080" in out.stdout
    assert "[service-port-not-target-port] (hint: use port: 8080 (or the named port http))" in out.stdout
    fixed = run("lint", "-f", write(tmp_path, 8080))
    assert fixed.exit_code == 0, fixed.stdout


def pod(name: str, ip: str, labels: dict[str, str], ports: list[dict[str, Any]], **meta: Any) -> Pod:
    return Pod.model_validate({"metadata": {"name": name, "namespace": "default", "labels": labels, **meta},
                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
                               "status": {"phase": "Running", "podIP": ip}})


def state(policies: list[dict[str, Any]], **extra: Any) -> ClusterState:
    pods = [pod("client", "10.244.0.2", {"app": "client"}, []),
            pod("a", "10.244.0.3", {"app": "web"}, [{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.0.4", {"app": "web"}, [{"name": "http", "containerPort": 9090}, {"containerPort": 80}]),
            pod("c", "10.244.0.5", {"app": "web"}, [{"name": "http", "containerPort": 8080}],
                deletionTimestamp="2025-01-01T00:00:00Z")]
    web = Service.model_validate({"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "clusterIP": "10.96.0.20", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}})
    ext = Service.model_validate({"metadata": {"name": "ext", "namespace": "default"}, "spec": {
        "clusterIP": "10.96.0.21", "ports": [{"port": 443}]}})
    sl = EndpointSlice.model_validate({"metadata": {"name": "ext-1", "namespace": "default",
                                                    "labels": {"kubernetes.io/service-name": "ext"}},
                                       "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.7"]}],
                                       "ports": [{"name": "", "port": 8443}]})
    nps = [NetworkPolicy.model_validate({"metadata": {"name": f"p{i}", "namespace": "default"}, "spec": p})
           for i, p in enumerate(policies)]
    return ClusterState.build([Namespace.model_validate({"metadata": {"name": "default"}})], pods, nps,
                              services=[web, ext], slices=[sl], **extra)


def test_named_target_ports_resolve_per_pod_and_states_are_shown() -> None:
    allow_8080 = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 8080}]}]}
    st = state([allow_8080])
    result = explain_service(st, st.endpoint("default/client"), "default/web", "http", None)
    got = {(b.backend.key, b.port, b.state(), b.allowed) for b in result.backends}
    assert got == {("default/a", 8080, "ready", True), ("default/b", 9090, "ready", False),
                   ("default/c", 8080, "terminating, still serving", True)}
    text = render_service_verdict(result)
    assert "service default/web 10.96.0.20:80/TCP → targetPort http" in text
    assert "summary: 1 of 2 ready backends allowed; only some backends admit it" in text
    udp = explain_service(st, st.endpoint("default/client"), "default/web", "53", "UDP")
    assert [b.port for b in udp.backends] == [53, 53, 53]
    ext = explain_service(st, st.endpoint("default/client"), "default/ext", None, None)
    assert [(b.endpoint.ip, b.port, b.allowed) for b in ext.backends] == [("192.0.2.7", 8443, True)]
    with pytest.raises(NotFound, match="service default/nope not found"):
        explain_service(st, st.endpoint("default/client"), "default/nope", "80", None)
    with pytest.raises(PodnetError, match=r"has no port 8080 \(its ports: http 80/TCP, dns 53/UDP\)"):
        explain_service(st, st.endpoint("default/client"), "default/web", "8080", None)


def test_lint_checks_egress_too_and_spares_pods_that_listen_on_the_service_port() -> None:
    egress = {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
              "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 80}]}]}
    findings = [w for w in lint(state([egress])) if w.code == "service-port-not-target-port"]
    assert [(w.policy, w.field_path) for w in findings] == [("default/p0", "spec.egress[0].ports[0]")]
    assert "(e.g. default/a)" in findings[0].message  # b declares containerPort 80 as well, so it is not the example



def test_lint_finds_ingress_backends_that_deny_the_ingress_controller() -> None:
    from podnet.model import Ingress

    controller = Pod.model_validate({
        "metadata": {"name": "ctl", "namespace": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Running", "podIP": "10.244.0.9"}})
    backend = pod("a", "10.244.0.3", {"app": "web"}, [{"name": "http", "containerPort": 8080}])
    web = Service.model_validate({"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    ing = Ingress.model_validate({"metadata": {"name": "site", "namespace": "default"}, "spec": {"rules": [{
        "host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    namespaces = [Namespace.model_validate({"metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}})
                  for n in ("default", "ingress-nginx")]

    def findings(spec: dict[str, Any]) -> list[str]:
        np = NetworkPolicy.model_validate({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
        st = ClusterState.build(namespaces, [controller, backend], [np], services=[web], ingresses=[ing])
        return [str(w) for w in lint(st) if w.code == "ingress-controller-denied"]

    only_clients = {"podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}
    found = findings(only_clients)
    assert len(found) == 1 and "Ingress default/site routes to Service default/web" in found[0]
    assert "port 8080/TCP" in found[0]
    from_controller = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "ports": [{"port": 8080}]}]}
    assert findings(from_controller) == []


def test_explain_a_service_behind_an_ingress_gives_the_controllers_verdict() -> None:
    from podnet.model import Ingress
    from podnet.policy.services import through_ingress_lines

    client = pod("client", "10.244.0.2", {"app": "client"}, [])
    controller = Pod.model_validate({
        "metadata": {"name": "ctl", "namespace": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": "Running", "podIP": "10.244.0.9"}})
    backend = pod("a", "10.244.0.3", {"app": "web"}, [{"name": "http", "containerPort": 8080}])
    web = Service.model_validate({"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    ing = Ingress.model_validate({"metadata": {"name": "site", "namespace": "default"}, "spec": {"rules": [{
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    namespaces = [Namespace.model_validate({"metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}})
                  for n in ("default", "ingress-nginx")]
    only_clients = NetworkPolicy.model_validate({"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}})

    def lines(ingresses: list[Ingress], src_key: str) -> list[str]:
        st = ClusterState.build(namespaces, [client, controller, backend], [only_clients], services=[web],
                                ingresses=ingresses)
        src = st.by_key[src_key]
        return through_ingress_lines(st, src, explain_service(st, src, "default/web", None, None))

    # The client itself is admitted, but through the Ingress the controller's pods are not.
    st = ClusterState.build(namespaces, [client, controller, backend], [only_clients], services=[web])
    assert explain_service(st, st.by_key["default/client"], "default/web", None, None).backends[0].allowed
    text = lines([ing], "default/client")
    assert "through Ingress default/site" in text[0]
    assert text[1] == ("    from ingress-nginx/ctl: 0 of 1 backends allowed (denied: default/a; podnet lint: "
                       "ingress-controller-denied)")
    assert lines([], "default/client") == []  # no Ingress routes there: nothing to add
    assert lines([ing], "ingress-nginx/ctl") == []  # asked from the controller: the verdict above is that
