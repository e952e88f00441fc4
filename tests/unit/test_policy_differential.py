"""Differential fuzzing of the policy engine: random clusters of NetworkPolicies (hypothesis)
decided by podnet's engine and by a naive evaluator written from the API reference alone
(podnet/testing/naive_netpol.py) must agree on every cell. Bounded here;
PODNET_FUZZ_EXAMPLES=10000 runs the full count. The kernel joins in
tests/faults/test_policy_differential_kernel.py."""
from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from podnet.testing.policy_fuzz import cluster, engine_state, engine_table, mismatches, naive_table

EXAMPLES = int(os.environ.get("PODNET_FUZZ_EXAMPLES", "300"))
pytestmark = pytest.mark.timeout(0 if EXAMPLES > 300 else 300)  # the full count runs for a while
IPS = [f"10.244.{1 + i % 2}.{2 + i}" for i in range(6)]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster())
def test_engine_and_naive_evaluator_agree(case: tuple[dict[str, dict[str, str]], list[dict[str, str]],
                                                      list[dict[str, Any]]]) -> None:
    ns_labels, pod_labels, policies = case
    naive = naive_table(ns_labels, pod_labels, policies)
    engine = engine_table(engine_state(ns_labels, pod_labels, policies, IPS))
    assert mismatches(engine, naive) == []


def test_the_naive_evaluator_knows_the_spec_corners() -> None:
    """A few cases spelled out, so the reference itself is checked against the spec."""
    from podnet.testing.naive_netpol import NaivePod, allowed

    a, b = NaivePod("x", "a", {"pod": "a"}, (("http", 80, "TCP"),)), NaivePod("y", "b", {"pod": "b"})
    ns = {"x": {"ns": "x"}, "y": {"ns": "y"}}

    def pol(spec: dict[str, Any], namespace: str = "x") -> dict[str, Any]:
        return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}

    deny_in = pol({"podSelector": {}, "policyTypes": ["Ingress"]})
    assert not allowed(b, a, 80, "TCP", [deny_in], ns) and allowed(a, b, 80, "TCP", [deny_in], ns)
    named = pol({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})
    assert allowed(b, a, 80, "TCP", [named], ns) and not allowed(b, a, 81, "TCP", [named], ns)
    assert not allowed(b, a, None, "ICMP", [named], ns)
    pod_only = pol({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    assert not allowed(b, a, 80, "TCP", [pod_only], ns)  # podSelector alone: the policy's namespace only
    both = pol({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                                          "podSelector": {"matchLabels": {"pod": "a"}}}]}]})
    assert not allowed(b, a, 80, "TCP", [both], ns)  # AND: namespace y, but not pod a
    egress_only = pol({"podSelector": {}, "egress": [{}]}, "y")  # policyTypes default: Ingress + Egress
    assert not allowed(a, b, 80, "TCP", [egress_only], ns)
