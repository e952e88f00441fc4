"""``podnet describe ingress``: kubectl's page, backends with their ready endpoints."""
from __future__ import annotations

from click.testing import CliRunner

from podnet.cli.main import cli
from podnet.model import EndpointSlice, Ingress, Service
from podnet.store.open import open_store

INGRESS = {
    "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
    "spec": {"ingressClassName": "nginx",
             "tls": [{"hosts": ["foo.example"], "secretName": "foo-tls"}],
             "rules": [{"host": "foo.example", "http": {"paths": [
                 {"path": "/a", "pathType": "Prefix", "backend": {"service": {"name": "svc-a", "port": {"name": "http"}}}},
                 {"path": "/b", "pathType": "Exact", "backend": {"service": {"name": "gone", "port": {"number": 80}}}},
             ]}}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "192.168.10.71"}]}},
}


def test_describe_ingress_as_kubectl(tmp_path) -> None:
    state = str(tmp_path / "state")
    store = open_store(state)
    try:
        store.create(Service.model_validate({"metadata": {"name": "svc-a"},
                                             "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        store.create(EndpointSlice.model_validate({
            "metadata": {"name": "svc-a-1", "labels": {"kubernetes.io/service-name": "svc-a"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
                          {"addresses": ["10.244.2.7"], "conditions": {"ready": False}}]}))
        store.create(Ingress.model_validate(INGRESS))
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["--state-dir", state, "describe", "ingress", "web"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:6] == ["Name:             web", "Labels:           <none>", "Namespace:        default",
                         "Address:          192.168.10.71", "Ingress Class:    nginx",
                         "Default backend:  <default>"]
    assert lines[6:8] == ["TLS:", "  foo-tls terminates foo.example"]
    rules = lines[lines.index("Rules:") + 1:]
    assert rules[:5] == ["  Host         Path  Backends", "  ----         ----  --------", "  foo.example",
                         "               /a    svc-a:http (10.244.1.5:8080)",
                         '               /b    gone:80 (<error: services "gone" not found>)']
    assert "Annotations:      team: a" in lines
