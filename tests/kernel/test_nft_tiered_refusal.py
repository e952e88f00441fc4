"""Until tiers are compiled into the node's table, the policy loop refuses to program a table
that would leave Calico and network-policy-api policies out: the pass reports the refusal and
the kernel keeps the previous table, rule for rule and in effect."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.agent.policy import NOT_ENFORCED, PolicyReconciler, read_status
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import REACHED, probe
from podnet.model import GlobalNetworkPolicy, NetworkPolicy
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

POLICY = {
    "metadata": {"name": "web-from-client1", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client1"}}}], "ports": [{"port": 80}]}]},
}
DENY_ALL = {"metadata": {"name": "security.deny-web"},
            "spec": {"selector": "app == 'web'", "ingress": [{"action": "Deny"}]}}


def _tcp(lab: PolicyLab, src: str, dst: str) -> bool:
    return probe(lab.pods[src].netns, lab.pods[dst].ip, 80, "TCP", 0.4)[0] in REACHED


def test_a_table_without_the_tiered_policies_is_refused_and_the_old_one_kept(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    netns = lab.nodes["n1"].netns
    rec = PolicyReconciler("n1", netns=netns, state_dir=state_dir)
    store.create(NetworkPolicy.model_validate(POLICY))
    assert rec.reconcile(store.snapshot()).error is None
    before = NftApplier(netns).read()
    assert _tcp(lab, "default/client1", "default/web") and not _tcp(lab, "default/client2", "default/web")

    store.create(GlobalNetworkPolicy.model_validate(DENY_ALL))
    status = rec.reconcile(store.snapshot())
    assert status.error is not None and NOT_ENFORCED in status.error and "security.deny-web" in status.error
    assert (read_status(state_dir, "n1") or {}).get("error") == status.error
    # a later NetworkPolicy change is not programmed either (no fast path on the old table)
    store.delete(NetworkPolicy, "web-from-client1", "default")
    assert rec.reconcile(store.snapshot()).error == status.error
    assert NftApplier(netns).read() == before
    assert _tcp(lab, "default/client1", "default/web") and not _tcp(lab, "default/client2", "default/web")

    store.delete(GlobalNetworkPolicy, "security.deny-web")
    assert rec.reconcile(store.snapshot()).error is None
    assert _tcp(lab, "default/client2", "default/web")  # the NetworkPolicy is gone: web is open again
