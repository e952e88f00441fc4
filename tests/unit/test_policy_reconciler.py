"""The policy manager's failure path: a pass the kernel side cannot take is returned as a status
with its error (and recorded in policy.json), not raised, and the next pass retries."""
from __future__ import annotations

import secrets
from pathlib import Path

from podnet.agent.policy import PolicyReconciler, read_status
from podnet.model import Namespace
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore


def test_a_failed_pass_is_returned_with_its_error_and_retried(tmp_path: Path) -> None:
    store = ResourceStore(MemoryStore())
    store.create(Namespace.model_validate({"metadata": {"name": "default"}}))
    missing = f"pt-absent-{secrets.token_hex(3)}"  # never created: entering it fails
    rec = PolicyReconciler("n1", netns=missing, state_dir=str(tmp_path))
    status = rec.reconcile(store.snapshot())
    assert status.error is not None and missing in status.error
    assert not status.skipped and status.revision == store.revision() and rec.status is status
    recorded = read_status(str(tmp_path), "n1")
    assert recorded is not None and recorded["error"] == status.error
    again = rec.reconcile(store.snapshot())  # same revision, but the last pass failed: not skipped
    assert not again.skipped and again.error == status.error


def test_tiered_kinds_go_to_the_kernel_like_any_other_policy(tmp_path: Path) -> None:
    """Tiered kinds are compiled into the table: the pass goes for the kernel (here a namespace
    that does not exist, so the error says so), no refusal."""
    from podnet.model import GlobalNetworkPolicy

    store = ResourceStore(MemoryStore())
    store.create(Namespace.model_validate({"metadata": {"name": "default"}}))
    store.create(GlobalNetworkPolicy.model_validate({"metadata": {"name": "deny"}, "spec": {"ingress": [{"action": "Deny"}]}}))
    missing = f"pt-absent-{secrets.token_hex(3)}"
    rec = PolicyReconciler("n1", netns=missing, state_dir=str(tmp_path))
    status = rec.reconcile(store.snapshot())
    assert status.error is not None and missing in status.error
