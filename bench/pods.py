"""Pod lifecycle benchmark: what probes, readiness and rollouts cost, on one node namespace with
`podnet agent` and `podnet controllers` running as real processes.

1. Probe overhead: 100 pods with no probes, then the same 100 pods each with a 1 s httpGet
   readiness probe; the agent's CPU (user+system, % of one core) over the same window, side by
   side, and the probes it ran per second.
2. Readiness failure → Ready=False in the store: a pod with a 1 s exec readiness probe whose
   file is removed (and put back) N times; p50/p99 from the removal until the store shows the
   change (the probe period is part of it: the failure is seen at the next probe).
3. Rolling update of a 100-replica Deployment (agnhost netexec, --delay-shutdown=1, readiness
   on /readyz, default 25 %/25 % strategy) while a client pod requests the pods' addresses in a
   loop (the ready, not terminating ones, as an EndpointSlice lists them): time until `rollout
   status` reports success and every old pod is gone, requests made and failed.

Usage: sudo .venv/bin/python bench/pods.py [--pods 100] [--window 10] [--flips 20] [--replicas 100]
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.kernel import netns  # noqa: E402
from podnet.model import Deployment, Namespace, Node, Pod  # noqa: E402
from podnet.store.open import open_store  # noqa: E402

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.39"
TICK = os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Bench:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.node, self.node_ns = f"pbb-{tag}-n1", f"pbb-{tag}-node"
        self.work = tempfile.mkdtemp(prefix="podnet-bench-")
        self.state = os.path.join(self.work, "state")
        netns.create(self.node_ns)
        netns.run_in(self.node_ns, ["sh", "-c", "sysctl -qw net.ipv4.ip_forward=1 && ip addr add 192.168.200.1/32 "
                                    "dev lo && ip route add default dev lo"], check=True)
        self.store = open_store(self.state)
        self.store.create(Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node},
                                               "status": {"addresses": [{"type": "InternalIP",
                                                                         "address": "192.168.200.1"}]}}))
        self.store.update_status(self.store.get(Node, self.node))  # type: ignore[arg-type]
        py = sys.executable
        log = open(os.path.join(self.work, "procs.log"), "ab")
        self.agent = subprocess.Popen(netns.nsenter_argv(self.node_ns, [py, "-m", "podnet.cli.main", "--state-dir",
                                                                        self.state, "agent", "--node", self.node]),
                                      stdout=log, stderr=subprocess.STDOUT)
        self.controllers = subprocess.Popen([py, "-m", "podnet.cli.main", "--state-dir", self.state, "controllers"],
                                            stdout=log, stderr=subprocess.STDOUT)
        while not os.path.exists(os.path.join(self.state, "nodes", self.node, "agent.ready")):
            time.sleep(0.01)

    def agent_pid(self) -> int:
        with open(os.path.join(self.state, "nodes", self.node, "agent.ready")) as f:
            return int(f.read())

    def namespace(self, name: str) -> None:
        self.store.apply([Namespace.model_validate({"metadata": {"name": name}})])

    def wait(self, what: str, cond: Any, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {what}")
            time.sleep(0.05)

    def ready_count(self, ns: str) -> int:
        return sum(1 for p in self.store.list(Pod, ns) if p.ready)  # type: ignore[attr-defined]

    def delete_namespace(self, ns: str) -> None:
        self.store.delete(Namespace, ns)
        self.wait(f"namespace {ns} gone", lambda: self.store.get(Namespace, ns) is None)

    def close(self) -> None:
        for p in (self.agent, self.controllers):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (self.agent, self.controllers):
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
        self.store.close()
        for name in netns.list_all():
            if name.startswith(self.node + "-"):
                netns.remove(name, only_owned=False)
        netns.remove(self.node_ns)
        shutil.rmtree(self.work, ignore_errors=True)


def _pod(name: str, probe: dict | None) -> Pod:
    container: dict = {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}
    if probe is not None:
        container["readinessProbe"] = probe
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                               "spec": {"containers": [container]}})


def probe_overhead(b: Bench, n: int, window: float) -> None:
    results = {}
    for label, probe in (("no probes", None),
                         ("1 s httpGet readiness", {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1})):
        ns = f"bench-{secrets.token_hex(2)}"
        b.namespace(ns)
        b.store.apply([_pod(f"web-{i}", probe).with_meta(namespace=ns) for i in range(n)])
        b.wait(f"{n} pods ready", lambda ns=ns: b.ready_count(ns) == n)
        time.sleep(2)
        pid = b.agent_pid()
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        results[label] = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        b.delete_namespace(ns)
    print(f"== agent CPU with {n} pods (% of one core, {window:.0f} s window)")
    for label, value in results.items():
        print(f"  {label:<24} {value:5.1f} %")
    print(f"  probe overhead           {results['1 s httpGet readiness'] - results['no probes']:5.1f} % "
          f"({n} probes/s; goal ≤ 5 %)")


def readiness_latency(b: Bench, flips: int) -> None:
    ns = f"bench-{secrets.token_hex(2)}"
    b.namespace(ns)
    b.store.apply([Pod.model_validate({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flip", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "busybox",
                                 "command": ["sh", "-c", "touch ready && exec sleep 36000"],
                                 "readinessProbe": {"exec": {"command": ["cat", "ready"]}, "periodSeconds": 1,
                                                    "failureThreshold": 1}}]}})])

    def ready() -> bool:
        p = b.store.get(Pod, "flip", ns)
        return bool(p and p.ready)  # type: ignore[attr-defined]

    b.wait("flip ready", ready)
    path = os.path.join(b.state, "nodes", b.node, "pods", f"{ns}_flip", "ready")
    down, up = [], []
    for _ in range(flips):
        time.sleep(0.3)
        t0 = time.monotonic()
        os.unlink(path)
        b.wait("not ready", lambda: not ready(), 10)
        down.append(time.monotonic() - t0)
        t0 = time.monotonic()
        open(path, "w").close()
        b.wait("ready", ready, 10)
        up.append(time.monotonic() - t0)
    print(f"== readiness change → Ready condition in the store (1 s exec probe, {flips} flips, seconds)")
    for label, xs in (("failure → Ready=False", down), ("success → Ready=True", up)):
        print(f"  {label:<24} p50 {pct(xs, 50):.2f}  p99 {pct(xs, 99):.2f}  mean {statistics.mean(xs):.2f}")
    b.delete_namespace(ns)


LOOP = """import sys,time,urllib.request
ok=bad=0;i=0;errs=[]
while True:
    try: stop=open(sys.argv[2]).read()
    except OSError: stop=''
    if stop: break
    ips=[l for l in open(sys.argv[1]).read().split() if l]
    if not ips: time.sleep(0.01); continue
    ip=ips[i%len(ips)];i+=1
    try:
        urllib.request.urlopen(f'http://{ip}:8080/hostname',timeout=2).read();ok+=1
    except Exception as e:
        bad+=1;errs.append(f'{ip}: {e}')
open(sys.argv[3],'w').write(f'{ok} {bad}\\n'+'\\n'.join(errs[:5]))
"""


def rolling_update(b: Bench, replicas: int) -> None:
    from podnet.agent.pods import pod_netns_name

    ns = f"bench-{secrets.token_hex(2)}"
    b.namespace(ns)
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 10,
                         "containers": [{"name": "web", "image": AGNHOST,
                                         "args": ["netexec", "--http-port=8080", "--delay-shutdown=1"],
                                         "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                                            "periodSeconds": 1}}]}}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template}}
    client = Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
                                 "spec": {"containers": [{"name": "c", "image": "busybox",
                                                          "command": ["sleep", "36000"]}]}})
    b.store.apply([Deployment.model_validate(dep), client])
    b.wait("deployment ready", lambda: b.ready_count(ns) == replicas + 1)
    endpoints, stop_file, result = (os.path.join(b.work, n) for n in ("endpoints", "stop", "result"))
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            ips = [p.status.pod_ip for p in b.store.list(Pod, ns) if p.name.startswith("web-")  # type: ignore[attr-defined]
                   and p.ready and not p.metadata.deletion_timestamp]
            with open(endpoints + ".tmp", "w") as f:
                f.write("\n".join(ip or "" for ip in ips))
            os.replace(endpoints + ".tmp", endpoints)
            time.sleep(0.03)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    time.sleep(0.2)
    c = b.store.get(Pod, "client", ns)
    loop = netns.popen_in(pod_netns_name(b.node, ns, "client", c.metadata.uid or ""),  # type: ignore[union-attr]
                          ["/usr/bin/python3", "-c", LOOP, endpoints, stop_file, result])
    time.sleep(1)
    old = {p.name for p in b.store.list(Pod, ns) if p.name.startswith("web-")}
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", b.state, "set", "image", "deployment/web",
                    f"web={AGNHOST[:-4]}2.40", "-n", ns], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", b.state, "rollout", "status",
                    "deployment/web", "-n", ns, "--timeout", "600"], check=True, capture_output=True)
    rolled = time.monotonic() - t0
    b.wait("old pods gone", lambda: not old & {p.name for p in b.store.list(Pod, ns)})
    gone = time.monotonic() - t0
    with open(stop_file, "w") as f:
        f.write("stop")
    loop.wait(timeout=30)
    stop.set()
    publisher.join()
    with open(result) as f:
        ok, bad = map(int, f.readline().split())
    print(f"== rolling update of {replicas} replicas (25 %/25 %, readiness 1 s, delay-shutdown 1 s)")
    print(f"  rollout status success after {rolled:.1f} s; every old pod gone after {gone:.1f} s")
    print(f"  client loop to the ready endpoints: {ok} requests, {bad} failed")
    b.delete_namespace(ns)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--flips", type=int, default=20)
    ap.add_argument("--replicas", type=int, default=100)
    a = ap.parse_args()
    b = Bench()
    try:
        if a.pods:
            probe_overhead(b, a.pods, a.window)
        if a.flips:
            readiness_latency(b, a.flips)
        if a.replicas:
            rolling_update(b, a.replicas)
    finally:
        b.close()


if __name__ == "__main__":
    main()
