"""Flow logs of tiered policy, without the kernel: the tier chains and tiered policy chains carry
the same NFLOG statements as the Kubernetes table (groups, rate limits, prefix encoding), each
naming the tier, the policy (kind and namespace in its ref), the rule index and the action that
decided; the identities read back, old records still read, and ``podnet flows`` filters by
tier and policy."""
from __future__ import annotations

import json
from typing import Any

from podnet.cli.flows_cmd import policy_matches
from podnet.dataplane.nft.flowlog import (
    DEFAULT_DENY,
    DENY_BURST,
    DENY_RATE,
    GROUP_ALLOWED,
    GROUP_DROPPED,
    PREFIX_MAX,
    RuleId,
    default_allow_id,
    deny_rule_id,
    denying_rule_id,
    is_flow_log,
    passed_rule_id,
    without_flow_logs,
)
from podnet.dataplane.nft.model import NftTable
from podnet.dataplane.nft.render import render
from podnet.dataplane.nft.stats import denied_by
from podnet.dataplane.nft.tiers import PASS_INDEX_MAX, pass_code, tiered_policy_chain_name
from podnet.model import Namespace, Pod
from podnet.model.registry import kind_for
from podnet.policy.cluster import ClusterState
from podnet.telemetry.flows import FlowRecord

CALICO = "projectcalico.org/v3"
ANP = "policy.networking.k8s.io/v1alpha1"


def obj(api: str, kind: str, name: str, spec: dict[str, Any], namespace: str | None = None) -> Any:
    cls = kind_for(api, kind)
    assert cls is not None
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return cls.model_validate({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec})


def pod(name: str, ns: str, ip: str, labels: dict[str, str]) -> Pod:
    return Pod.model_validate({"metadata": {"name": name, "namespace": ns, "labels": labels},
                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
                               "status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.0.1"}})


def tiered_state() -> ClusterState:
    """web (guarded by a Calico tier and a Kubernetes policy), db (an AdminNetworkPolicy only)."""
    pods = [pod("web", "shop", "10.244.1.2", {"app": "web"}), pod("db", "shop", "10.244.1.3", {"app": "db"}),
            pod("client", "shop", "10.244.1.4", {"run": "client"})]
    namespaces = [Namespace.model_validate({"metadata": {"name": "shop"}})]
    tier = obj(CALICO, "Tier", "security", {"order": 100})
    guard = obj(CALICO, "GlobalNetworkPolicy", "guard", {"tier": "security", "selector": "app == 'web'", "ingress": [
        {"action": "Allow", "protocol": "TCP", "source": {"selector": "run == 'client'"}, "destination": {"ports": [80]}},
        {"action": "Deny", "protocol": "TCP", "destination": {"ports": [22, 23]}},
        {"action": "Pass", "protocol": "TCP", "destination": {"ports": [81]}},
        {"action": "Log"}]})
    np = obj("networking.k8s.io/v1", "NetworkPolicy", "web-81", {
        "podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 81}]}]}, "shop")
    anp = obj(ANP, "AdminNetworkPolicy", "admin-db", {"priority": 10,
        "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}},
        "ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]})
    return ClusterState.build(namespaces, pods, [guard, np, anp], tiers=[tier])


def flow_logs(table: NftTable) -> list[tuple[str, list[dict[str, Any]], RuleId]]:
    """(chain, expressions, identity) of every rule with a flow-log statement."""
    out = []
    for name, chain in table.chains.items():
        for rule in chain.rules:
            expr = json.loads(rule.expr_json)
            logs = [e["log"] for e in expr if is_flow_log(e)]
            if logs:
                rid = RuleId.parse(logs[0]["prefix"])
                assert rid is not None and logs[0]["group"] == (GROUP_ALLOWED if rid.verdict == "ALLOWED" else GROUP_DROPPED)
                out.append((name, expr, rid))
    return out


def test_identities_of_every_action_read_back() -> None:
    cases = [denying_rule_id("calico:shop/guard", "ingress", 3, "security"),
             passed_rule_id("anp:from-y", "egress", 0, "kube-admin"),
             deny_rule_id(("gnp:guard", "gnp:other"), "ingress", "security"),
             default_allow_id(("banp:default",), "ingress", "kube-baseline")]
    assert [c.action for c in cases] == ["Deny", "Pass", "EndOfTier", "Default"]
    assert [c.prefix() for c in cases] == ["pn Di security 3 calico:shop/guard", "pn Aop kube-admin 0 anp:from-y",
                                           "pn Di security -1 gnp:guard,gnp:other", "pn Ai kube-baseline -1 banp:default"]
    for c in cases:
        assert RuleId.parse(c.prefix()) == c
    assert [c.describe() for c in cases] == [
        "calico:shop/guard ingress rule 3 (Deny)", "anp:from-y egress rule 0 (Pass, no tier left)",
        "end of tier security ingress: deny (selected by gnp:guard, gnp:other)",
        "end of tier kube-baseline ingress: pass, no tier left (selected by banp:default)"]
    assert RuleId.parse("pn Aix default 0 a/b") is None  # an action letter that is not one
    long = passed_rule_id("calico:" + "n" * 60 + "/" + "p" * 60, "ingress", 7, "a-tier-with-a-long-name")
    back = RuleId.parse(long.prefix())
    assert len(long.prefix()) <= PREFIX_MAX and back is not None and back.cut and back.action == "Pass"


def test_records_written_before_actions_existed_still_read() -> None:
    old = {"time": 1.0, "last": 1.0, "node": "n1", "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 80,
           "protocol": "TCP", "verdict": "DROPPED", "direction": "ingress", "tier": "k8s", "policies": ["default/p"],
           "rule_index": -1, "rule": "default deny ingress (isolated by default/p)", "packets": 1, "bytes": 60}
    assert (FlowRecord.from_dict(old).action, FlowRecord.from_dict(old).tier) == ("EndOfTier", "default")
    assert FlowRecord.from_dict({**old, "verdict": "ALLOWED", "rule_index": 0}).action == "Allow"


def test_every_tiered_decision_carries_its_flow_log() -> None:
    table = render(tiered_state(), "n1")
    logs = flow_logs(table)
    by_action: dict[str, list[RuleId]] = {}
    for _, _, rid in logs:
        by_action.setdefault(rid.action, []).append(rid)
    guard_in = tiered_policy_chain_name("gnp:guard", "ingress")
    # Allow: on the allowing rule, after its counter, before its accept (each new connection once)
    allow = [(c, e) for c, e, r in logs if r.action == "Allow" and r.tier == "security"]
    assert [c for c, _ in allow] == [guard_in]
    kinds = [next(iter(x)) for x in allow[0][1]]
    assert kinds[-3:] == ["counter", "log", "accept"] and "limit" not in kinds
    # the default tier's Kubernetes policy, in the tiered table: tier "default", its own rule 0
    assert RuleId("default", ("shop/web-81",), "ingress", 0, "ALLOWED") in by_action["Allow"]
    # Deny: one rate-limited log rule with the same matches just before each counting drop rule
    chain = [json.loads(r.expr_json) for r in table.chains[guard_in].rules]
    drops = [i for i, e in enumerate(chain) if {"drop": None} in e]
    assert drops
    for i in drops:
        before = chain[i - 1]
        assert before[-2] == {"limit": {"rate": DENY_RATE, "burst": DENY_BURST, "per": "second"}}
        assert before[:-2] == chain[i][:-2]  # the same matches (the drop rule: + counter, drop)
        deny = RuleId.parse(before[-1]["log"]["prefix"])
        assert deny == RuleId("security", ("gnp:guard",), "ingress", 1, "DROPPED") and deny.action == "Deny"
    # the end of the security tier drops web's other traffic, named by the tier's policies
    assert RuleId("security", ("gnp:guard",), "ingress", DEFAULT_DENY, "DROPPED") in by_action["EndOfTier"]
    # the default tier's end: Kubernetes' default deny, worded as always
    default_end = [r for r in by_action["EndOfTier"] if r.tier == "default"]
    assert [r.describe() for r in default_end] == ["default deny ingress (isolated by shop/web-81)"]
    # db: the admin tier's Pass with no tier left, and the admin tier's passing end, both allowed
    assert RuleId("kube-admin", ("anp:admin-db",), "ingress", 0, "ALLOWED", action="Pass") in by_action["Pass"]
    assert RuleId("kube-admin", ("anp:admin-db",), "ingress", DEFAULT_DENY, "ALLOWED") in by_action["Default"]
    # every identity names a tier and policies the state has
    state = tiered_state()
    refs = {p.ref for p in state.policies}
    assert all(set(r.policies) <= refs and r.tier in {"security", "default", "kube-admin"} for _, _, r in logs)


def test_a_pass_carries_its_rule_index_to_the_last_tier() -> None:
    """web's Pass (rule 2) leads to the default tier: no Pass log (that tier decides); db's
    admin-tier Pass has no tier left: its tier chain logs it by the index in the mark."""
    table = render(tiered_state(), "n1")
    guard = [json.loads(r.expr_json) for r in table.chains[tiered_policy_chain_name("gnp:guard", "ingress")].rules]
    passing = [e for e in guard if {"return": None} in e]
    assert len(passing) == 1 and str(pass_code(2)) in json.dumps(passing[0])
    pass_logs = [(c, e) for c, e, r in flow_logs(table) if r.action == "Pass"]
    assert [r.policies for _, _, r in flow_logs(table) if r.action == "Pass"] == [("anp:admin-db",)]
    (_, expr), = pass_logs
    assert expr[0] == {"match": {"op": "==", "left": {"&": [{"meta": {"key": "mark"}}, pass_code(PASS_INDEX_MAX)]},
                                 "right": pass_code(0)}}
    assert pass_code(300) == pass_code(PASS_INDEX_MAX)  # past the field: logged without its index


def test_without_flow_logs_a_tiered_table_keeps_its_verdicts_and_its_log_rule() -> None:
    table = render(tiered_state(), "n1")
    off = without_flow_logs(table)
    on_rules = [r for c in table.chains.values() for r in c.rules]
    off_rules = [r for c in off.chains.values() for r in c.rules]
    assert not flow_logs(off)
    deny_logs = [r for _, e, r in flow_logs(table) if r.verdict == "DROPPED"]
    assert len(off_rules) == len(on_rules) - len(deny_logs)
    # the Calico Log rule (the kernel log, no group) stays
    assert any('"level":"info"' in r.expr_json for r in off_rules)
    verdicts = [v for v in ("accept", "drop", "return", "goto", "jump")]
    for v in verdicts:
        assert sum(f'"{v}"' in r.expr_json for r in on_rules) == sum(f'"{v}"' in r.expr_json for r in off_rules)


def test_flows_policy_filter_takes_the_ref_the_ref_without_kind_or_the_name() -> None:
    assert policy_matches("gnp:guard", "gnp:guard") and policy_matches("gnp:guard", "guard")
    assert policy_matches("calico:shop/guard", "shop/guard") and policy_matches("calico:shop/guard", "guard")
    assert policy_matches("default/test-network-policy", "test-network-policy")
    assert not policy_matches("gnp:guard", "gnp:guar") and not policy_matches("shop/guard", "other/guard")


def test_every_tiered_drop_is_attributed_in_the_denied_packets_metric() -> None:
    """The metric reads the drop rules' comments: a tier's end by the tier's selecting policies,
    a Deny rule by its policy, the default tier's end as Kubernetes' default deny."""
    table = render(tiered_state(), "n1")
    drops = {denied_by(r.comment, name) for name, c in table.chains.items() for r in c.rules
             if '{"drop":null}' in r.expr_json and name.startswith(("tw-", "tp-", "tq-"))}
    assert drops == {("gnp:guard", "ingress"), ("shop/web-81", "ingress")}
    ends = [r.comment for c in table.chains.values() for r in c.rules if r.expr_json == '[{"counter":null},{"drop":null}]']
    assert any("end of tier security ingress: deny (selected by gnp:guard)" in c for c in ends)
    assert any("default deny ingress (isolated by shop/web-81)" in c for c in ends)
