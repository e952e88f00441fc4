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


def test_tiered_kinds_are_refused_before_the_kernel_is_touched(tmp_path: Path) -> None:
    """A table without the tiered policies would misrepresent them: the pass refuses with a
    status error and keeps the previous table (here: the kernel is never entered, so the error is
    the refusal, not the missing namespace); once they are gone, the pass goes to the kernel."""
    from podnet.model import GlobalNetworkPolicy

    store = ResourceStore(MemoryStore())
    store.create(Namespace.model_validate({"metadata": {"name": "default"}}))
    store.create(GlobalNetworkPolicy.model_validate({"metadata": {"name": "deny"}, "spec": {"ingress": [{"action": "Deny"}]}}))
    missing = f"pt-absent-{secrets.token_hex(3)}"
    rec = PolicyReconciler("n1", netns=missing, state_dir=str(tmp_path))
    status = rec.reconcile(store.snapshot())
    assert status.error is not None and "tiered policy kinds are not yet enforced in the kernel" in status.error
    assert "GlobalNetworkPolicy/deny" in status.error and missing not in status.error
    recorded = read_status(str(tmp_path), "n1")
    assert recorded is not None and recorded["error"] == status.error
    assert rec.reconcile(store.snapshot()).error == status.error  # idle: still refused, still reported
    store.delete(GlobalNetworkPolicy, "deny")
    status = rec.reconcile(store.snapshot())
    assert status.error is not None and missing in status.error  # now it went for the kernel
