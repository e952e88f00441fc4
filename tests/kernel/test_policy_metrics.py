"""The policy loop's metrics against the kernel: after allowed and denied traffic, every rule
series equals the counters `nft -j list table inet podnet` shows, to the packet and byte; the
denied packets are attributed to the isolating policy; the endpoint and policy gauges equal
the store's counts; a rule changed by hand counts as drift the next read-back repairs."""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podnet.agent.policy import PolicyReconciler, cluster_state
from podnet.dataplane.nft.model import POLICY_TABLE
from podnet.dataplane.nft.render import describe_rule
from podnet.kernel.probe import REACHED, probe
from podnet.model import NetworkPolicy, Pod
from podnet.telemetry.dataplane import DataplaneMetrics
from podnet.telemetry.policy_table import register_policy_table
from podnet.telemetry.prom import PromTelemetry
from podnet.testing.policy_lab import PolicyLab

from test_nft_agent import POLICY

pytestmark = pytest.mark.kernel

@pytest.fixture()
def cluster(policy_store_lab: tuple[PolicyLab, Any, str]) -> tuple[PolicyLab, Any]:
    """The shared policy lab (web on n1; client1, client2 on n2) with test_nft_agent's policy in the store."""
    lab, store, _ = policy_store_lab
    store.create(NetworkPolicy.model_validate(POLICY))
    return lab, store


def scrape(t: PromTelemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(t.exposition().decode()) for s in f.samples}


def nft_counters(netns: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(chain, rule text, verdict) → (packets, bytes) as `nft` lists them."""
    out = subprocess.run(["ip", "netns", "exec", netns, "nft", "-j", "list", "table", "inet", "podnet"],
                         capture_output=True, text=True, check=True).stdout
    got: dict[tuple[str, str, str], tuple[int, int]] = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        counter = next((e["counter"] for e in (rule or {}).get("expr", ()) if "counter" in e), None)
        if rule is None or counter is None:
            continue
        verdict = next((k for e in reversed(rule["expr"]) for k in ("accept", "drop", "goto", "jump") if k in e), "")
        key = (rule["chain"], describe_rule(rule.get("comment", "")), verdict)
        before = got.get(key, (0, 0))
        got[key] = (before[0] + counter["packets"], before[1] + counter["bytes"])
    return got


def test_rule_counters_equal_the_kernel_and_gauges_the_store(cluster: tuple[PolicyLab, Any]) -> None:
    lab, store = cluster
    n1 = lab.nodes["n1"].netns
    t = PromTelemetry(runtime=False)
    metrics = DataplaneMetrics(t, str(POLICY_TABLE))
    reconcilers = {n: PolicyReconciler(n, netns=lab.nodes[n].netns, metrics=metrics) for n in ("n1", "n2")}
    for r in reconcilers.values():
        assert r.reconcile(store.snapshot()).error is None
    register_policy_table(t, POLICY_TABLE, n1)

    for _ in range(3):
        assert probe(lab.pods["default/client1"].netns, lab.pods["default/web"].ip, 80, "TCP", 0.5)[0] in REACHED
        assert probe(lab.pods["default/client2"].netns, lab.pods["default/web"].ip, 80, "TCP", 0.2)[0] not in REACHED

    got, kernel = scrape(t), nft_counters(n1)
    exported = {(dict(k)["chain"], dict(k)["rule"], dict(k)["verdict"]): v
                for (name, k), v in got.items() if name == "podnet_policy_rule_packets_total"}
    exported_bytes = {(dict(k)["chain"], dict(k)["rule"], dict(k)["verdict"]): v
                      for (name, k), v in got.items() if name == "podnet_policy_rule_bytes_total"}
    assert exported == {k: p for k, (p, _) in kernel.items()}
    assert exported_bytes == {k: b for k, (_, b) in kernel.items()}
    allowed = [p for (chain, rule, verdict), p in exported.items() if "web-from-client1 spec.ingress[0]" in rule]
    assert sum(allowed) >= 3  # each connection's first packet, at least
    denied = got[("podnet_policy_denied_packets_total",
                  frozenset({("policy", "default/web-from-client1"), ("direction", "ingress")}))]
    assert denied >= 3 and denied == sum(p for (chain, rule, v), p in exported.items()
                                         if v == "drop" and rule.startswith("default deny ingress"))

    pods = store.list(Pod)
    on_n1 = [p for p in pods if p.spec.node_name == "n1"]
    state = cluster_state(store.snapshot())
    selecting = {pol.ref for ep in state.pods if ep.node == "n1" for pol in state.selecting_any(ep)}
    assert got[("podnet_policy_local_endpoints", frozenset())] == len(on_n1) == 1
    assert got[("podnet_policy_active_policies", frozenset())] == len(selecting) == 1
    listed = json.loads(subprocess.run(["ip", "netns", "exec", n1, "nft", "-j", "list", "table", "inet", "podnet"],
                                       capture_output=True, text=True, check=True).stdout)["nftables"]
    kinds = Counter(next(iter(i)) for i in listed)
    assert got[("podnet_nft_rules", frozenset({("table", "inet podnet")}))] == kinds["rule"]
    assert got[("podnet_nft_chains", frozenset({("table", "inet podnet")}))] == kinds["chain"]

    # Someone deletes the table's rules by hand: the next read-back repairs it and says so.
    subprocess.run(["ip", "netns", "exec", n1, "nft", "flush", "chain", "inet", "podnet", "to-wl"], check=True)
    reconcilers["n1"].readback_every = 0.0
    assert reconcilers["n1"].reconcile(store.snapshot()).error is None
    after = scrape(t)
    table = frozenset({("table", "inet podnet")})
    assert after[("podnet_dataplane_drift_repairs_total", table)] == 1
    assert after[("podnet_dataplane_resyncs_total", table)] == 3  # each node's first pass reads back too
    assert after[("podnet_dataplane_apply_duration_seconds_count", table | {("path", "full")})] == 3
