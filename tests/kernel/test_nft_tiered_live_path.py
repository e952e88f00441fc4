"""Tiered changes through the policy loop's live path on the real kernel (``tiers_live``).

1. Random creates, updates and deletes of every tiered kind (and Kubernetes NetworkPolicies
   beside them) and pod creates, relabels and deletes, written to a store, each pass planned on
   the live tiered table and committed in a namespace made for the test: after every pass the
   kernel's table (read back) equals a full render of the store, and most passes were live.
2. On the two-node lab, a GlobalNetworkPolicy change taken by the live path is enforced on real
   connections (the Pass and the Deny swap clients).
"""
from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler, StateCache, node_ips
from podnet.agent.policy_view import LiveView
from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.render import render
from podnet.kernel import netns
from podnet.kernel.nft.apply import NftApplier
from podnet.model import GlobalNetworkPolicy, GlobalNetworkSet, Namespace, NetworkPolicy, Pod, Tier
from podnet.policy.cluster import ref_of
from podnet.store.open import open_store
from podnet.testing.policy_lab import PolicyLab
from podnet.testing.tier_guard import SECURITY_TIER, WEB_FROM_CLIENTS, guard_web, reaches_web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_policy_naive import KEYS, VALUES, tiered_cluster  # noqa: E402  (the engine corpus's generator)

pytestmark = pytest.mark.kernel

TIERS = [{"metadata": {"name": "early"}, "spec": {"order": 10}},
         {"metadata": {"name": "late"}, "spec": {"order": 5000, "defaultAction": "Pass"}},
         {"metadata": {"name": "loose"}, "spec": {}}]


@pytest.fixture()
def setup(tmp_path: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    name = f"{prefix}tl"
    netns.create(name)
    store = open_store(str(tmp_path / "state"))
    try:
        yield name, store
    finally:
        store.close()
        netns.remove(name)


def _pod(store: Any, rng: random.Random, name: str, ns: str, index: int) -> None:
    node = rng.randrange(2)
    labels = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 2))}
    ports = [{"name": "web", "containerPort": rng.choice([80, 81]), "protocol": "TCP"}] if rng.random() < 0.4 else []
    created = store.create(Pod.model_validate({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": f"node{node}", "serviceAccountName": rng.choice(["default", "robot"]),
                 "containers": [{"name": "c", "image": "nginx", "ports": ports}]}}))
    store.update_status(Pod.model_validate({**created.to_dict(), "status": {
        "phase": "Running", "podIP": f"10.0.{index // 200}.{2 + index % 200}", "hostIP": f"192.168.0.{node + 1}"}}))


def test_tiered_changes_take_the_live_path_and_match_a_full_render(setup: tuple[str, Any]) -> None:
    ns_name, store = setup
    rng = random.Random(31)
    for i, labels in enumerate([{"team": "x"}, {"team": "y"}, {}]):
        store.create(Namespace.model_validate({"metadata": {"name": f"n{i}", "labels": labels}}))
    for tier in TIERS:
        store.create(Tier.model_validate(tier))
    store.create(GlobalNetworkSet.model_validate({"metadata": {"name": "g0", "labels": {"kind": "gset"}},
                                                  "spec": {"nets": ["10.0.1.0/24", "8.8.0.0/16"]}}))
    for i in range(14):
        _pod(store, rng, f"p{i}", f"n{i % 3}", i)
    # every kind (named ports included), in the tiers above or the built-in ones
    pool = [p for seed in range(60) for p in tiered_cluster(seed)["policies"]
            if getattr(p.spec, "tier", None) not in ("undefined-tier",)]
    for p in rng.sample(pool, 8):
        if store.get(type(p), p.metadata.name, p.metadata.namespace) is None:
            store.create(p)
    rec = PolicyReconciler("node0", netns=ns_name, readback_every=1e9)
    view = LiveView(store)
    assert not rec.reconcile_view(view).error
    live = 0
    paths: set[Any] = set()
    next_ip = 100
    for step in range(80):
        roll = rng.random()
        if roll < 0.5:
            p = rng.choice(pool)
            have = store.get(type(p), p.metadata.name, p.metadata.namespace)
            if have is None:
                store.create(p)
            elif rng.random() < 0.3 and sum(1 for q in store.list(GlobalNetworkPolicy)) > 1:
                store.delete(type(p), p.metadata.name, p.metadata.namespace)
            else:
                store.update(type(p).model_validate({**p.to_dict(), "metadata": {
                    **p.to_dict()["metadata"], "resourceVersion": have.metadata.resource_version}}), check_version=False)
        elif roll < 0.8:
            data = rng.choice(store.list(Pod)).to_dict()
            data["metadata"]["labels"] = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 2))}
            store.update(Pod.model_validate(data), check_version=False)
        elif roll < 0.9:
            _pod(store, rng, f"q{step}", f"n{step % 3}", next_ip)
            next_ip += 1
        else:
            victim = rng.choice(store.list(Pod))
            store.delete(Pod, victim.metadata.name, victim.metadata.namespace)
        st = rec.reconcile_view(view)
        assert st.revision == store.revision() and not st.error, st.error
        if st.plan.get("incremental"):
            live += 1
            paths.add(st.plan.get("path"))
        kernel = NftApplier(ns_name).read()
        assert kernel is not None
        snapshot = store.snapshot()
        full = render(StateCache().build(snapshot), "node0", node_ips=node_ips(snapshot, "node0"))
        assert plan_sync(full, kernel).empty, f"step {step}: the kernel differs from a full render ({st.plan})"
        assert rec.applier.model_matches_kernel(), f"step {step}: the model differs from the kernel"
    assert live >= 50, live
    # dispatch entries and plain chains as raw netlink batches, interval sets through libnftables
    assert {"netlink", "libnftables"} <= paths, paths


def test_a_live_tiered_change_is_enforced(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    rec = PolicyReconciler("n1", netns=lab.nodes["n1"].netns, state_dir=state_dir)
    view = LiveView(store)
    store.create(NetworkPolicy.model_validate(WEB_FROM_CLIENTS))
    store.create(Tier.model_validate(SECURITY_TIER))
    store.create(GlobalNetworkPolicy.model_validate(guard_web("client1")))
    assert rec.reconcile_view(view).error is None
    assert reaches_web(lab, "default/client1", "default/web") and not reaches_web(lab, "default/client2", "default/web")
    current = store.get(GlobalNetworkPolicy, "security.guard-web")
    store.update(GlobalNetworkPolicy.model_validate({**guard_web("client2"), "metadata": current.metadata.model_dump()}))
    status = rec.reconcile_view(view)
    assert status.error is None and status.plan.get("incremental"), status.plan
    assert status.plan["chains_rewritten"] == 1 and status.plan["chains_added"] == 0, status.plan
    assert not reaches_web(lab, "default/client1", "default/web") and reaches_web(lab, "default/client2", "default/web")
    assert ref_of(current) == "gnp:security.guard-web"
