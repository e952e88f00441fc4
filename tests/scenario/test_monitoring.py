"""`podnet up --monitoring` end to end: Debian's Prometheus, started in the lab's router
namespace, scrapes every node process and the control plane; its HTTP API answers `up == 1`
for every target; every live scrape passes `promtool check metrics`; the store gauges and BGP
sessions read through PromQL are the cluster's. On the way, `up` and `probe` run in a
pseudo-terminal (progress shown) and `verify` through a pipe (standard error empty)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

from podnet.cluster import monitoring
from podnet.kernel import netns
from podnet.testing.terminal import in_terminal

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]

PODS = "\n---\n".join(f"""apiVersion: v1
kind: Pod
metadata: {{name: bs{i}, namespace: default, labels: {{run: bs{i}}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""" for i, node in enumerate(("k8s-master01", "k8s-node01")))


@pytest.fixture
def cli(tmp_path: Any, prefix: str) -> Any:
    sd = str(tmp_path / "state")
    base = [sys.executable, "-m", "podnet.cli.main", "--state-dir", sd]

    def podnet(*args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        return res

    yield podnet, base, sd, prefix
    subprocess.run([*base, "down"], capture_output=True, timeout=120)


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.25)


def test_prometheus_scrapes_every_process(cli: Any) -> None:
    podnet, base, sd, prefix = cli
    t0 = time.monotonic()
    code, out = in_terminal([*base, "up", "--nodes", "2", "--backend", "bgp", "--prefix", prefix, "--monitoring",
                             "--scrape-interval", "1"], timeout=120)
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "starting Prometheus" in text and "\x1b[" in text  # the steps, drawn on the terminal
    with open(os.path.join(sd, "cluster.json")) as f:
        state = json.load(f)
    record = state["monitoring"]
    assert record["netns"] == f"{prefix}router" and f"prometheus: {record['url']}" in text
    assert record["url"] in podnet("status").stdout

    # Every target up: 2 nodes x (agent, policy loop, routing loop, proxy, flow logger) + the controllers.
    def all_up() -> list[dict[str, Any]] | None:
        res = monitoring.query(record, "up")
        return res if len(res) == 11 and all(r["value"][1] == "1" for r in res) else None

    targets = wait_for("every target up", all_up)
    assert {r["metric"]["job"] for r in targets} == {"podnet-agent", "podnet-policy-loop", "podnet-routing-loop",
                                                     "podnet-proxy", "podnet-flow-logger", "podnet-controllers"}
    assert time.monotonic() - t0 < 60

    # Each live scrape passes promtool with 0 problems.
    promtool = shutil.which("promtool")
    assert promtool
    for r in targets:
        with netns.enter(record["netns"]):
            import urllib.request

            with urllib.request.urlopen(f"http://{r['metric']['instance']}/metrics", timeout=5) as res:
                body = res.read().decode()
        lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
        assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (r["metric"], lint.stdout)

    # What PromQL sees is the cluster's.
    established = wait_for("BGP sessions in Prometheus", lambda: monitoring.query(
        record, 'podnet_bgp_sessions{state="Established"} == 1'))
    assert sorted(r["metric"]["node"] for r in established) == ["k8s-master01", "k8s-node01"]
    nodes = json.loads(podnet("get", "nodes", "-o", "json").stdout)["items"]
    counted = wait_for("store counts", lambda: monitoring.query(record, 'podnet_store_objects{resource="nodes"}'))
    assert float(counted[0]["value"][1]) == len(nodes) == 2

    # probe on a terminal shows its bar; verify in a pipe prints only its verdict.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(PODS)
    try:
        podnet("apply", "-f", f.name)
    finally:
        os.unlink(f.name)

    def running() -> bool:
        items = json.loads(podnet("get", "pods", "-o", "json").stdout)["items"]
        return len(items) == 2 and all((p.get("status") or {}).get("phase") == "Running" for p in items)

    wait_for("pods running", running)
    code, out = in_terminal([*base, "probe", "--timeout", "0.5"])
    assert code == 0 and b"probing" in out and b"default/bs0" in out, out.decode(errors="replace")
    verified = subprocess.run([*base, "verify", "--timeout", "0.5"], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr == "" and verified.stdout.startswith("OK:"), verified
    # Every pod of the cluster, the DNS add-on's included, is a local endpoint of its node's policy table.
    pods = json.loads(podnet("get", "pods", "-A", "-o", "json").stdout)["items"]
    expected = sum(1 for p in pods if not (p.get("spec") or {}).get("hostNetwork"))
    assert expected >= 2
    endpoints = wait_for("local endpoints", lambda: monitoring.query(
        record, f"sum(podnet_policy_local_endpoints) == {expected}"))
    assert endpoints

    podnet("down")
    assert not netns.exists(record["netns"])
    assert not os.path.exists(os.path.join(sd, "monitoring"))
