"""Progress where people wait: on a terminal (a pseudo-terminal here) a long apply shows what
it is doing on standard error; through a pipe it prints only its result. ``up``, ``probe`` and
``verify`` are checked the same way against a real cluster in tests/scenario/test_monitoring.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podnet.testing.terminal import in_terminal


@pytest.fixture
def manifests(tmp_path: Path) -> str:
    path = tmp_path / "many.yaml"
    path.write_text("\n---\n".join(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{i}}}" for i in range(200)))
    return str(path)


def apply(state: Path, manifests: str) -> list[str]:
    return [sys.executable, "-m", "podnet.cli.main", "--state-dir", str(state), "apply", "-f", manifests]


def test_apply_shows_progress_on_a_terminal(tmp_path: Path, manifests: str) -> None:
    code, out = in_terminal(apply(tmp_path / "state", manifests))
    assert code == 0, out.decode(errors="replace")
    assert b"podnet apply" in out  # the spinner's line, drawn with terminal control sequences
    assert b"\x1b[" in out
    assert out.count(b"created") == 200


def test_apply_is_quiet_in_a_pipe(tmp_path: Path, manifests: str) -> None:
    res = subprocess.run(apply(tmp_path / "state", manifests), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.splitlines()[:2] == ["namespace/ns0 created", "namespace/ns1 created"]
    assert "\x1b" not in res.stdout


def test_an_error_on_a_terminal_still_reads_plainly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: Not_Valid}\n")
    code, out = in_terminal(apply(tmp_path / "state", str(bad)))
    assert code == 1 and b"Not_Valid" in out and b"nothing was applied" in out
