"""Tiered policy in the kernel: Calico tiers, GlobalNetworkPolicy, NetworkSets, AdminNetworkPolicy
and BaselineAdminNetworkPolicy compiled into the node's table. Every case is applied to real
nodes and pods, probed on every pair (TCP and UDP on two ports, ICMP), and must agree with the
engine's matrix cell by cell (what ``podnet verify`` checks); each case also names the cells
that show the semantics it is about, so agreement cannot come from a table that ignores it.
A generated corpus (the engine's tiered corpus generator, over the lab's pods) follows."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.cluster.probe import probe_matrix
from podnet.dataplane.nft.render import render
from podnet.dataplane.nft.verify import compare
from podnet.model import Resource
from podnet.model.registry import kind_for
from podnet.policy.cluster import ClusterState
from podnet.policy.matrix import Matrix, compute_matrix
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_policy_naive import tiered_cluster  # noqa: E402  (the engine corpus's generator)

pytestmark = pytest.mark.kernel

PORTS = [80, 81]
PROTOCOLS = ["TCP", "UDP", "ICMP"]
CALICO = "projectcalico.org/v3"
ANP = "policy.networking.k8s.io/v1alpha1"
# the generator's namespaces and labels, so its policies select the lab's pods
PODS = [("n0", "p0", "n1", {"app": "a"}), ("n0", "p1", "n2", {"app": "b"}), ("n1", "p2", "n1", {"app": "a", "role": "b"}),
        ("n1", "p3", "n2", {"role": "a"}), ("n2", "p4", "n1", {"app": "b"}), ("n2", "p5", "n2", {})]


def obj(api: str, kind: str, name: str, spec: dict[str, Any], namespace: str | None = None,
        labels: dict[str, str] | None = None) -> Resource:
    cls = kind_for(api, kind)
    assert cls is not None
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return cls.model_validate({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec})


@pytest.fixture(scope="module")
def lab(prefixes: Prefixes) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        for ns, name, node, labels in PODS:
            lab.add_pod(ns, name, node, labels, [("web", 80, "TCP")] if labels.get("app") == "a" else [])
        lab.namespace_labels.update({"n0": {"team": "x"}, "n1": {"team": "y"}, "n2": {}})
        yield lab
    finally:
        lab.close()


def enforce(lab: PolicyLab, state: ClusterState) -> Matrix:
    """Apply, probe every cell and hold the kernel to the engine; the engine's matrix."""
    lab.apply(state)
    # what the kernel lists back is the rendered table (no drift to repair on the next resync)
    assert all(plan.empty for plan in lab.apply(state, read_back=True).values())
    expected = compute_matrix(state, PORTS, PROTOCOLS)
    for timeout in (0.35, 1.5):  # a late answer on a busy machine is not a disagreement
        observed, results = probe_matrix(lab.probe_pods(), PORTS, PROTOCOLS, timeout=timeout, workers=256)
        report = compare(state, expected, observed, {(r.src, r.dst, r.key): r.outcome for r in results})
        if report.ok:
            break
    assert report.ok, "\n".join(d.describe() for d in report.disagreements)
    assert report.cells == 36 * 5 and report.skipped == 0
    return expected


def cell(m: Matrix, src: str, dst: str, key: str = "80/TCP") -> bool:
    return m.allowed(key, m.pods.index(src), m.pods.index(dst))


def gnp(name: str, **spec: Any) -> Resource:
    return obj(CALICO, "GlobalNetworkPolicy", name, spec)


def np(name: str, ns: str, spec: dict[str, Any]) -> Resource:
    return obj("networking.k8s.io/v1", "NetworkPolicy", name, spec, ns)


def tier(name: str, order: float, **spec: Any) -> Resource:
    return obj(CALICO, "Tier", name, {"order": order, **spec})


DENY_ALL_N0 = np("deny-all", "n0", {"podSelector": {}, "policyTypes": ["Ingress"]})


def test_pass_goes_to_the_next_tier_and_deny_before_allow_decides(lab: PolicyLab) -> None:
    sec = tier("security", 100)
    # security: traffic from team x passes to the default tier; everything else to app=a is denied
    guard = gnp("guard", tier="security", order=10, selector="app == 'a'", ingress=[
        {"action": "Pass", "source": {"namespaceSelector": "team == 'x'"}},
        {"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}}])
    allow_all = np("allow-all", "n1", {"podSelector": {}, "ingress": [{}]})
    m = enforce(lab, lab.state([guard, allow_all], tiers=[sec]))
    assert not cell(m, "n2/p4", "n1/p2")  # Deny in security beats the default tier's allow
    assert not cell(m, "n2/p4", "n1/p2", "81/TCP")  # no rule matched: the end of the tier denies
    assert cell(m, "n2/p4", "n1/p3")  # not selected by the security tier: open
    assert cell(m, "n0/p1", "n1/p2")  # passed: the default tier's NetworkPolicy allows


def test_end_of_tier_denies_only_selected_endpoints_and_log_does_not_decide(lab: PolicyLab) -> None:
    sec = tier("security", 100)
    watch = gnp("watch", tier="security", selector="app == 'b'", ingress=[
        {"action": "Log"}, {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}])
    state = lab.state([watch], tiers=[sec])
    m = enforce(lab, state)
    assert cell(m, "n1/p3", "n0/p1") and not cell(m, "n1/p3", "n0/p1", "81/TCP")  # Log went on to the Allow
    assert cell(m, "n1/p3", "n2/p5", "81/TCP")  # app!=b: not selected by the tier, open
    table = render(state, "n1", node_ips=[lab.nodes["n1"].ip])
    # the Log rule's kernel log (the flow logs, NFLOG groups, are another statement)
    logs = [r for c in table.chains.values() for r in c.rules if '"log"' in r.expr_json and '"group"' not in r.expr_json]
    assert logs and all('"limit"' in r.expr_json and "security/gnp:watch/ingress[0]" in r.expr_json for r in logs)


def test_admin_allow_overrides_a_networkpolicy_deny_and_baseline_is_the_fallback(lab: PolicyLab) -> None:
    team_y = [{"namespaces": {"matchLabels": {"team": "y"}}}]
    anp = obj(ANP, "AdminNetworkPolicy", "from-y", {"priority": 10, "subject": {"namespaces": {"matchLabels": {"team": "x"}}},
                                                   "ingress": [{"action": "Allow", "from": team_y}]})
    banp = obj(ANP, "BaselineAdminNetworkPolicy", "default", {
        "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"team": "x"}}}]}]})
    open_n2 = np("allow-x", "n2", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})
    m = enforce(lab, lab.state([DENY_ALL_N0, anp, banp, open_n2]))
    assert cell(m, "n1/p2", "n0/p0")  # ANP Allow before the NetworkPolicy's isolation
    assert not cell(m, "n2/p5", "n0/p0")  # the NetworkPolicy denies the rest
    assert not cell(m, "n0/p0", "n1/p3")  # no NetworkPolicy in n1: the baseline denies team x
    assert cell(m, "n0/p0", "n2/p4")  # a NetworkPolicy selects n2/p4 and allows: baseline not reached
    assert cell(m, "n2/p5", "n1/p3")


def test_nets_notnets_and_network_sets_are_interval_sets(lab: PolicyLab) -> None:
    p1, p4 = lab.pods["n0/p1"].ip, lab.pods["n2/p4"].ip
    node2 = ".".join(p1.split(".")[:3]) + ".0/24"  # n0/p1, n1/p3 and n2/p5 live there
    gset = obj(CALICO, "GlobalNetworkSet", "blocked", {"nets": [f"{p4}/32"]}, labels={"kind": "blocked"})
    guard = gnp("egress-guard", selector="all()", types=["Egress"], egress=[
        {"action": "Deny", "destination": {"selector": "kind == 'blocked'"}},
        {"action": "Deny", "destination": {"nets": [node2], "notNets": [f"{p1}/32"]}},
        {"action": "Allow"}])
    state = lab.state([guard], network_sets=[gset])
    m = enforce(lab, state)
    assert not cell(m, "n0/p0", "n2/p4")  # the GlobalNetworkSet's address, matched by its labels
    assert not cell(m, "n0/p0", "n1/p3") and not cell(m, "n0/p0", "n2/p5", "ICMP")  # in nets
    assert cell(m, "n0/p0", "n0/p1") and cell(m, "n0/p0", "n1/p2")  # notNets; outside nets
    sets = render(state, "n1", node_ips=[lab.nodes["n1"].ip]).sets
    assert any(s.interval and n.startswith("ent-") for n, s in sets.items())


def test_kubernetes_only_tables_are_unchanged_by_the_tier_compiler(lab: PolicyLab) -> None:
    """No tiered kind: no tier chain, no mark; the Kubernetes-only layout."""
    state = lab.state([DENY_ALL_N0])
    table = render(state, "n1", node_ips=[lab.nodes["n1"].ip])
    assert not any(n.startswith(("tw-", "tp-", "tq-")) for n in table.chains)
    assert not any('"mangle"' in r.expr_json for c in table.chains.values() for r in c.rules)
    enforce(lab, state)


@pytest.mark.parametrize("seed", range(60))
def test_generated_tiered_corpus_agrees_with_the_engine(lab: PolicyLab, seed: int) -> None:
    c = tiered_cluster(seed)
    for ns in c["namespaces"]:
        lab.namespace_labels[ns.metadata.name] = dict(ns.metadata.labels)
    enforce(lab, lab.state(c["policies"], tiers=c["tiers"], network_sets=c["netsets"]))
