"""A ``podnet up`` cluster driven through the ``podnet`` command, as a user drives it (fault tests
and bench/faults.py)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podnet.agent.pods import pod_netns_name
from podnet.cluster.datastore import node_state_dir

ROOT = Path(__file__).resolve().parents[2]  # the checkout: examples/ and the working directory
EX = ROOT / "examples"
PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


class Cluster:
    def __init__(self, state_dir: str, prefix: str) -> None:
        self.sd = state_dir
        self.prefix = prefix

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([PODNET, "--state-dir", self.sd, *args], capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
        if check and res.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def apply_text(self, text: str) -> None:
        path = Path(self.sd) / f"doc-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        try:
            self.cli("apply", "-f", str(path))
        finally:
            path.unlink()

    def state(self) -> dict[str, Any]:
        with open(os.path.join(self.sd, "cluster.json")) as f:
            data: dict[str, Any] = json.load(f)
            return data

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.state()["topology"]["nodes"])

    def node_ns(self, node: str) -> str:
        return str(next(n["netns"] for n in self.nodes() if n["name"] == node))

    def node_address(self, node: str) -> str:
        return str(next(n["address"] for n in self.nodes() if n["name"] == node))

    def service_pid(self, node: str, service: str) -> int | None:
        path = os.path.join(node_state_dir(self.sd, node), "nodes", node, "supervisor.json")
        try:
            with open(path) as f:
                pid = json.load(f)["services"][service]["pid"]
                return int(pid) if pid else None
        except (OSError, ValueError, KeyError):
            return None

    def pods(self, namespace: str = "default") -> dict[str, dict[str, Any]]:
        items = json.loads(self.cli("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: p for p in items}

    def pod_netns(self, name: str, namespace: str = "default") -> str:
        p = self.pods(namespace)[name]
        return pod_netns_name(p["spec"]["nodeName"], namespace, name, p["metadata"]["uid"])

    def ready(self, namespace: str = "default", timeout: str = "90s") -> None:
        self.cli("wait", "pods", "--all", "-n", namespace, "--for", "condition=Ready", "--timeout", timeout)

    def enforced(self, timeout: float = 30.0) -> None:
        """Every node's policy loop has synced the store's current revision."""
        from podnet.agent.policy import read_status
        from podnet.store.open import open_store

        store = open_store(self.sd, bootstrap=False)
        try:
            want = store.revision()
        finally:
            store.close()
        deadline = time.monotonic() + timeout
        while True:
            st = [read_status(node_state_dir(self.sd, n["name"]), n["name"]) for n in self.nodes()]
            if all(s and s["revision"] >= want and not s.get("error") for s in st):
                return
            assert time.monotonic() < deadline, f"policy not enforced at revision {want}: {st}"
            time.sleep(0.05)

    def churn_and_kill(self, i: int, rng: random.Random, policies: int = 2) -> str:
        """One step of a churn: a pod on a random node and a policy selecting the churn pods,
        then, at a random moment, SIGKILL of a random node process. Returns what was killed."""
        nodes = [n["name"] for n in self.nodes()]
        self.apply_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: churn{i}, namespace: default, labels: {{run: churn}}}}
spec:
  nodeName: {rng.choice(nodes)}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: churn-{i % policies}, namespace: default}}
spec:
  podSelector: {{matchLabels: {{run: churn}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{run: client{1 + i % 2}}}}}}}]}}]
""")
        time.sleep(rng.uniform(0, 0.5))
        node, service = rng.choice(nodes), rng.choice(["agent", "routing", "policy"])
        pid = self.service_pid(node, service)
        if pid:
            os.kill(pid, signal.SIGKILL)
        return f"{service}/{node}"

    def verify(self, *args: str) -> str:
        res = self.cli("verify", "--timeout", "0.5", *args, check=False, timeout=180)
        assert res.returncode == 0 and "OK:" in res.stdout, res.stdout + res.stderr
        return res.stdout


def connect(ns: str, ip: str, port: int, source: str | None = None, timeout: float = 1.0) -> str:
    """A TCP connection attempt from inside ``ns`` (optionally from ``source``):
    connected, refused, timeout or error:<reason>."""
    script = ("import socket, sys\n"
              "s = socket.socket()\n"
              "s.settimeout(float(sys.argv[4]))\n"
              "src = sys.argv[3]\n"
              "try:\n"
              "    src and s.bind((src, 0))\n"
              "    s.connect((sys.argv[1], int(sys.argv[2])))\n"
              "    print('connected')\n"
              "except ConnectionRefusedError:\n    print('refused')\n"
              "except (socket.timeout, TimeoutError):\n    print('timeout')\n"
              "except OSError as e:\n    print('error:' + str(e))\n")
    from podnet.kernel import netns

    res = netns.run_in(ns, [sys.executable, "-c", script, ip, str(port), source or "", str(timeout)],
                       timeout=timeout + 10)
    return res.stdout.strip() or "error:" + res.stderr.strip()[-200:]
