"""Runs the store contract suite (tests/unit/store_contract.py) on every backend."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so child processes and we share it

from store_contract import (  # noqa: E402,F401
    TestApply, TestApplyResults, TestConcurrency, TestConditionalWrites, TestDelete, TestList, TestResourceBasics,
    TestOrdering, TestResourceUpdates, TestRevisions, TestSnapshotAndWatch, TestTxn, TestWatch, backend, rs, store,
)
