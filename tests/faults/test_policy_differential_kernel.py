"""The differential fuzzer with the kernel as the third judge: random clusters of
NetworkPolicies (podnet/testing/policy_fuzz.py) programmed on a two-node policy lab and probed
with real connections; the engine, the naive evaluator and the kernel must agree on every cell
(a late answer on a busy machine gets a slower second look; a real disagreement survives it).
Bounded here; PODNET_FUZZ_KERNEL_EXAMPLES raises the count."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from podnet.cluster.probe import probe_matrix
from podnet.model import NetworkPolicy
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_fuzz import (
    NAMED_PORTS,
    POD_SHAPES,
    PORTS,
    PROTOCOLS,
    cluster,
    engine_table,
    mismatches,
    naive_table,
)
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

EXAMPLES = int(os.environ.get("PODNET_FUZZ_KERNEL_EXAMPLES", "3"))


@pytest.fixture(scope="module")
def lab(prefixes: Prefixes) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        for ns, app, node in POD_SHAPES:
            lab.add_pod(ns, app, node, {"pod": app}, list(NAMED_PORTS[app]))
        yield lab
    finally:
        lab.close()


def observed_table(lab: PolicyLab, timeout: float) -> dict[tuple[str, str, str], bool]:
    matrix, _ = probe_matrix(lab.probe_pods(), list(PORTS), list(PROTOCOLS), timeout=timeout, workers=128)
    return {(s, d, k): matrix.allowed(k, i, j) for k in matrix.keys for i, s in enumerate(matrix.pods)
            for j, d in enumerate(matrix.pods) if i != j}


def test_engine_naive_evaluator_and_kernel_agree(lab: PolicyLab) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(cluster())
    def case(c: tuple[dict[str, dict[str, str]], list[dict[str, str]], list[dict[str, Any]]]) -> None:
        ns_labels, pod_labels, policies = c
        lab.namespace_labels.update(ns_labels)
        for (ns, app, _), labels in zip(POD_SHAPES, pod_labels):
            lab.pods[f"{ns}/{app}"].labels = dict(labels)
        state = lab.state([NetworkPolicy.model_validate(p) for p in policies])
        lab.apply(state)
        engine, naive = engine_table(state), naive_table(ns_labels, pod_labels, policies)
        assert mismatches(engine, naive) == []
        for timeout in (0.35, 1.5):
            wrong = mismatches(engine, observed_table(lab, timeout))
            if not wrong:
                break
        assert wrong == []

    case()


# --- tiered kinds: the engine corpus's generator, its naive evaluator, and the kernel ------------

TIERED_PODS = [("n0", "p0", "n1", {"app": "a"}), ("n0", "p1", "n2", {"app": "b", "role": "a"}),
               ("n1", "p2", "n1", {"role": "b"}), ("n2", "p3", "n2", {"app": "a", "role": "b"})]


@pytest.fixture(scope="module")
def tiered_lab(prefixes: Prefixes) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        for ns, name, node, labels in TIERED_PODS:
            lab.add_pod(ns, name, node, labels)
        yield lab
    finally:
        lab.close()


@pytest.mark.parametrize("seed", range(1000, 1000 + 2 * EXAMPLES))
def test_tiered_engine_naive_evaluator_and_kernel_agree(tiered_lab: PolicyLab, seed: int) -> None:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_policy_naive import Naive, thing, tiered_cluster

    lab = tiered_lab
    c = tiered_cluster(seed)
    for ns in c["namespaces"]:
        lab.namespace_labels[ns.metadata.name] = dict(ns.metadata.labels)
    state = lab.state(c["policies"], tiers=c["tiers"], network_sets=c["netsets"])
    lab.apply(state)
    models = {f"{p.metadata.namespace}/{p.metadata.name}": p for p in lab.pod_models()}
    naive = Naive(lab.namespaces(), list(models.values()), c["policies"], c["tiers"], c["netsets"])
    engine = engine_table(state)
    wanted = {}
    for (src, dst, key) in engine:
        port, _, proto = key.partition("/")
        wanted[(src, dst, key)] = naive.allowed(thing(models[src]), thing(models[dst]),
                                                None if key == "ICMP" else int(port), "ICMP" if key == "ICMP" else proto)
    assert mismatches(engine, wanted) == []
    for timeout in (0.35, 1.5):
        wrong = mismatches(engine, observed_table(lab, timeout))
        if not wrong:
            break
    assert wrong == []

