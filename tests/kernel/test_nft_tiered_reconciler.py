"""The node's policy loop programs tiered kinds: a GlobalNetworkPolicy in its own tier denies in
the kernel before the default tier's NetworkPolicy allows, a Pass hands the decision back to
it, and removing the tiered policy brings back the Kubernetes-only table exactly."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler, read_status
from podnet.kernel.nft.apply import NftApplier
from podnet.model import GlobalNetworkPolicy, NetworkPolicy, Tier
from podnet.testing.policy_lab import PolicyLab
from podnet.testing.tier_guard import SECURITY_TIER, WEB_FROM_CLIENTS, guard_web, reaches_web

pytestmark = pytest.mark.kernel

def test_tiered_policy_is_enforced_by_the_reconciler(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    netns = lab.nodes["n1"].netns
    rec = PolicyReconciler("n1", netns=netns, state_dir=state_dir)
    store.create(NetworkPolicy.model_validate(WEB_FROM_CLIENTS))
    assert rec.reconcile(store.snapshot()).error is None
    k8s_only = NftApplier(netns).read()
    assert reaches_web(lab, "default/client1", "default/web") and reaches_web(lab, "default/client2", "default/web")

    store.create(Tier.model_validate(SECURITY_TIER))
    store.create(GlobalNetworkPolicy.model_validate(guard_web("client1")))
    status = rec.reconcile(store.snapshot())
    assert status.error is None and (read_status(state_dir, "n1") or {}).get("error") is None
    assert reaches_web(lab, "default/client1", "default/web")  # passed to the default tier, which allows
    assert not reaches_web(lab, "default/client2", "default/web")  # denied in security, before the allow

    # a change of the tiered policy: a full render, synced atomically
    current = store.get(GlobalNetworkPolicy, "security.guard-web")
    store.update(GlobalNetworkPolicy.model_validate({**guard_web("client2"), "metadata": current.metadata.model_dump()}))
    assert rec.reconcile(store.snapshot()).error is None
    assert not reaches_web(lab, "default/client1", "default/web") and reaches_web(lab, "default/client2", "default/web")

    store.delete(GlobalNetworkPolicy, "security.guard-web")
    assert rec.reconcile(store.snapshot()).error is None
    assert NftApplier(netns).read() == k8s_only  # the Kubernetes-only table, rule for rule
    assert reaches_web(lab, "default/client1", "default/web") and reaches_web(lab, "default/client2", "default/web")
