"""Services as kubectl shows them: get svc/ep/endpointslices, describe svc, expose, and a
refused apply located at its file:line."""
from __future__ import annotations

import re
import textwrap
from datetime import UTC
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from podnet.agent.service_control import ServiceController
from podnet.cli.main import cli
from podnet.model import Pod, Service
from podnet.store.open import open_store

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
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
"""

SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: http
    nodePort: 30080
---
apiVersion: v1
kind: Service
metadata:
  name: lb
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: ext
spec:
  type: ExternalName
  externalName: db.example.com
---
apiVersion: v1
kind: Service
metadata:
  name: headless
spec:
  clusterIP: None
  selector: {app: web}
"""


@pytest.fixture
def podnet(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    state = str(tmp_path / "state")

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--state-dir", state, *args], input=input, catch_exceptions=False)

    run.state = state  # type: ignore[attr-defined]
    return run


def cells(line: str) -> list[str]:
    return re.split(r"\s{3,}", line.strip())


def running_pods(state: str) -> None:
    """Two pods of the web Deployment, Running with addresses, and the controller's slices."""
    store = open_store(state)
    try:
        for i in range(2):
            store.create(Pod.model_validate({
                "metadata": {"name": f"web-{i}", "labels": {"app": "web"}},
                "spec": {"nodeName": "node-1", "containers": [{"name": "nginx", "ports": [
                    {"containerPort": 8080, "name": "http"}]}]},
                "status": {"phase": "Running", "podIP": f"10.244.1.{i + 5}"}}))
        ServiceController(store).reconcile(store.snapshot())
    finally:
        store.close()


def test_get_services_wide_endpoints_and_slices(podnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "svc.yaml").write_text(SERVICES)
    assert podnet("apply", "-f", str(tmp_path / "svc.yaml")).exit_code == 0
    running_pods(podnet.state)
    out = podnet("get", "svc", "-o", "wide")
    assert cells(out.stdout.splitlines()[0]) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                                                 "SELECTOR"]
    rows = {cells(line)[0]: cells(line) for line in out.stdout.splitlines()[1:]}
    assert rows["web"][1:3] == ["NodePort", rows["web"][2]] and rows["web"][3:5] == ["<none>", "80:30080/TCP"]
    assert rows["web"][2].startswith("10.") and rows["web"][-1] == "app=web"
    assert rows["lb"][1] == "LoadBalancer" and rows["lb"][3] == "<pending>" and re.fullmatch(r"443:3\d{4}/TCP",
                                                                                               rows["lb"][4])
    assert rows["ext"][1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"] and rows["ext"][-1] == "<none>"
    assert rows["headless"][2:5] == ["None", "<none>", "<none>"]
    ep = podnet("get", "ep", "web")
    assert cells(ep.stdout.splitlines()[1])[:2] == ["web", "10.244.1.5:8080,10.244.1.6:8080"]
    slices = podnet("get", "endpointslices").stdout.splitlines()
    assert cells(slices[0]) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    web_slice = next(cells(s) for s in slices if s.startswith("web-"))
    assert web_slice[1:4] == ["IPv4", "8080", "10.244.1.5,10.244.1.6"]
    headless_slice = next(cells(s) for s in slices if s.startswith("headless-"))
    assert headless_slice[2:4] == ["<unset>", "10.244.1.5,10.244.1.6"]


def test_describe_service_as_kubectl(podnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "svc.yaml").write_text(SERVICES)
    podnet("apply", "-f", str(tmp_path / "svc.yaml"))
    running_pods(podnet.state)
    text = podnet("describe", "svc", "web").stdout
    store = open_store(podnet.state)
    svc = store.get(Service, "web")
    store.close()
    assert isinstance(svc, Service)
    ip = svc.spec.cluster_ip
    assert text.splitlines()[4:] == [
        "Selector:                 app=web",
        "Type:                     NodePort",
        "IP Family Policy:         SingleStack",
        "IP Families:              IPv4",
        f"IP:                       {ip}",
        f"IPs:                      {ip}",
        "Port:                     http  80/TCP",
        "TargetPort:               http/TCP",
        "NodePort:                 http  30080/TCP",
        "Endpoints:                10.244.1.5:8080,10.244.1.6:8080",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "Internal Traffic Policy:  Cluster",
        "Events:                   <none>",
    ]
    assert text.splitlines()[0] == "Name:                     web"
    assert re.search(r"^External Name: +db\.example\.com$", podnet("describe", "svc", "ext").stdout, re.M)
    empty = podnet("describe", "svc", "lb").stdout
    assert "Endpoints:                10.244.1.5:443,10.244.1.6:443" in empty


def test_expose_deployment_and_pod(podnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "web.yaml").write_text(WEB)
    podnet("apply", "-f", str(tmp_path / "web.yaml"))
    out = podnet("expose", "deployment", "web", "--port", "80", "--target-port", "8080", "--type", "NodePort")
    assert out.exit_code == 0 and out.stdout == "service/web exposed\n"
    store = open_store(podnet.state)
    svc = store.get(Service, "web")
    assert isinstance(svc, Service) and svc.spec.selector == {"app": "web"} and svc.labels == {"app": "web"}
    (port,) = svc.spec.ports or []
    assert (port.port, port.target_port, port.protocol, port.name) == (80, 8080, "TCP", None)
    assert port.node_port and 30000 <= port.node_port <= 32767
    again = podnet("expose", "deployment", "web", "--port", "80")
    assert again.exit_code == 1 and 'services "web" already exists' in again.output
    store.create(Pod.model_validate({"metadata": {"name": "bare", "labels": {"run": "bare"}},
                                     "spec": {"containers": [{"name": "c"}]}}))
    store.create(Pod.model_validate({"metadata": {"name": "solo", "labels": {"run": "solo"}}, "spec": {
        "containers": [{"name": "c", "ports": [{"containerPort": 53, "protocol": "UDP"},
                                               {"containerPort": 8053}]}]}}))
    store.close()
    dry = podnet("expose", "pod/solo", "--name", "dns", "--dry-run", "client", "-o", "yaml").stdout
    assert textwrap.dedent("""\
        spec:
          ports:
          - name: port-1
            port: 53
            protocol: UDP
            targetPort: 53
          - name: port-2
            port: 8053
            protocol: TCP
            targetPort: 8053
          selector:
            run: solo
        """) in dry
    assert podnet("get", "svc", "dns").exit_code == 1  # a dry run creates nothing
    assert "couldn't find port via --port flag or introspection" in podnet("expose", "pod", "bare").output
    assert 'deployments.apps "missing" not found' in podnet("expose", "deployment", "missing").output


def test_a_refused_apply_names_file_line_and_field(podnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "svc.yaml").write_text(SERVICES)
    podnet("apply", "-f", str(tmp_path / "svc.yaml"))
    clash = tmp_path / "clash.yaml"
    clash.write_text("# another Service on the same node port\n" + SERVICES.split("---\n")[0].replace("name: web", "name: web2"))
    out = podnet("apply", "-f", str(clash))
    assert out.exit_code == 1
    assert f"{clash}:2:1: Service/web2: spec.ports[0].nodePort: 30080: provided port is already allocated" in out.output
    assert podnet("get", "svc", "web2").exit_code == 1


def test_load_balancer_external_ip_as_kubectl_shortens_it() -> None:
    from datetime import datetime

    from podnet.cli.columns import rows_for

    lb = Service.model_validate({"metadata": {"name": "lb", "creationTimestamp": "2025-01-01T00:00:00Z"},
                                 "spec": {"type": "LoadBalancer", "externalIPs": ["203.0.113.9"],
                                          "ports": [{"port": 80, "nodePort": 30080}]},
                                 "status": {"loadBalancer": {"ingress": [{"ip": "192.168.200.2"},
                                                                         {"ip": "192.168.200.1"}]}}})
    now = datetime(2025, 1, 1, 0, 1, tzinfo=UTC)
    _, (row,) = rows_for(Service, [lb], now, wide=False, all_namespaces=False, show_labels=False)
    assert row[3] == "192.168.200.1...,203.0.113.9" and row[4] == "80:30080/TCP"
    _, (wide,) = rows_for(Service, [lb], now, wide=True, all_namespaces=False, show_labels=False)
    assert wide[3] == "192.168.200.1,192.168.200.2,203.0.113.9" and wide[-1] == "<none>"
