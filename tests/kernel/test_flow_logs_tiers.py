"""Flow logs of tiered policy on the real kernel: a Calico tier guarding web, enforced on its node
from the store, the node's flow logger bound to its NFLOG groups, and ``podnet flows`` reading
what it recorded. Each connection's record names the tier, the policy (its ref: kind and
name), the rule index and the action that decided it: an Allow rule, a Deny rule, a Pass with
no tier left, and the tier's end dropping what no rule matched; then an AdminNetworkPolicy's
Allow and, past the admin tier's passing end, the BaselineAdminNetworkPolicy's Deny."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from podnet.agent.policy import PolicyReconciler
from podnet.cli.main import cli
from podnet.kernel.probe import REACHED, probe
from podnet.model import AdminNetworkPolicy, BaselineAdminNetworkPolicy, GlobalNetworkPolicy, Resource, Tier
from podnet.telemetry.prom import PromTelemetry
from podnet.testing.flow_logs import running_flow_logger
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

TIER = {"metadata": {"name": "security"}, "spec": {"order": 100}}
GUARD = {"metadata": {"name": "guard"}, "spec": {"tier": "security", "selector": "app == 'web'", "ingress": [
    {"action": "Allow", "protocol": "TCP", "source": {"selector": "run == 'client1'"}, "destination": {"ports": [80]}},
    {"action": "Deny", "protocol": "TCP", "source": {"selector": "run == 'client2'"}, "destination": {"ports": [80]}},
    {"action": "Pass", "protocol": "TCP", "destination": {"ports": [81]}}]}}
WEB = {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}}
ADMIN = {"metadata": {"name": "client1-to-web"}, "spec": {"priority": 10, "subject": WEB, "ingress": [
    {"name": "web", "action": "Allow", "ports": [{"portNumber": {"protocol": "TCP", "port": 80}}],
     "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"run": "client1"}}}}]}]}}
BASELINE = {"metadata": {"name": "default"}, "spec": {"subject": WEB, "ingress": [
    {"name": "rest", "action": "Deny", "from": [{"namespaces": {}}]}]}}


@pytest.fixture()
def guarded(policy_store_lab: tuple[PolicyLab, Any, str]) -> Iterator[tuple[PolicyLab, str]]:
    """The security tier's guard enforced on n1 (web's node), n1's flow logger in a thread."""
    yield from logged_with(policy_store_lab, [Tier.model_validate(TIER), GlobalNetworkPolicy.model_validate(GUARD)])


@pytest.fixture()
def admin(policy_store_lab: tuple[PolicyLab, Any, str]) -> Iterator[tuple[PolicyLab, str]]:
    """An AdminNetworkPolicy and the BaselineAdminNetworkPolicy guarding web, logged as above."""
    yield from logged_with(policy_store_lab, [AdminNetworkPolicy.model_validate(ADMIN),
                                              BaselineAdminNetworkPolicy.model_validate(BASELINE)])


def logged_with(policy_store_lab: tuple[PolicyLab, Any, str], objects: list[Resource]) -> Iterator[tuple[PolicyLab, str]]:
    lab, store, state_dir = policy_store_lab
    n1 = lab.nodes["n1"].netns
    for o in objects:
        store.create(o)
    assert PolicyReconciler("n1", netns=n1, state_dir=state_dir).reconcile(store.snapshot()).error is None
    with running_flow_logger("n1", state_dir, n1, PromTelemetry(runtime=False)):
        yield lab, state_dir


def flows(state_dir: str, *args: str) -> list[dict[str, Any]]:
    res = CliRunner().invoke(cli, ["--state-dir", state_dir, "flows", "-o", "json", "--last", "0", *args])
    if res.exit_code == 1 and "no flow logs for the nodes" in str(res.exception):
        return []  # the ring's first record is not written yet
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.output.splitlines() if line.strip()]


def wait_flow(state_dir: str, *args: str, timeout: float = 2.0) -> dict[str, Any]:
    """The one record ``args`` select, within ``timeout`` seconds of the connection."""
    t0 = time.monotonic()
    while not (got := flows(state_dir, *args)) and time.monotonic() - t0 < timeout:
        time.sleep(0.02)
    assert len(got) == 1, (args, got)
    return got[0]


def test_records_name_the_tier_policy_rule_and_action_that_decided(guarded: tuple[PolicyLab, str]) -> None:
    lab, sd = guarded
    web, client1, client2 = (lab.pods[f"default/{n}"] for n in ("web", "client1", "client2"))

    assert probe(client2.netns, web.ip, 80, "TCP", 0.3)[0] not in REACHED  # rule 1: Deny
    deny = wait_flow(sd, "--verdict", "DROPPED", "--port", "80", "--policy", "guard")
    assert (deny["tier"], deny["policies"], deny["rule_index"], deny["action"], deny["direction"]) == (
        "security", ["gnp:guard"], 1, "Deny", "ingress")
    assert deny["source"]["pod"] == "default/client2" and deny["destination"]["pod"] == "default/web"
    assert deny["rule"] == "gnp:guard ingress rule 1 (Deny)"

    assert probe(client1.netns, web.ip, 80, "TCP", 1.0)[0] in REACHED  # rule 0: Allow
    allow = wait_flow(sd, "--verdict", "ALLOWED", "--from-pod", "default/client1", "--tier", "security")
    assert (allow["tier"], allow["policies"], allow["rule_index"], allow["action"], allow["dport"]) == (
        "security", ["gnp:guard"], 0, "Allow", 80)

    assert probe(client2.netns, web.ip, 81, "TCP", 1.0)[0] in REACHED  # rule 2: Pass, no tier left
    passed = wait_flow(sd, "--verdict", "ALLOWED", "--port", "81")
    assert (passed["tier"], passed["policies"], passed["rule_index"], passed["action"]) == (
        "security", ["gnp:guard"], 2, "Pass")
    assert passed["source"]["pod"] == "default/client2"

    assert probe(client1.netns, web.ip, 82, "TCP", 0.3)[0] not in REACHED  # no rule: the tier's end
    end = wait_flow(sd, "--verdict", "DROPPED", "--port", "82", "--tier", "security")
    assert (end["policies"], end["rule_index"], end["action"]) == (["gnp:guard"], -1, "EndOfTier")
    assert end["rule"] == "end of tier security ingress: deny (selected by gnp:guard)"

    # the filters select: nothing of this tier under another policy or tier; the text names the tier
    assert flows(sd, "--policy", "other") == [] and flows(sd, "--tier", "default") == []
    assert len(flows(sd, "--policy", "gnp:guard")) == 4
    text = CliRunner().invoke(cli, ["--state-dir", sd, "flows", "--verdict", "DROPPED", "--port", "80"]).output
    assert "gnp:guard ingress rule 1 (Deny) [security]" in text and "default/client2" in text


def test_admin_and_baseline_records_name_their_tiers(admin: tuple[PolicyLab, str]) -> None:
    lab, sd = admin
    web, client1, client2 = (lab.pods[f"default/{n}"] for n in ("web", "client1", "client2"))
    assert probe(client1.netns, web.ip, 80, "TCP", 1.0)[0] in REACHED
    allow = wait_flow(sd, "--verdict", "ALLOWED", "--policy", "anp:client1-to-web")
    assert (allow["tier"], allow["policies"], allow["rule_index"], allow["action"]) == (
        "kube-admin", ["anp:client1-to-web"], 0, "Allow")
    assert probe(client2.netns, web.ip, 80, "TCP", 0.3)[0] not in REACHED
    deny = wait_flow(sd, "--verdict", "DROPPED", "--tier", "kube-baseline")
    assert (deny["policies"], deny["rule_index"], deny["action"]) == (["banp:default"], 0, "Deny")
    assert deny["source"]["pod"] == "default/client2"
