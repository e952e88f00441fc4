"""Concurrent CNI ADD/DEL with the plugin SIGKILLed at random points (bounded here; 500 in
bench/faults.py): no address given twice, none left behind, no veth left on the node, and
every DEL succeeds even after a killed ADD."""
from __future__ import annotations

import pytest

from podnet.testing.cni_faults import run_cni_churn
from podnet.testing.cni_lab import Lab

pytestmark = pytest.mark.kernel


def test_killed_cni_adds_leave_no_duplicate_or_leaked_address(lab_inprocess: Lab) -> None:
    report = run_cni_churn(lab_inprocess, count=12, concurrency=6, seed=14)
    assert report.clean, report
    assert report.killed >= 3 and report.added >= 3, report  # the kills did land mid-way
