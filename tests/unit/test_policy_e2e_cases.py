"""Cases shaped like the Kubernetes e2e NetworkPolicy suite: namespaces x, y, z with pods a, b, c.

Every pod serves 80 and 81 on TCP, UDP and SCTP with named ports ``serve-80-tcp`` and so on;
namespaces are labelled ``ns=<name>``, pods ``pod=<name>``. The expected truth tables are
written the way the e2e suite writes them (start from all allowed, then expect denials, a pod
always reaches itself), and the matrix, the reference evaluator and explain must all agree.
"""
from __future__ import annotations

from typing import Any

import pytest

from podnet.policy.cluster import ClusterState
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import compute_matrix, reference_matrix

from test_policy_support import netpol, ns, pod

NS = ["x", "y", "z"]
PODS = ["a", "b", "c"]
KEYS = [f"{n}/{p}" for n in NS for p in PODS]
IP = {f"{n}/{p}": f"10.0.{i}.{j + 10}" for i, n in enumerate(NS) for j, p in enumerate(PODS)}


def cluster(*policies) -> ClusterState:
    ports = [{"containerPort": port, "name": f"serve-{port}-{proto.lower()}", "protocol": proto}
             for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")]
    pods = [pod(n, p, {"pod": p}, IP[f"{n}/{p}"], ports=ports) for n in NS for p in PODS]
    return ClusterState.build([ns(n, ns=n) for n in NS], pods, policies)


class Reachability:
    def __init__(self, default: bool = True) -> None:
        self.cells = {(s, d): default for s in KEYS for d in KEYS}

    def expect(self, src: str, dst: str, ok: bool) -> Reachability:
        for s in KEYS:
            for d in KEYS:
                if (src == "*" or s == src or s.startswith(src.rstrip("*"))) and \
                        (dst == "*" or d == dst or d.startswith(dst.rstrip("*"))):
                    self.cells[(s, d)] = ok
        return self

    def table(self) -> list[list[bool]]:
        return [[self.cells[(s, d)] or s == d for d in KEYS] for s in KEYS]


def check(state: ClusterState, expected: Reachability, port: int = 80, proto: str = "TCP") -> None:
    key = f"{port}/{proto}"
    fast = compute_matrix(state, [port], [proto])
    assert list(fast.pods) == KEYS
    ref = reference_matrix(state, [port], [proto])
    assert fast.rows == ref.rows
    want = expected.table()
    got = fast.table(key)
    wrong = [(KEYS[i], KEYS[j]) for i in range(9) for j in range(9) if got[i][j] != want[i][j]]
    assert not wrong, f"{key}: cells differ (from, to): {wrong}"
    for i, s in enumerate(KEYS):
        for j, d in enumerate(KEYS):
            assert evaluate(state, state.endpoint(s), state.endpoint(d), port, proto).allowed == want[i][j]


def policy(namespace: str, name: str, spec: dict[str, Any]):
    return netpol(namespace, name, spec)


POD_A = {"matchLabels": {"pod": "a"}}


def test_default_deny_ingress():
    st = cluster(policy("x", "deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    check(st, Reachability().expect("*", "x/*", False))


def test_default_deny_all():
    st = cluster(policy("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    check(st, Reachability().expect("*", "x/*", False).expect("x/*", "*", False))


def test_allow_ingress_from_all_namespaces():
    st = cluster(policy("x", "allow-all-ns", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}))
    check(st, Reachability())


def test_allow_only_from_a_different_namespace_by_namespace_selector():
    st = cluster(policy("x", "allow-ns-y", {"podSelector": POD_A,
                                            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("y/*", "x/a", True))


def test_pod_selector_with_match_expressions():
    st = cluster(policy("x", "allow-b", {"podSelector": POD_A, "ingress": [{"from": [{"podSelector": {"matchExpressions": [
        {"key": "pod", "operator": "In", "values": ["b"]}]}}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("x/b", "x/a", True))


def test_namespace_selector_match_expressions_on_the_default_name_label():
    st = cluster(policy("x", "allow-y", {"podSelector": POD_A, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["y"]}]}}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("y/*", "x/a", True))


def test_pod_and_namespace_selector_in_one_peer():
    st = cluster(policy("x", "and", {"podSelector": POD_A, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
         "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("y/b", "x/a", True).expect("z/b", "x/a", True))


def test_ports_numeric_and_named():
    st = cluster(policy("x", "port-81", {"podSelector": POD_A, "ingress": [{"ports": [{"port": 81}]}]}))
    check(st, Reachability().expect("*", "x/a", False), 80)
    check(st, Reachability(), 81)
    st = cluster(policy("x", "named", {"podSelector": POD_A, "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}))
    check(st, Reachability(), 80)
    check(st, Reachability().expect("*", "x/a", False), 81)


def test_named_port_from_one_namespace():
    st = cluster(policy("x", "ns-named", {"podSelector": POD_A, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}],
                                                                           "ports": [{"port": "serve-80-tcp"}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("y/*", "x/a", True), 80)
    check(st, Reachability().expect("*", "x/a", False), 81)


def test_udp_only_policy_blocks_tcp():
    st = cluster(policy("x", "udp-81", {"podSelector": POD_A, "ingress": [{"ports": [{"port": 81, "protocol": "UDP"}]}]}))
    check(st, Reachability().expect("*", "x/a", False), 81, "TCP")
    check(st, Reachability(), 81, "UDP")
    check(st, Reachability().expect("*", "x/a", False), 81, "SCTP")


def test_any_port_on_one_protocol():
    st = cluster(policy("x", "sctp-any", {"podSelector": POD_A, "ingress": [{"ports": [{"protocol": "SCTP"}]}]}))
    check(st, Reachability(), 80, "SCTP")
    check(st, Reachability().expect("*", "x/a", False), 80, "TCP")


def test_end_port_range():
    st = cluster(policy("x", "range", {"podSelector": POD_A, "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]}))
    check(st, Reachability().expect("*", "x/a", False), 80)
    check(st, Reachability(), 81)


def test_egress_to_one_pod_by_pod_and_namespace_selector():
    st = cluster(policy("x", "egress", {"podSelector": POD_A, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": POD_A}]},
        {"ports": [{"port": 53, "protocol": "UDP"}]}]}))
    check(st, Reachability().expect("x/a", "*", False).expect("x/a", "y/a", True))


def test_egress_to_a_cidr_block_and_except():
    st = cluster(policy("x", "cidr", {"podSelector": POD_A, "policyTypes": ["Egress"],
                                      "egress": [{"to": [{"ipBlock": {"cidr": f"{IP['y/b']}/32"}}]}]}))
    check(st, Reachability().expect("x/a", "*", False).expect("x/a", "y/b", True))
    st = cluster(policy("x", "cidr-except", {"podSelector": POD_A, "policyTypes": ["Egress"],
                                             "egress": [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24", "except": [f"{IP['y/b']}/32"]}}]}]}))
    check(st, Reachability().expect("x/a", "*", False).expect("x/a", "y/*", True).expect("x/a", "y/b", False))


def test_ingress_allow_all_takes_precedence_over_narrower_policy():
    narrow = policy("x", "narrow", {"podSelector": POD_A, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    check(cluster(narrow), Reachability().expect("*", "x/a", False).expect("x/b", "x/a", True))
    allow_all = policy("x", "allow-all", {"podSelector": POD_A, "ingress": [{}]})
    check(cluster(narrow, allow_all), Reachability())


def test_client_side_egress_denial_wins_over_server_allow():
    allow = policy("x", "allow-all-in", {"podSelector": POD_A, "ingress": [{}]})
    deny = policy("y", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
    check(cluster(allow, deny), Reachability().expect("y/*", "*", False))


def test_ingress_and_egress_together():
    st = cluster(policy("x", "both", {"podSelector": POD_A, "policyTypes": ["Ingress", "Egress"],
                                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
                                      "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]}))
    check(st, Reachability().expect("*", "x/a", False).expect("x/b", "x/a", True)
          .expect("x/a", "*", False).expect("x/a", "z/*", True))


@pytest.mark.parametrize("types,ingress_isolated,egress_isolated", [
    (None, True, True), (["Ingress"], True, False), (["Egress"], False, True)])
def test_policy_types_decide_isolation(types, ingress_isolated, egress_isolated):
    spec: dict[str, Any] = {"podSelector": POD_A, "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "zzz"}}}]}]}
    if types:
        spec["policyTypes"] = types
    expected = Reachability()
    if ingress_isolated:
        expected.expect("*", "x/a", False)
    if egress_isolated:
        expected.expect("x/a", "*", False)
    check(cluster(policy("x", "types", spec)), expected)
