"""explain / matrix / lint from the command line: files, kubectl dumps and the live store."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from podnet.cli.main import cli
from podnet.errors import PodnetError, ValidationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

DUMP = textwrap.dedent("""\
    apiVersion: v1
    items:
    - apiVersion: v1
      kind: Namespace
      metadata:
        creationTimestamp: "2024-05-01T10:00:00Z"
        labels:
          kubernetes.io/metadata.name: default
        name: default
        resourceVersion: "193"
        uid: 6a1c2f1e-1111-4c1d-9a55-000000000001
      spec:
        finalizers:
        - kubernetes
      status:
        phase: Active
    - apiVersion: v1
      kind: Namespace
      metadata:
        labels:
          kubernetes.io/metadata.name: cs1
        name: cs1
      status:
        phase: Active
    - apiVersion: v1
      kind: Pod
      metadata:
        labels:
          app: web
          pod-template-hash: 5d8f7c9b6
        name: web-5d8f7c9b6-x2x7k
        namespace: default
        uid: 6a1c2f1e-1111-4c1d-9a55-000000000002
      spec:
        containers:
        - image: nginx
          imagePullPolicy: Always
          name: nginx
          ports:
          - containerPort: 80
            name: http
            protocol: TCP
        nodeName: node1
        restartPolicy: Always
      status:
        hostIP: 192.168.0.11
        phase: Running
        podIP: 10.244.1.5
        podIPs:
        - ip: 10.244.1.5
    - apiVersion: v1
      kind: Pod
      metadata:
        labels:
          access: "true"
        name: client
        namespace: cs1
      spec:
        containers:
        - image: busybox
          name: client
        nodeName: node2
      status:
        hostIP: 192.168.0.12
        phase: Running
        podIP: 10.244.2.7
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata:
        name: pod-label-allow
        namespace: default
        generation: 1
      spec:
        ingress:
        - from:
          - podSelector:
              matchLabels:
                access: "true"
        podSelector: {}
        policyTypes:
        - Ingress
    kind: List
    metadata:
      resourceVersion: ""
    """)


def run(*args: str, state_dir: str = "/nonexistent-podnet-state"):
    result = CliRunner().invoke(cli, ["--state-dir", state_dir, *args], obj={}, catch_exceptions=True)
    return result


def test_explain_s1_from_files_text_and_json():
    s1 = str(EXAMPLES / "s1")
    out = run("explain", "--from-files", s1, "--from", "default/client2", "--to", "default/web-0:80")
    assert out.exit_code == 0, out.output
    assert "DENIED by ingress" in out.output
    assert "namespaceSelector project=default matches no namespace" in out.output
    assert "pod_policy.yaml:16" in out.output  # the peer's own line
    out = run("explain", "--from-files", s1, "--from", "default/client1", "--to", "default/web-0:80/TCP", "-o", "json")
    data = json.loads(out.output)
    assert data["allowed"] is True
    out = run("explain", "--from-files", s1, "--from", "default/client1", "--to", "default/web-0:ICMP", "-o", "json")
    assert json.loads(out.output)["allowed"] is False
    out = run("explain", "--from-files", s1, "--from", "default/client1", "--to", "default/web-0", "-o", "json")
    assert json.loads(out.output)["port"] == 80  # the destination's declared port


def test_kubectl_dump_offline_with_pod_ips_and_named_ports(tmp_path):
    dump = tmp_path / "dump.yaml"
    dump.write_text(DUMP)
    out = run("explain", "--from-files", str(dump), "--from", "10.244.2.7", "--to", "default/web-5d8f7c9b6-x2x7k:http", "-o", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["from"]["pod"] == "cs1/client" and data["port"] == 80 and data["allowed"] is False
    assert any("add a namespaceSelector to the same peer" in f for f in data["fix"])
    out = run("matrix", "--from-files", str(dump), "-o", "json")
    data = json.loads(out.output)
    assert data["pods"] == ["cs1/client", "default/web-5d8f7c9b6-x2x7k"]
    assert data["ports"] == [80] and data["protocols"] == ["TCP"]
    assert data["allowed"]["80/TCP"] == [[True, False], [True, True]]
    out = run("explain", "--from-files", str(dump), "--from", "192.168.0.11", "--to", "10.244.1.5:80")
    assert "ALLOWED" in out.output and "own node" in out.output


def test_matrix_options_and_formats():
    args = ["matrix", "--from-files", str(EXAMPLES / "s2"), "--from-files", str(EXAMPLES / "s1")]
    out = run(*args, "--ports", "80,81", "--protocols", "TCP,UDP", "-o", "json")
    data = json.loads(out.output)
    assert set(data["allowed"]) == {"80/TCP", "81/TCP", "80/UDP", "81/UDP"}
    i, j = data["pods"].index("test/client"), data["pods"].index("default/web-0")
    assert data["allowed"]["80/TCP"][i][j] is False
    out = run(*args, "-n", "test")
    assert out.exit_code == 0 and "test/client" in out.output and "default/" not in out.output
    out = run(*args, "-o", "csv")
    assert out.output.startswith("key,from,to,allowed\n")
    out = run(*args, "-n", "nope")
    assert isinstance(out.exception, PodnetError)
    out = run(*args, "--ports", "eighty")
    assert isinstance(out.exception, PodnetError)


def test_lint_reports_file_and_line():
    out = run("lint", "-f", str(EXAMPLES / "s1"))
    assert out.exit_code == 1
    assert "pod_policy.yaml:16" in out.output and "[unknown-namespace-label]" in out.output
    out = run("lint", "-f", str(EXAMPLES / "s1"), "-o", "json")
    data = json.loads(out.output)
    assert {w["code"] for w in data["warnings"]} >= {"unknown-namespace-label", "split-peer"}


def test_lint_turns_invalid_manifests_into_located_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: p, namespace: default}
        spec:
          podSelector: {}
          egress:
          - to:
            - ipBlock:
                cidr: 10.0.0.0/24
                except: [10.1.0.0/24]
        """))
    out = run("lint", "-f", str(bad))
    assert out.exit_code == 1
    assert "bad.yaml:" in out.output and "except" in out.output


def test_s5_typo_manifest_is_refused_with_file_and_line():
    out = run("explain", "--from-files", str(EXAMPLES / "broken" / "s5-fragment.yaml"), "--from", "1.1.1.1", "--to", "2.2.2.2:80")
    assert isinstance(out.exception, ValidationError)
    assert "s5-fragment.yaml:" in str(out.exception)


def test_bad_targets_are_clear_errors():
    s1 = str(EXAMPLES / "s1")
    out = run("explain", "--from-files", s1, "--from", "default/nope", "--to", "default/web-0:80")
    assert isinstance(out.exception, PodnetError) and "default/nope" in str(out.exception)
    out = run("explain", "--from-files", s1, "--from", "default/client1", "--to", "default/web-0:metrics")
    assert isinstance(out.exception, PodnetError) and "metrics" in str(out.exception)
    out = run("explain", "--from-files", s1, "--from", "default/client1", "--to", "default/client2")
    assert isinstance(out.exception, PodnetError) and "no port" in str(out.exception)


def test_live_store(tmp_path):
    from podnet.manifest import load_paths
    from podnet.store.open import open_store

    store = open_store(str(tmp_path))
    try:
        store.apply([item.obj for item in load_paths([str(EXAMPLES / "s1" / "pod_policy.yaml"), str(EXAMPLES / "s1" / "clients.yaml")])])
    finally:
        store.close()
    out = run("explain", "--from", "default/client2", "--to", "default/client1:80", "-o", "json", state_dir=str(tmp_path))
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["allowed"] is True
    out = run("matrix", "-o", "json", state_dir=str(tmp_path))
    assert json.loads(out.output)["pods"] == ["default/client1", "default/client2"]


@pytest.mark.parametrize("target,expected", [
    ("default/web:80/UDP", ("default/web", "80", "UDP")),
    ("10.0.0.1:8080", ("10.0.0.1", "8080", None)),
    ("10.0.0.1", ("10.0.0.1", None, None)),
    ("fd00::1", ("fd00::1", None, None)),
    ("[fd00::1]:53/UDP", ("fd00::1", "53", "UDP")),
])
def test_parse_target(target, expected):
    from podnet.cli.policy_cmds import parse_target

    assert parse_target(target) == expected
