"""Every long-running process is a `podnet` command, and every node process refuses to change a
network namespace podnet did not create (the machine's own, unless --host-network)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from podnet.cli.main import COMMANDS
from podnet.cluster.lifecycle import node_health
from podnet.kernel.netns import current_owned


def podnet(state_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", state_dir, *args],
                          capture_output=True, text=True, timeout=60)


def test_every_loop_is_a_command() -> None:
    assert {"agent", "policy-loop", "routing-loop", "proxy", "controllers"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["agent", "policy-loop", "proxy"])
def test_node_processes_refuse_a_namespace_podnet_did_not_create(tmp_path: Path, command: str) -> None:
    assert current_owned() is None  # the test suite runs in the machine's namespace
    proc = podnet(str(tmp_path), command, "--node", "n1")
    assert proc.returncode == 1, proc.stderr
    assert "not in a network namespace podnet created" in proc.stderr and "--host-network" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_the_policy_loop_refuses_a_target_namespace_podnet_did_not_create(tmp_path: Path) -> None:
    proc = podnet(str(tmp_path), "policy-loop", "--node", "n1", "--netns", "not-podnets")
    assert proc.returncode == 1
    assert "network namespace 'not-podnets' was not created by podnet" in proc.stderr
    assert os.listdir(tmp_path) == []


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {"processes": {"agent": (1, True), "routing": (2, True)}, "errors": [],
                              "refusals": [], "bgp": None}
    row.update(kw)
    return row


def test_node_health() -> None:
    assert node_health(_row(), bgp=False) == "Ready"
    assert node_health(_row(processes={"agent": (1, False)}), bgp=False) == "NotReady"
    assert node_health(_row(errors=["route refused"]), bgp=False) == "NotReady"
    assert node_health(_row(refusals=["a", "b"]), bgp=False) == "Ready (2 unreachable blocks)"
    assert node_health(_row(bgp=(2, 2)), bgp=True) == "Ready"
    assert node_health(_row(bgp=(1, 2)), bgp=True) == "NotReady"
    assert node_health(_row(bgp=None), bgp=True) == "NotReady"  # bird not running
