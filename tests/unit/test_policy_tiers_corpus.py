"""A generated corpus of tiered clusters (every kind, tiers with and without order, every
action, peers by label, namespace, address and network set): the naive evaluator written for
the tests, the engine's reference walk, ``evaluate`` and the class-based matrix agree on every
pair, port and protocol."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import compute_matrix
from podnet.policy.walk import allowed

from test_policy_naive import Naive, thing, tiered_cluster

PORTS = [80, 81, 443]
PROTOCOLS = ["TCP", "UDP", "ICMP"]
EXTERNAL = ["8.8.8.8", "10.0.9.9"]


def build(seed: int) -> tuple[ClusterState, Naive, dict]:
    c = tiered_cluster(seed)
    state = ClusterState.build(c["namespaces"], c["pods"], c["policies"], tiers=c["tiers"],
                               network_sets=c["netsets"], nodes=c["nodes"])
    naive = Naive(c["namespaces"], c["pods"], c["policies"], c["tiers"], c["netsets"], c["nodes"])
    return state, naive, c


def check(seed: int) -> tuple[int, int]:
    """Every pod pair (and pod ↔ outside address) in every key; returns (allowed, denied) counts."""
    state, naive, c = build(seed)
    by_key = {f"{p.metadata.namespace}/{p.metadata.name}": p for p in c["pods"]}
    matrix = compute_matrix(state, PORTS, PROTOCOLS)
    counts = [0, 0]
    for key, port, proto in [(f"{p}/{q}", p, q) for q in PROTOCOLS if q != "ICMP" for p in PORTS] + [("ICMP", None, "ICMP")]:
        for i, src_key in enumerate(matrix.pods):
            for j, dst_key in enumerate(matrix.pods):
                src, dst = state.by_key[src_key], state.by_key[dst_key]
                want = naive.allowed(thing(by_key[src_key]), thing(by_key[dst_key]), port, proto)
                got = allowed(state, src, dst, port, proto)
                assert got == want, f"seed {seed}: {src_key} → {dst_key} {key}: engine {got}, naive {want}"
                assert matrix.allowed(key, i, j) == want, f"seed {seed}: matrix {src_key} → {dst_key} {key}"
                counts[want] += 1
        for ip in EXTERNAL:
            for pod_key in matrix.pods[:3]:
                pod = state.by_key[pod_key]
                for src, dst, a, b in ((pod, Endpoint(ip=ip), by_key[pod_key], ip), (Endpoint(ip=ip), pod, ip, by_key[pod_key])):
                    want = naive.allowed(thing(a), thing(b), port, proto)
                    assert allowed(state, src, dst, port, proto) == want, f"seed {seed}: {src.key} → {dst.key} {key}"
    # explain takes the same decision (a sample of pairs: it is the slow path)
    pods = list(matrix.pods)
    for src_key in pods[:4]:
        for dst_key in pods[-4:]:
            src, dst = state.by_key[src_key], state.by_key[dst_key]
            for port, proto in ((80, "TCP"), (None, "ICMP")):
                assert evaluate(state, src, dst, port, proto).allowed == allowed(state, src, dst, port, proto)
    return counts[1], counts[0]


@pytest.mark.parametrize("seed", range(240))
def test_corpus_case(seed: int) -> None:
    check(seed)


def test_corpus_covers_kinds_tiers_actions_and_outcomes() -> None:
    """The corpus is not vacuous: every kind and action occurs, and both outcomes do."""
    kinds, actions, tiers = set(), set(), set()
    allowed_total = denied_total = 0
    for seed in range(240):
        state, _, _ = build(seed)
        for pol in state.policies:
            kinds.add(pol.kind)
            tiers.add(pol.tier)
            actions.update(r.action for d in ("ingress", "egress") for r in pol.rules(d))  # type: ignore[arg-type]
    for seed in range(20):
        a, d = check(seed)
        allowed_total += a
        denied_total += d
    assert kinds == {"", "calico", "gnp", "anp", "banp", "cnp"}
    assert actions == {"Allow", "Deny", "Pass", "Log"}
    assert {"default", "kube-admin", "kube-baseline", "undefined-tier"} <= tiers and tiers & {"early", "late", "loose"}
    assert allowed_total and denied_total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(1000, 2**31))
def test_corpus_random(seed: int) -> None:
    check(seed)
