"""The leak check of tests/conftest.py, run on a pytest session of its own: a test that leaves
a namespace or a process behind fails with both named, and they are removed; a namespace of
another run (another prefix) is neither reported nor touched."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from podnet.kernel import netns
from podnet.workloads.records import proc_start_time

TESTS = Path(__file__).resolve().parents[1]

LEAKY = '''
import json, os, subprocess

from podnet.kernel import netns


def _note(**kw):
    with open(os.environ["LEAK_PROOF_NOTES"], "a") as f:
        f.write(json.dumps(kw) + "\\n")


def test_leaves_a_namespace(prefix):
    netns.create(f"{prefix}leaked")
    _note(namespace=f"{prefix}leaked")


def test_leaves_a_process():
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    _note(pid=proc.pid)


def test_cleans_up(prefix):
    netns.create(f"{prefix}tidy")
    netns.remove(f"{prefix}tidy")
'''


def test_a_leaked_namespace_and_process_fail_their_test_and_are_removed(tmp_path: Path, prefix: str) -> None:
    tree = tmp_path / "tests"
    (tree / "kernel").mkdir(parents=True)
    shutil.copy(TESTS / "conftest.py", tree / "conftest.py")
    (tree / "kernel" / "test_leaky.py").write_text(LEAKY)
    notes = tmp_path / "notes.jsonl"
    bystander = f"{prefix}other-run"  # stands for a namespace of another run on this machine
    netns.create(bystander)
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "--basetemp", str(tmp_path / "inner"), str(tree / "kernel" / "test_leaky.py")],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env={**os.environ, "LEAK_PROOF_NOTES": str(notes)})
        out = res.stdout + res.stderr
        assert netns.exists(bystander), "the leak check removed another run's namespace"
    finally:
        netns.remove(bystander)
    noted = [json.loads(line) for line in notes.read_text().splitlines()]
    leaked_ns = next(n["namespace"] for n in noted if "namespace" in n)
    leaked_pid = next(n["pid"] for n in noted if "pid" in n)

    assert res.returncode == 1, out
    assert re.search(r"\b3 passed\b.* 2 errors\b", out), out
    assert "ERROR at teardown of test_leaves_a_namespace" in out and f"network namespace {leaked_ns}" in out
    assert "ERROR at teardown of test_leaves_a_process" in out and f"process {leaked_pid}: sleep 60" in out
    assert "test_cleans_up" not in out  # passed, nothing reported
    assert bystander not in out
    assert not netns.exists(leaked_ns) and not os.path.exists(netns.path(leaked_ns))
    assert not os.path.exists(os.path.join(netns.RECORD_DIR, leaked_ns + ".json"))
    assert proc_start_time(leaked_pid) is None
