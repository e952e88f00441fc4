"""The policy enforcement loop as a process: store writes become kernel rules, and after a
SIGKILL the isolated pods stay isolated; a restarted loop adopts the table without rewriting."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler, read_status
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import REACHED, probe
from podnet.model import NetworkPolicy, Pod
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

POLICY = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "web-from-client1", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client1"}}}], "ports": [{"port": 80}]}]},
}


def _tcp(lab: PolicyLab, src: str, dst: str) -> bool:
    return probe(lab.pods[src].netns, lab.pods[dst].ip, 80, "TCP", 0.4)[0] in REACHED


def _wait_revision(state_dir: str, node: str, revision: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_status(state_dir, node)
        if st and st["revision"] >= revision and not st.get("error"):
            return st
        time.sleep(0.005)
    raise AssertionError(f"node {node} did not reach revision {revision}: {read_status(state_dir, node)}")


def _start_loop(state_dir: str, lab: PolicyLab) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "--state-dir", state_dir, "policy-loop",
                             "--node", "n1", "--netns", lab.nodes["n1"].netns, "--resync", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_reconciler_in_process_follows_the_store(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    rec = PolicyReconciler("n1", netns=lab.nodes["n1"].netns, state_dir=state_dir)
    rec.reconcile(store.snapshot())
    assert _tcp(lab, "default/client2", "default/web")
    store.create(NetworkPolicy.model_validate(POLICY))
    st = rec.reconcile(store.snapshot())
    assert not st.skipped and st.plan["commands"] > 0
    assert _tcp(lab, "default/client1", "default/web") and not _tcp(lab, "default/client2", "default/web")
    assert rec.reconcile(store.snapshot()).skipped  # same revision, read-back not due


def test_loop_process_enforces_and_rules_survive_sigkill(policy_store_lab: tuple[PolicyLab, Any, str]) -> None:
    lab, store, state_dir = policy_store_lab
    proc = _start_loop(state_dir, lab)
    try:
        _wait_revision(state_dir, "n1", store.revision())
        assert _tcp(lab, "default/client2", "default/web")
        t0 = time.monotonic()
        store.create(NetworkPolicy.model_validate(POLICY))
        _wait_revision(state_dir, "n1", store.revision())
        latency = time.monotonic() - t0
        assert not _tcp(lab, "default/client2", "default/web")
        assert _tcp(lab, "default/client1", "default/web")
        assert latency < 2.0, latency

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert not _tcp(lab, "default/client2", "default/web")  # fail closed: the table stays
        assert _tcp(lab, "default/client1", "default/web")

        # While no loop runs, a label change is not enforced; a new loop adopts the table and
        # applies only the difference (one set element), without rewriting any chain.
        client2 = store.get(Pod, "client2", "default")
        store.update(Pod.model_validate({**client2.to_dict(), "metadata": {
            **client2.to_dict()["metadata"], "labels": {"run": "client1"}}}), check_version=False)
        assert not _tcp(lab, "default/client2", "default/web")
        proc = _start_loop(state_dir, lab)
        st = _wait_revision(state_dir, "n1", store.revision())
        assert st["plan"]["elements_added"] == 1 and st["plan"]["chains_rewritten"] == 0, st["plan"]
        assert st["plan"]["chains_added"] == 0 and not st["plan"]["full"]
        assert _tcp(lab, "default/client2", "default/web")

        # With the loop running, a pod change takes the fast path: element commands only.
        client2 = store.get(Pod, "client2", "default")
        store.update(Pod.model_validate({**client2.to_dict(), "metadata": {
            **client2.to_dict()["metadata"], "labels": {"run": "client2"}}}), check_version=False)
        st = _wait_revision(state_dir, "n1", store.revision())
        assert st["plan"].get("incremental") and st["plan"]["elements_removed"] == 1, st["plan"]
        assert st["plan"]["path"] == "netlink", st["plan"]  # a raw batch: no listing of the table
        assert not _tcp(lab, "default/client2", "default/web")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
    assert NftApplier(lab.nodes["n1"].netns).read() is not None  # a clean stop leaves the rules too
