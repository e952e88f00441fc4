"""``podnet up --monitoring``: Debian's Prometheus in the lab, scraping every podnet process.

Prometheus runs in the lab's router namespace, which has an address on every segment and so
reaches each node's metrics ports directly; it never listens in the root namespace. It listens
on the router's address on the external segment. The scrape configuration is generated from the
topology (one job per process, one target per node, labelled with the node's name), checked with
``promtool check config`` before Prometheus starts, and recorded with the cluster so ``status``
shows the URL and ``down`` stops it. ``query`` asks its HTTP API from inside the namespace.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.telemetry.serving import PORTS

from . import processes
from .topology import Topology

PROMETHEUS, PROMTOOL = "prometheus", "promtool"
PROMETHEUS_PORT = 9090
#: the scrape jobs: (job, the podnet command whose port it scrapes, on every node or the first only)
JOBS = (("podnet-agent", "agent", True), ("podnet-policy-loop", "policy-loop", True),
        ("podnet-routing-loop", "routing-loop", True), ("podnet-proxy", "proxy", True),
        ("podnet-flow-logger", "flow-logger", True), ("podnet-controllers", "controllers", False))


def listen_address(topo: Topology) -> str:
    """Where Prometheus listens: the router's address on the external segment."""
    return f"{topo.segment('ext').gateway}:{PROMETHEUS_PORT}"


def scrape_config(topo: Topology, interval: float) -> dict[str, Any]:
    """Prometheus' configuration for the lab: every node process and the control plane (which
    runs on the first node)."""
    jobs = []
    for job, command, every_node in JOBS:
        nodes = topo.nodes if every_node else topo.nodes[:1]
        jobs.append({"job_name": job, "static_configs": [
            {"targets": [f"{n.address}:{PORTS[command]}"], "labels": {"node": n.name}} for n in nodes]})
    seconds = f"{interval:g}s"
    return {"global": {"scrape_interval": seconds, "scrape_timeout": seconds, "evaluation_interval": seconds},
            "scrape_configs": jobs}


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise PodnetError(f"{binary} is not installed", hint="install Debian's prometheus package (make setup does)")
    return found


def start(state_dir: str, topo: Topology, interval: float = 5.0, timeout: float = 30.0) -> dict[str, Any]:
    """Write and check the configuration, start Prometheus in the router's namespace and wait
    until it is ready; returns what the cluster record keeps (``url``, ``netns``, the process)."""
    prometheus = _require(PROMETHEUS)
    home = os.path.join(state_dir, "monitoring")
    os.makedirs(os.path.join(home, "data"), exist_ok=True)
    config = os.path.join(home, "prometheus.yml")
    with open(config, "w") as f:
        yaml.safe_dump(scrape_config(topo, interval), f, sort_keys=False)
    checked = subprocess.run([_require(PROMTOOL), "check", "config", config], capture_output=True, text=True)
    if checked.returncode != 0:
        raise PodnetError(f"promtool rejected {config}: {(checked.stderr or checked.stdout).strip()}")
    address = listen_address(topo)
    rec = processes.start("prometheus", [prometheus, f"--config.file={config}",
                                         f"--storage.tsdb.path={os.path.join(home, 'data')}",
                                         f"--web.listen-address={address}", "--storage.tsdb.retention.time=1d"],
                          os.path.join(state_dir, "logs", "prometheus.log"), topo.router_netns)
    record = {"url": f"http://{address}", "netns": topo.router_netns, "config": config, "process": rec.to_dict()}
    deadline = time.monotonic() + timeout
    while not _ready(record):
        if not processes.alive(rec):
            raise PodnetError("prometheus exited during start-up", hint=f"see {rec.log}")
        if time.monotonic() > deadline:
            raise PodnetError(f"prometheus not ready after {timeout:.0f} s", hint=f"see {rec.log}")
        time.sleep(0.1)
    return record


def get(record: dict[str, Any], path: str, params: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    """GET ``path`` of the recorded Prometheus, from inside its namespace; JSON decoded."""
    url = record["url"] + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with netns.enter(record["netns"]):  # the connection is made, and stays, in the lab
        with urllib.request.urlopen(url, timeout=timeout) as res:
            body = res.read()
    return json.loads(body) if body.strip().startswith((b"{", b"[")) else body.decode()


def _ready(record: dict[str, Any]) -> bool:
    try:
        get(record, "/-/ready", timeout=1.0)
        return True
    except (OSError, urllib.error.URLError):
        return False


def query(record: dict[str, Any], promql: str) -> list[dict[str, Any]]:
    """An instant PromQL query's result vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
    answer = get(record, "/api/v1/query", {"query": promql})
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise PodnetError(f"prometheus refused the query {promql!r}: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
