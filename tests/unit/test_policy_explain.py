"""Explanations: the scenarios' policies (S1-S5) explained down to rule, peer, port and fix."""
from __future__ import annotations

import json

from podnet.policy.cluster import ClusterState
from podnet.policy.evaluate import evaluate
from podnet.policy.render import render_verdict

from test_policy_support import netpol, ns, pod

S1_POLICY = {
    "podSelector": {"matchLabels": {"app": "web"}},
    "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"project": "default"}}},
                          {"podSelector": {"matchLabels": {"run": "client1"}}}],
                 "ports": [{"protocol": "TCP", "port": 80}]}],
}


def s1_state() -> ClusterState:
    pods = [pod("default", "web", {"app": "web"}, "10.244.1.2", ports=[{"containerPort": 80}]),
            pod("default", "client1", {"run": "client1"}, "10.244.1.3"),
            pod("default", "client2", {"run": "client2"}, "10.244.1.4")]
    return ClusterState.build([ns("default")], pods, [netpol("default", "test-network-policy", S1_POLICY)])


def explain(st: ClusterState, src: str, dst: str, port: int | None, proto: str = "TCP"):
    return evaluate(st, st.endpoint(src), st.endpoint(dst), port, proto)


def test_s1_client1_allowed_client2_denied_icmp_denied():
    st = s1_state()
    v = explain(st, "default/client1", "default/web", 80)
    assert v.allowed
    assert v.ingress.isolated and v.ingress.policies == ("default/test-network-policy",)
    assert [c.rule.provenance.describe() for c in v.ingress.allowed_by] == ["ingress rule 0 of default/test-network-policy"]
    assert not v.egress.isolated

    v = explain(st, "default/client2", "default/web", 80)
    assert not v.allowed
    text = render_verdict(v)
    assert ("ingress rule 0, peer 0 of default/test-network-policy" in [p.provenance.describe() for m in v.ingress.misses
                                                                         for p in m.peers])
    assert ("namespaceSelector project=default matches no namespace (namespace default has labels "
            "kubernetes.io/metadata.name=default)") in text
    assert "podSelector run=client1 does not match default/client2 (labels run=client2)" in text
    assert v.fixes and "project=default" in v.fixes[0]

    for who in ("default/client1", "default/client2"):
        v = explain(st, who, "default/web", None, "ICMP")
        assert not v.allowed
        assert any("ICMP is allowed only by a rule without ports" in r for m in v.ingress.misses for r in m.reasons())


def test_s1_port_miss_names_the_allowed_ports():
    v = explain(s1_state(), "default/client1", "default/web", 443)
    assert not v.allowed
    assert v.nearest_misses[0].reasons() == ["port 443/TCP is not in [80/TCP]"]
    assert v.fixes == ("add {protocol: TCP, port: 443} to ports of spec.ingress[0] of default/test-network-policy",)


def test_s1_json_form():
    data = explain(s1_state(), "default/client2", "default/web", 80).to_dict()
    json.dumps(data)
    assert data["allowed"] is False and data["verdict"] == "denied"
    assert data["from"]["pod"] == "default/client2" and data["to"]["pod"] == "default/web"
    assert data["port"] == 80 and data["protocol"] == "TCP"
    miss = data["ingress"]["misses"][0]
    assert miss["rule"]["policy"] == "default/test-network-policy" and miss["rule"]["rule"] == 0
    assert miss["peers"][0]["provenance"]["field"] == "spec.ingress[0].from[0]"
    assert data["egress"]["isolated"] is False


def test_s2_namespace_isolation():
    pods = [pod("default", "web", {"app": "web"}, "10.244.1.2"), pod("default", "client", {"run": "client"}, "10.244.1.3"),
            pod("test", "web", {"app": "web"}, "10.244.2.2"), pod("test", "client", {"run": "client"}, "10.244.2.3")]
    pol = netpol("default", "deny-from-other-namespaces",
                 {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]})
    st = ClusterState.build([ns("default"), ns("test")], pods, [pol])
    v = explain(st, "test/client", "default/web", 80)
    assert not v.allowed
    assert "only selects pods in namespace default; test/client is in test" in render_verdict(v)
    assert "add a namespaceSelector to the same peer" in v.fixes[0]
    assert explain(st, "test/client", "test/web", 80).allowed
    assert explain(st, "default/client", "default/web", 80).allowed


def test_s3_egress_lockdown_with_dns():
    pods = [pod("default", "app", {"app": "x"}, "10.244.1.2"),
            pod("default", "surfer", {"networking/allow-internet-egress": "true"}, "10.244.1.3"),
            pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.244.9.2")]
    deny = netpol("default", "default-deny-all-egress", {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]}]})
    internet = netpol("default", "internet-egress", {"podSelector": {"matchLabels": {"networking/allow-internet-egress": "true"}},
                                                     "egress": [{}], "policyTypes": ["Egress"]})
    namespaces = [ns("default"), ns("kube-system", **{"networking/namespace": "kube-system"})]
    st = ClusterState.build(namespaces, pods, [deny, internet])
    assert explain(st, "default/app", "kube-system/coredns", 53, "UDP").allowed
    assert explain(st, "default/app", "8.8.8.8", 53, "TCP").allowed
    v = explain(st, "default/app", "8.8.8.8", 443)
    assert not v.allowed and v.egress.misses[0].reasons() == ["port 443/TCP is not in [53/TCP, 53/UDP]"]
    assert explain(st, "default/surfer", "8.8.8.8", 443).allowed
    assert explain(st, "default/surfer", "8.8.8.8", None, "ICMP").allowed
    narrowed = netpol("default", "default-deny-all-egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"networking/namespace": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]}]})
    st = ClusterState.build(namespaces, pods, [narrowed, internet])
    assert explain(st, "default/app", "kube-system/coredns", 53, "UDP").allowed
    v = explain(st, "default/app", "8.8.8.8", 53, "UDP")
    assert not v.allowed
    assert "is not a pod; only an ipBlock peer matches it" in render_verdict(v)


def s4_state(extra_policies=()):
    namespaces = [ns("default"), ns("cs1", name="cs1"), ns("cs2", name="cs2"), ns("cs3")]
    pods = [pod("default", "web", {"app": "web"}, "10.244.1.2"),
            pod("default", "keyed", {"access": "true"}, "10.244.1.3"),
            pod("cs1", "client", {"access": "true"}, "10.244.2.2"),
            pod("cs2", "client", {}, "10.244.3.2"),
            pod("cs3", "client", {}, "10.244.4.2")]
    return ClusterState.build(namespaces, pods, list(extra_policies))


def test_s4_pod_label_case_explained_with_the_fix():
    pol = netpol("default", "pod-label-allow", {"policyTypes": ["Ingress"], "podSelector": {},
                                               "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]})
    st = s4_state([pol])
    v = explain(st, "cs1/client", "default/web", 80)
    assert not v.allowed
    text = render_verdict(v)
    assert "podSelector access=true only selects pods in namespace default; cs1/client is in cs1" in text
    assert "add a namespaceSelector to the same peer" in v.fixes[0]
    assert "kubernetes.io/metadata.name: cs1" in v.fixes[0]
    assert explain(st, "default/keyed", "default/web", 80).allowed


def test_s4_zoo():
    deny_both = netpol("default", "deny-all", {"podSelector": {"matchLabels": {"access": "true"}},
                                               "policyTypes": ["Ingress", "Egress"], "ingress": None, "egress": None})
    st = s4_state([deny_both])
    v = explain(st, "default/web", "default/keyed", 80)
    assert not v.allowed and "has no ingress rules: all ingress is denied" in v.ingress.note
    assert not explain(st, "default/keyed", "default/web", 80).allowed
    assert explain(st, "default/web", "cs2/client", 80).allowed

    allow_all = netpol("cs1", "allow-all", {"podSelector": {}, "ingress": [{}], "egress": [{}],
                                             "policyTypes": ["Egress", "Ingress"]})
    deny_cs1 = netpol("cs1", "deny-all-egress", {"podSelector": {}, "policyTypes": ["Egress", "Ingress"]})
    st = s4_state([allow_all, deny_cs1])
    assert explain(st, "cs1/client", "8.8.8.8", 80).allowed  # additive: allow-all wins

    ipblock = netpol("default", "deny-all-except-ipblock", {"podSelector": {}, "policyTypes": ["Egress", "Ingress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.94.134/32"]}}]}]})
    st = s4_state([ipblock])
    assert explain(st, "default/web", "192.168.94.1", 80).allowed
    v = explain(st, "default/web", "192.168.94.134", 80)
    assert not v.allowed and "192.168.94.134 is removed by except 192.168.94.134/32" in render_verdict(v)

    by_name = netpol("default", "namespace-allow", {"policyTypes": ["Ingress"], "podSelector": {},
                                                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "cs1"}}}]}]})
    in_list = netpol("default", "namespace-allow-in", {"policyTypes": ["Ingress"], "podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "name", "operator": "In", "values": ["cs1", "cs2"]}]}}]}]})
    st = s4_state([by_name])
    assert explain(st, "cs1/client", "default/web", 80).allowed
    v = explain(st, "cs2/client", "default/web", 80)
    assert not v.allowed and "does not match namespace cs2 (labels kubernetes.io/metadata.name=cs2,name=cs2); it matches cs1" \
        in render_verdict(v)
    st = s4_state([in_list])
    assert explain(st, "cs2/client", "default/web", 80).allowed
    assert not explain(st, "cs3/client", "default/web", 80).allowed


def test_always_allowed_reasons():
    st = s4_state([netpol("default", "d", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})])
    v = explain(st, "default/web", "default/web", 80)
    assert v.allowed and v.always == "a pod can always reach itself"
    v = explain(st, "192.168.0.1", "default/web", 10250)
    assert v.allowed and "own node" in v.always


def test_order_of_arrival_does_not_change_the_explanation():
    import random
    st = s4_state()
    pols = [netpol("default", f"p{i}", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"k": str(i)}}}]}]})
            for i in range(5)]
    base = s4_state(pols)
    want = explain(base, "cs1/client", "default/web", 80).to_dict()
    for seed in range(5):
        shuffled = pols[:]
        random.Random(seed).shuffle(shuffled)
        assert explain(s4_state(shuffled), "cs1/client", "default/web", 80).to_dict() == want
    assert st is not None
