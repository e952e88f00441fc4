"""Fixtures of the fault tests (the root guard and leak check are in tests/conftest.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.testing.cni_lab import Lab, cni_lab


@pytest.fixture
def lab_inprocess(tmp_path: Path, prefix: str) -> Iterator[Lab]:
    """A node namespace with podnet-cni installed and no agent: every plugin process runs the
    handler itself, so killing the plugin kills the handler mid-way."""
    with cni_lab(str(tmp_path), prefix, serve=False) as the_lab:
        yield the_lab
