"""A generated corpus of 100 steps, as the upstream conformance generators build them: peers ×
ports × protocols × actions (create / update / delete a policy, relabel a pod, relabel a
namespace). After every step the kernel is synced incrementally and probed, and must agree with
the engine's matrix on every cell (what ``podnet verify`` checks)."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

from podnet.cluster.probe import probe_matrix
from podnet.dataplane.nft.verify import compare
from podnet.model import NetworkPolicy
from podnet.policy.matrix import compute_matrix
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

STEPS = 100
PORTS = [80, 81]
PROTOCOLS = ["TCP", "UDP", "ICMP"]
NAMESPACES = ["x", "y", "z"]
APPS = ["a", "b", "c"]


@pytest.fixture(scope="module", params=["slow-path", "fast-path"])
def lab(prefixes: Prefixes, request: pytest.FixtureRequest) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        if request.param == "fast-path":
            lab.enable_fast_path()  # the same verdicts with established TCP off the slow path
        # The e2e suite's shape: pods a, b, c in namespaces x, y, z (here a subset on two nodes).
        for i, (ns, app) in enumerate([("x", "a"), ("x", "b"), ("y", "a"), ("y", "c"), ("z", "b"), ("z", "c")]):
            lab.add_pod(ns, app, "n1" if i % 2 == 0 else "n2", {"pod": app},
                        [("serve-80", 80, "TCP"), ("serve-81", 81, "UDP")] if app != "c" else [("serve-80", 81, "TCP")])
        for ns in NAMESPACES:
            lab.namespace_labels[ns] = {"ns": ns}
        yield lab
    finally:
        lab.close()


def _peer(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["pod", "ns", "both", "block", "block-except"])
    pod = {"matchLabels": {"pod": rng.choice(APPS)}} if rng.random() < 0.8 else {}
    ns = ({"matchLabels": {"ns": rng.choice(NAMESPACES)}} if rng.random() < 0.6 else
          {"matchExpressions": [{"key": "ns", "operator": rng.choice(["In", "NotIn"]),
                                 "values": rng.sample(NAMESPACES, 2)}]})
    if kind == "pod":
        return {"podSelector": pod}
    if kind == "ns":
        return {"namespaceSelector": ns}
    if kind == "both":
        return {"namespaceSelector": ns, "podSelector": pod}
    node = rng.choice([1, 2])
    block: dict[str, Any] = {"cidr": f"10.244.{node}.0/24"}
    if kind == "block-except":
        block["except"] = [f"10.244.{node}.{rng.choice([2, 3, 4])}/32"]
    return {"ipBlock": block}


def _ports(rng: random.Random) -> list[dict[str, Any]] | None:
    if rng.random() < 0.3:
        return None
    out = []
    for _ in range(rng.randint(1, 2)):
        proto = rng.choice(["TCP", "UDP"])
        choice = rng.random()
        if choice < 0.4:
            out.append({"protocol": proto, "port": rng.choice(PORTS)})
        elif choice < 0.6:
            out.append({"protocol": proto, "port": 80, "endPort": 81})
        elif choice < 0.8:
            out.append({"protocol": proto, "port": rng.choice(["serve-80", "serve-81"])})
        else:
            out.append({"protocol": proto})
    return out


def _policy(rng: random.Random, name: str, ns: str) -> NetworkPolicy:
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"pod": rng.choice(APPS)}} if rng.random() < 0.7 else {},
                            "policyTypes": types}
    for direction, key in (("ingress", "from"), ("egress", "to")):
        if direction.capitalize() not in types:
            continue
        rules = []
        for _ in range(rng.choice([0, 1, 1, 2])):
            rule: dict[str, Any] = {}
            if rng.random() < 0.8:
                rule[key] = [_peer(rng) for _ in range(rng.randint(1, 2))]
            ports = _ports(rng)
            if ports:
                rule["ports"] = ports
            rules.append(rule)
        spec[direction] = rules
    return NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                         "metadata": {"name": name, "namespace": ns}, "spec": spec})


def test_generated_corpus_agrees_with_engine(lab: PolicyLab) -> None:
    rng = random.Random(int(os.environ.get("PODNET_CORPUS_SEED", "6")))
    policies: dict[tuple[str, str], NetworkPolicy] = {}
    actions: dict[str, int] = {}
    cells = 0
    # with the fast path, the first 40 steps (the added run stays short; the seed is the same)
    steps = 40 if lab.fast_paths else STEPS
    for step in range(steps):
        roll = rng.random()
        if roll < 0.4 or not policies:
            ns = rng.choice(NAMESPACES)
            key = (ns, f"p{step}")
            policies[key] = _policy(rng, key[1], ns)
            action = "create"
        elif roll < 0.6:
            key = rng.choice(sorted(policies))
            policies[key] = _policy(rng, key[1], key[0])
            action = "update"
        elif roll < 0.75:
            policies.pop(rng.choice(sorted(policies)))
            action = "delete"
        elif roll < 0.9:
            pod = lab.pods[rng.choice(sorted(lab.pods))]
            pod.labels["pod"] = rng.choice(APPS)
            action = "relabel-pod"
        else:
            ns = rng.choice(NAMESPACES)
            lab.namespace_labels[ns] = {"ns": rng.choice(NAMESPACES)}
            action = "relabel-namespace"
        actions[action] = actions.get(action, 0) + 1
        state = lab.state(list(policies.values()))
        lab.apply(state)
        expected = compute_matrix(state, PORTS, PROTOCOLS)
        # 256 parallel probes on two cores can time out on a busy machine; a real disagreement
        # survives a slower second look, a late answer does not.
        for timeout in (0.35, 1.5):
            observed, results = probe_matrix(lab.probe_pods(), PORTS, PROTOCOLS, timeout=timeout, workers=256)
            report = compare(state, expected, observed, {(r.src, r.dst, r.key): r.outcome for r in results})
            if report.ok:
                break
        assert report.ok, f"step {step} ({action}):\n" + "\n".join(d.describe() for d in report.disagreements)
        cells += report.cells
    assert all(actions.get(a, 0) >= 5 * steps // STEPS for a in ("create", "update", "delete", "relabel-pod", "relabel-namespace")), actions
    assert cells == steps * 6 * 6 * (len(PORTS) * 2 + 1)
