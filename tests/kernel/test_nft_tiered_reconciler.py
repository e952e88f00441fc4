"""The node's policy loop programs tiered kinds: a GlobalNetworkPolicy in its own tier denies in
the kernel before the default tier's NetworkPolicy allows, a Pass hands the decision back to
it, and removing the tiered policy brings back the Kubernetes-only table exactly."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler, read_status
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import REACHED, probe
from podnet.model import GlobalNetworkPolicy, NetworkPolicy, Tier
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

POLICY = {
    "metadata": {"name": "web-from-clients", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]},
}
TIER = {"metadata": {"name": "security"}, "spec": {"order": 100}}


def _guard(passed: str) -> dict[str, Any]:
    return {"metadata": {"name": "security.guard-web"},
            "spec": {"tier": "security", "selector": "app == 'web'", "ingress": [
                {"action": "Pass", "source": {"selector": f"run == '{passed}'"}}, {"action": "Deny"}]}}


def _tcp(lab: PolicyLab, src: str, dst: str) -> bool:
    return probe(lab.pods[src].netns, lab.pods[dst].ip, 80, "TCP", 0.4)[0] in REACHED


def test_tiered_policy_is_enforced_by_the_reconciler(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    netns = lab.nodes["n1"].netns
    rec = PolicyReconciler("n1", netns=netns, state_dir=state_dir)
    store.create(NetworkPolicy.model_validate(POLICY))
    assert rec.reconcile(store.snapshot()).error is None
    k8s_only = NftApplier(netns).read()
    assert _tcp(lab, "default/client1", "default/web") and _tcp(lab, "default/client2", "default/web")

    store.create(Tier.model_validate(TIER))
    store.create(GlobalNetworkPolicy.model_validate(_guard("client1")))
    status = rec.reconcile(store.snapshot())
    assert status.error is None and (read_status(state_dir, "n1") or {}).get("error") is None
    assert _tcp(lab, "default/client1", "default/web")  # passed to the default tier, which allows
    assert not _tcp(lab, "default/client2", "default/web")  # denied in security, before the allow

    # a change of the tiered policy: a full render, synced atomically
    current = store.get(GlobalNetworkPolicy, "security.guard-web")
    store.update(GlobalNetworkPolicy.model_validate({**_guard("client2"), "metadata": current.metadata.model_dump()}))
    assert rec.reconcile(store.snapshot()).error is None
    assert not _tcp(lab, "default/client1", "default/web") and _tcp(lab, "default/client2", "default/web")

    store.delete(GlobalNetworkPolicy, "security.guard-web")
    assert rec.reconcile(store.snapshot()).error is None
    assert NftApplier(netns).read() == k8s_only  # the Kubernetes-only table, rule for rule
    assert _tcp(lab, "default/client1", "default/web") and _tcp(lab, "default/client2", "default/web")
