"""Flow logs on the real kernel: S1's policy in a node's table, its flow logger bound to the
node's NFLOG group, and ``podnet flows`` reading what it recorded — a denied connection names
``default/test-network-policy`` within a second, an allowed one the allowing rule, and a flood
of denied packets leaves the log bounded while the drop rule's counter stays exact."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from podnet.agent.policy import PolicyReconciler
from podnet.cli.main import cli
from podnet.dataplane.nft.flowlog import DENY_BURST, DENY_RATE
from podnet.kernel import netns
from podnet.kernel.probe import REACHED, probe
from podnet.model import NetworkPolicy
from podnet.telemetry.prom import PromTelemetry
from podnet.testing.flow_logs import running_flow_logger
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

S1 = {
    "metadata": {"name": "test-network-policy", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"project": "default"}}},
                                   {"podSelector": {"matchLabels": {"run": "client1"}}}],
                          "ports": [{"protocol": "TCP", "port": 80}]}]},
}


@pytest.fixture()
def logged(policy_store_lab: tuple[PolicyLab, Any, str]) -> Iterator[tuple[PolicyLab, str, PromTelemetry]]:
    """S1 enforced on n1 (web's node) and n1's flow logger running in a thread."""
    lab, store, state_dir = policy_store_lab
    n1 = lab.nodes["n1"].netns
    store.create(NetworkPolicy.model_validate(S1))
    assert PolicyReconciler("n1", netns=n1, state_dir=state_dir).reconcile(store.snapshot()).error is None
    telemetry = PromTelemetry(runtime=False)
    with running_flow_logger("n1", state_dir, n1, telemetry):
        yield lab, state_dir, telemetry


def flows(state_dir: str, *args: str) -> list[dict[str, Any]]:
    res = CliRunner().invoke(cli, ["--state-dir", state_dir, "flows", "-o", "json", "--last", "0", *args])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.output.splitlines() if line.strip()]


def wait_flows(state_dir: str, *args: str, timeout: float = 1.0) -> tuple[list[dict[str, Any]], float]:
    t0 = time.monotonic()
    while True:
        got = flows(state_dir, *args)
        if got or time.monotonic() - t0 > timeout:
            return got, time.monotonic() - t0
        time.sleep(0.02)


def test_denied_and_allowed_connections_name_their_policy_rule(logged: tuple[PolicyLab, str, PromTelemetry]) -> None:
    lab, sd, telemetry = logged
    web = lab.pods["default/web"]
    assert probe(lab.pods["default/client2"].netns, web.ip, 80, "TCP", 0.3)[0] not in REACHED
    got, took = wait_flows(sd, "--verdict", "DROPPED", "--from-pod", "default/client2")
    assert got and took <= 1.0, (got, took)
    drop = got[0]
    assert drop["destination"] == {"ip": web.ip, "pod": "default/web"}
    assert drop["source"]["pod"] == "default/client2" and drop["dport"] == 80 and drop["protocol"] == "TCP"
    assert drop["policies"] == ["default/test-network-policy"] and drop["direction"] == "ingress"
    assert "default deny ingress" in drop["rule"] and "default/test-network-policy" in drop["rule"]
    assert drop["hint"]  # explain's one-line hint for this pair and port

    assert probe(lab.pods["default/client1"].netns, web.ip, 80, "TCP", 1.0)[0] in REACHED
    got, took = wait_flows(sd, "--verdict", "ALLOWED", "--to-pod", "web", "-n", "default")
    assert got and took <= 1.0
    allow = got[0]
    assert allow["source"]["pod"] == "default/client1" and allow["dport"] == 80
    assert allow["policies"] == ["default/test-network-policy"] and allow["rule_index"] == 0
    assert allow["rule"] == "default/test-network-policy ingress rule 0" and allow["hint"] is None
    # filters select: no drop to port 81, none from client1
    assert flows(sd, "--verdict", "DROPPED", "--port", "81") == []
    assert flows(sd, "--verdict", "DROPPED", "--from-pod", "client1") == []
    text = CliRunner().invoke(cli, ["--state-dir", sd, "flows", "--verdict", "dropped"]).output
    assert "default/client2" in text and "DROPPED" in text and "hint:" in text


def _drop_counter(lab: PolicyLab) -> int:
    """Packets the default-deny ingress rule of n1 dropped (its nft counter)."""
    res = netns.run_in(lab.nodes["n1"].netns, ["nft", "-j", "list", "table", "inet", "podnet"], check=True)
    total = 0
    for item in json.loads(res.stdout)["nftables"]:
        rule = item.get("rule")
        if rule and "default deny ingress" in rule.get("comment", "") and rule["chain"].startswith("ingress-"):
            total += sum(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return total


def test_a_flood_of_denied_packets_leaves_the_log_bounded_and_the_counter_exact(logged: tuple[PolicyLab, str, PromTelemetry]) -> None:
    lab, sd, telemetry = logged
    web, client2 = lab.pods["default/web"], lab.pods["default/client2"]
    before = _drop_counter(lab)
    sent = 0
    t0 = time.monotonic()
    with netns.enter(client2.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        payload = b"x" * 32
        while time.monotonic() - t0 < 1.0:
            for port in range(5000, 5100):  # new UDP flows: each reaches the policy rules
                sock.sendto(payload, (web.ip, port))
            sent += 100
    finally:
        sock.close()
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    assert _drop_counter(lab) - before == sent  # the counter counts every packet
    got = flows(sd, "--verdict", "DROPPED", "--from-pod", "default/client2")
    packets = sum(r["packets"] for r in got)
    # the kernel's limit: the burst and DENY_RATE a second, however many were sent
    assert sent > 1000 and 1 <= packets <= DENY_BURST + DENY_RATE * (elapsed + 0.5), (sent, packets)
    assert len(got) <= packets
    # the logger's own counters agree with what its ring holds
    text = telemetry.exposition().decode()
    assert f'podnet_flow_log_records_total{{verdict="DROPPED"}} {float(len(got))}' in text
    assert f'podnet_flow_log_packets_total{{verdict="DROPPED"}} {float(packets)}' in text


def test_follow_prints_a_new_drop_as_it_is_recorded(logged: tuple[PolicyLab, str, PromTelemetry]) -> None:
    lab, sd, telemetry = logged
    web = lab.pods["default/web"]
    follow = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, "flows", "-f",
                               "--follow-for", "20", "--verdict", "DROPPED", "--port", "8080", "-o", "json"],
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the command has started and is at the end of the rings
        assert probe(lab.pods["default/client2"].netns, web.ip, 8080, "TCP", 0.2)[0] not in REACHED
        assert follow.stdout is not None
        line = json.loads(follow.stdout.readline())
        assert line["dport"] == 8080 and line["source"]["pod"] == "default/client2"
        assert line["policies"] == ["default/test-network-policy"]
    finally:
        follow.terminate()
        follow.wait(5)
