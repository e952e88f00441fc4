"""explain, matrix, lint, diff and get for tiered policy from the command line: files, the live
store, and the store with files applied over it."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from podnet.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIERS, CHANGE = str(EXAMPLES / "tiers"), str(EXAMPLES / "tiers-change")


def run(*args: str, state_dir: str = "/nonexistent-podnet-state") -> Result:
    return CliRunner().invoke(cli, ["--state-dir", state_dir, *args], obj={}, catch_exceptions=True)


def test_explain_names_the_tier_the_rule_and_the_fix():
    out = run("explain", "--from-files", TIERS, "--from", "dev/tool", "--to", "prod/web-0:80")
    assert out.exit_code == 0, out.output
    assert "DENIED by ingress" in out.output
    assert "denied in tier platform by ingress rule 1 of gnp:platform.guardrails (Deny)" in out.output
    assert "tier default: not reached" in out.output
    assert "policy.yaml:19" in out.output and "add an Allow rule for it ahead of the Deny" in out.output
    out = run("explain", "--from-files", TIERS, "--from", "monitoring/prometheus", "--to", "prod/web-0:80", "-o", "json")
    data = json.loads(out.output)
    assert data["allowed"] is True and data["ingress"]["decidedIn"] == "platform"
    assert [s["action"] for s in data["ingress"]["path"]] == ["Allow"]
    assert {t["tier"]: t["outcome"] for t in data["ingress"]["tiers"]} == {
        "platform": "allowed", "kube-admin": "did not apply", "default": "not reached", "kube-baseline": "did not apply"}
    # passed by the platform tier, then the application team's NetworkPolicy decides
    out = run("explain", "--from-files", TIERS, "--from", "prod/api-0", "--to", "prod/web-0:8080", "-o", "json")
    data = json.loads(out.output)
    assert data["allowed"] is False and data["ingress"]["decidedIn"] == "default"
    assert [s["step"] for s in data["ingress"]["path"]] == ["rule", "end-of-tier"]


def test_matrix_over_tiers_and_icmp():
    out = run("matrix", "--from-files", TIERS, "--ports", "80", "--protocols", "TCP,ICMP", "-o", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    pods = data["pods"]
    web, tool, prom = pods.index("prod/web-0"), pods.index("dev/tool"), pods.index("monitoring/prometheus")
    assert data["allowed"]["80/TCP"][prom][web] and not data["allowed"]["80/TCP"][tool][web]
    assert not data["allowed"]["ICMP"][tool][web] and data["allowed"]["ICMP"][prom][web]


def test_lint_reports_tiered_findings_with_locations(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n"
        "  selector: all()\n  ingress:\n  - action: Allow\n  - action: Deny\n")
    out = run("lint", "-f", TIERS, "-f", str(tmp_path), "-o", "json")
    assert out.exit_code == 1
    found = {(w["code"], w["policy"]) for w in json.loads(out.output)["warnings"]}
    assert ("deny-shadowed", "gnp:p") in found
    (w,) = [w for w in json.loads(out.output)["warnings"] if w["code"] == "deny-shadowed"]
    assert w["location"].endswith("p.yaml:8") and w["field"] == "spec.ingress[1]"


def test_diff_files_text_json_and_exit_codes():
    out = run("diff", TIERS, CHANGE)
    assert out.exit_code == 1, out.output
    assert "1 connection(s) opened, 0 closed" in out.output and "by gnp:platform.guardrails" in out.output
    assert "dev → prod: 1" in out.output
    out = run("diff", TIERS, CHANGE, "-o", "json")
    data = json.loads(out.output)
    assert data["opened"] == 1 and data["closed"] == 0
    (change,) = data["changes"]
    assert change["pairs"] == [["dev/tool", "prod/web-0"]] and change["key"] == "80/TCP"
    assert change["policies"] == ["gnp:platform.guardrails"] and change["before"].startswith("denied")
    assert run("diff", TIERS, TIERS).exit_code == 0
    reverse = json.loads(run("diff", CHANGE, TIERS, "-o", "json").output)
    assert reverse["closed"] == 1 and reverse["opened"] == 0
    assert run("diff", TIERS, "/nonexistent-podnet-file").exit_code == 2
    assert run("diff", TIERS).exit_code == 2


def test_diff_live_store_against_files_and_get_columns(tmp_path: Path):
    state = str(tmp_path / "state")
    out = run("apply", "-f", TIERS, state_dir=state)
    assert out.exit_code == 0, out.output
    # the store keeps no pod status from manifests: give the pods their addresses as a node would
    from podnet.manifest import load_paths
    from podnet.model import Pod
    from podnet.store.open import open_store

    store = open_store(state)
    try:
        for item in load_paths([str(EXAMPLES / "tiers" / "cluster.yaml")]):
            if isinstance(item.obj, Pod):
                current = store.get(Pod, item.obj.metadata.name, item.obj.metadata.namespace)
                assert current is not None
                store.update_status(Pod.model_validate({**current.to_dict(), "status": item.obj.to_dict()["status"]}))
    finally:
        store.close()
    out = run("diff", "--live", "-f", str(EXAMPLES / "tiers-change" / "policy.yaml"), "-o", "json", state_dir=state)
    assert out.exit_code == 1, out.output
    assert json.loads(out.output)["changes"][0]["pairs"] == [["dev/tool", "prod/web-0"]]
    assert run("diff", "--live", "-f", str(EXAMPLES / "tiers" / "policy.yaml"), state_dir=state).exit_code == 0
    out = run("get", "tiers", state_dir=state)
    assert out.output.split("\n")[:2] == ["NAME       ORDER", "platform   100"]
    out = run("get", "gnp", "-o", "wide", state_dir=state)
    assert out.output.splitlines()[1].split() == ["platform.guardrails", "10", "all()"]
    out = run("get", "globalnetworksets", "-o", "wide", state_dir=state)
    assert "metadata-service   169.254.169.254/32" in out.output
    out = run("get", "networkpolicies", "-A", state_dir=state)
    assert "POD-SELECTOR" in out.output and "web" in out.output
    out = run("explain", "--from", "dev/tool", "--to", "prod/web-0:80", state_dir=state)
    assert "gnp:platform.guardrails" in out.output


def test_get_columns_of_the_network_policy_api_kinds(tmp_path: Path):
    state = str(tmp_path / "state")
    (tmp_path / "anp.yaml").write_text(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
        "spec: {priority: 7, subject: {namespaces: {}}}\n---\n"
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\n"
        "spec: {subject: {namespaces: {}}}\n---\n"
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\n"
        "spec: {tier: Baseline, priority: 3, subject: {namespaces: {}}}\n---\n"
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: np1, namespace: default}\n"
        "spec: {tier: default, order: 1500, selector: app == 'x'}\n")
    assert run("apply", "-f", str(tmp_path / "anp.yaml"), state_dir=state).exit_code == 0
    lines = run("get", "anp", state_dir=state).output.splitlines()
    assert lines[0].split() == ["NAME", "PRIORITY", "AGE"] and lines[1].split()[:2] == ["a", "7"]
    assert run("get", "banp", state_dir=state).output.splitlines()[0].split() == ["NAME", "AGE"]
    lines = run("get", "cnp", state_dir=state).output.splitlines()
    assert lines[0].split() == ["NAME", "TIER", "PRIORITY", "AGE"] and lines[1].split()[:3] == ["c", "Baseline", "3"]
    lines = run("get", "networkpolicies.p", "-o", "wide", state_dir=state).output.splitlines()
    assert lines[0].split() == ["NAME", "TIER", "ORDER", "SELECTOR"] and lines[1].split()[:3] == ["np1", "default", "1500"]
    assert run("get", "networkpolicies", state_dir=state).exit_code == 0  # the Kubernetes kind, which has none
