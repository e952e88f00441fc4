"""Fault benchmark, part two: convergence and continuity figures bench/faults.py does not take.

1. Restart convergence at scale: a `podnet up` cluster with N pods and M NetworkPolicies; a
   fixed set of pod pairs (allowed and denied ones, into the pods of one node) is probed
   continuously while that node's agent, and separately its policy loop, is SIGKILLed and
   restarted by the node's supervisor. Reported: seconds from the kill until the new process
   has converged (the policy loop: its first pass enforced the store's revision, `policy.json`;
   the agent: its first pass over the node's pods completed, `podnet_loop_passes_total`), what
   that first pass changed in the kernel, the CPU time the new process used until then (the
   part the machine's load does not stretch), and probe flips (any pair whose outcome differs
   from before the kill) during it;
2. A watch behind compaction: a consumer (the policy loop's `LiveView` on `LoopRunner`) at
   revision R whose watch stream broke (its member SIGKILLed), K writes and a compaction past
   R meanwhile; seconds from its next try until it re-listed and holds the store's state, and
   until it follows the watch again (a write after that seen without another full read);
3. One node cut off from etcd on the underlay (an nftables blackhole in the node's namespace,
   never the root namespace): seconds until each of the node's processes reports the loss
   (its first error line in its log after the cut), and until the node turns NotReady;
4. A running TCP flow between pods on two nodes, counted per second by the receiver, while the
   agent, policy loop and routing loop of both nodes are SIGKILLed at random, K times: the
   minimum per-second throughput and the seconds with zero bytes.

Run: sudo .venv/bin/python bench/faults_converge.py [--quick] [--store etcd|sqlite]
     [--pods 200] [--policies 1000] [--restarts 5] [--kills 100] [--writes 2000]
     [--skip restart,compaction,cutoff,flow]
Figures and what they mean: docs/cluster.md, "Figures under faults".
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from podnet.agent.pods import pod_netns_name  # noqa: E402
from podnet.agent.policy import read_status  # noqa: E402
from podnet.cluster.datastore import etcd_cluster, node_state_dir  # noqa: E402
from podnet.kernel.probe import REACHED, probe  # noqa: E402
from podnet.testing import faultkit  # noqa: E402
from podnet.testing.cli_cluster import Cluster  # noqa: E402
from podnet.testing.etcd_lab import loopback_cluster  # noqa: E402
from podnet.testing.tcp_flow import TcpFlow  # noqa: E402
from podnet.testing.watch_lab import behind_compaction  # noqa: E402

NODE = "k8s-node01"  # the node whose processes are restarted or cut off
PEER = "k8s-node02"
NODES = ("k8s-master01", "k8s-node01", "k8s-node02")
APPS, TIERS = 40, 5


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


# -- the lab -------------------------------------------------------------------------------

def pods_yaml(count: int) -> str:
    """``count`` sleeping pods spread over the nodes; app and tier labels for the policies."""
    docs = []
    for i in range(count):
        docs.append(f"""apiVersion: v1
kind: Pod
metadata: {{name: p{i}, namespace: default, labels: {{app: a{i % APPS}, tier: t{i % TIERS}}}}}
spec:
  nodeName: {NODES[i % len(NODES)]}
  containers: [{{name: c, image: busybox, command: [sleep, "360000"]}}]""")
    return "\n---\n".join(docs)


def policies_yaml(count: int) -> str:
    """``count`` NetworkPolicies: each selects one app and admits one tier on one port (80 for
    a fifth of them), so every pod is isolated and admits a fifth of the others on port 80."""
    docs = []
    for j in range(count):
        port = 80 if j % 5 == 0 else 8000 + j
        docs.append(f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: np{j}, namespace: default}}
spec:
  podSelector: {{matchLabels: {{app: a{j % APPS}}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{tier: t{j % TIERS}}}}}}}], ports: [{{port: {port}}}]}}]""")
    return "\n---\n".join(docs)


Pair = tuple[str, str]  # (source pod's netns, destination IP)


def probe_pairs(c: Cluster, count: int) -> tuple[list[Pair], list[bool]]:
    """``count`` pairs into the pods of NODE from pods of other nodes, half of them allowed."""
    pods = c.pods()
    ns = {n: pod_netns_name(p["spec"]["nodeName"], "default", n, p["metadata"]["uid"]) for n, p in pods.items()}
    dst = [n for n, p in pods.items() if p["spec"]["nodeName"] == NODE and n.startswith("p")]
    src = [n for n, p in pods.items() if p["spec"]["nodeName"] != NODE and n.startswith("p")]
    rng = random.Random(5)
    rng.shuffle(src)
    rng.shuffle(dst)
    allowed: list[Pair] = []
    denied: list[Pair] = []
    for s in src:
        for d in dst:
            # port 80 is in the policies np{j} with j % 5 == 0: they select apps a0, a5, ... and
            # admit tier t0, so d admits s on port 80 iff both indexes are multiples of 5
            admitted = int(d[1:]) % 5 == 0 and int(s[1:]) % 5 == 0
            (allowed if admitted else denied).append((ns[s], pods[d]["status"]["podIP"]))
    pairs = allowed[:count // 2] + denied[:count - count // 2]
    return pairs, probe_round(pairs)


POOL = concurrent.futures.ThreadPoolExecutor(32)


def probe_round(pairs: list[Pair]) -> list[bool]:
    return list(POOL.map(lambda p: probe(p[0], p[1], 80, "TCP", 0.3)[0] in REACHED, pairs))


class Prober:
    """Probes ``pairs`` round after round in a thread; counts outcomes that differ from ``want``."""

    def __init__(self, pairs: list[Pair], want: list[bool]) -> None:
        self.pairs, self.want = pairs, want
        self.rounds = self.flips = 0
        self.flipped: list[tuple[float, Pair, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for pair, want, got in zip(self.pairs, self.want, probe_round(self.pairs)):
                if got != want:
                    self.flips += 1
                    self.flipped.append((time.monotonic(), pair, got))
            self.rounds += 1

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def scrape(ns: str, address: str, port: int, timeout: float = 1.0) -> dict[str, float]:
    """A process's Prometheus metrics, read through a socket opened in the node's namespace."""
    import socket

    from podnet.kernel.probe import _socket_in

    s = _socket_in(ns, socket.AF_INET, socket.SOCK_STREAM, 0)
    s.settimeout(timeout)
    with s:
        s.connect((address, port))
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    out: dict[str, float] = {}
    for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def store_revision(c: Cluster) -> int:
    from podnet.store.open import open_store

    store = open_store(c.sd, bootstrap=False)
    try:
        return store.revision()
    finally:
        store.close()


def wait_new_pid(c: Cluster, node: str, service: str, old: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (pid := c.service_pid(node, service)) in (None, old):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service} on {node} was not restarted")
        time.sleep(0.005)
    assert pid is not None
    return pid


def policy_converged(c: Cluster, killed_wall: float, want: int, timeout: float = 120) -> dict[str, Any]:
    """The first pass of the restarted policy loop that enforced revision ``want``."""
    sd = node_state_dir(c.sd, NODE)
    deadline = time.monotonic() + timeout
    while True:
        st = read_status(sd, NODE)
        if st and st["synced_at"] > killed_wall and st["revision"] >= want and not st.get("error"):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError(f"the policy loop did not converge: {st}")
        time.sleep(0.005)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (what it cost, whatever the machine's load)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def supervisor_exit(c: Cluster, service: str) -> str:
    from podnet.cluster.supervisor import read_status as supervisor_status

    st = supervisor_status(os.path.join(node_state_dir(c.sd, NODE), "nodes", NODE)) or {}
    return str(st.get("services", {}).get(service, {}).get("last_exit"))


def agent_converged(c: Cluster, pid: int, again: list[str], timeout: float = 120) -> float:
    """The restarted agent (``pid``, or its successors: their exits go to ``again``) completed
    a pass over the node's pods; returns when its metrics first answered (it had started and
    loaded its code)."""
    ns, address = c.node_ns(NODE), c.node_address(NODE)
    deadline = time.monotonic() + timeout
    answered = 0.0
    while True:
        now = c.service_pid(NODE, "agent")
        if now not in (None, pid):
            again.append(supervisor_exit(c, "agent"))
            pid, answered = now, 0.0
        try:
            passes = scrape(ns, address, 9091, 0.5).get('podnet_loop_passes_total{loop="agent"}', 0)
            answered = answered or time.monotonic()
            if passes >= 1:
                return answered
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the agent did not complete a pass")
        time.sleep(0.01)


def bench_restart(c: Cluster, restarts: int, pods: int, policies: int) -> None:
    pairs, want = probe_pairs(c, 24)
    assert probe_round(pairs) == want, "the probe matrix is not stable before the kills"
    print(f"restart convergence at {pods} pods / {policies} NetworkPolicies; {len(pairs)} probed pairs into "
          f"{NODE}'s pods ({sum(want)} allowed, {len(want) - sum(want)} denied)")
    for service in ("policy", "agent"):
        times: list[float] = []
        back: list[float] = []
        first_pass: list[float] = []
        cpu: list[float] = []
        changes: list[str] = []
        again: list[str] = []  # exits of a restarted process before it converged
        flips = rounds = 0
        for _ in range(restarts):
            rev = store_revision(c)
            old = c.service_pid(NODE, service)
            assert old
            with Prober(pairs, want) as prober:
                time.sleep(0.5)
                killed, killed_wall = time.monotonic(), time.time()
                os.kill(old, signal.SIGKILL)
                pid = wait_new_pid(c, NODE, service, old)
                back.append(time.monotonic() - killed)
                if service == "policy":
                    st = policy_converged(c, killed_wall, rev)
                    plan = {k: v for k, v in st.get("plan", {}).items() if v and k not in ("touched_chains",)}
                    changes.append(json.dumps(plan, sort_keys=True) if plan else "nothing")
                    first_pass.append(float(st["seconds"]))
                    times.append(time.monotonic() - killed)
                    cpu.append(cpu_seconds(pid))
                else:
                    answered = agent_converged(c, pid, again)
                    times.append(time.monotonic() - killed)
                    cpu.append(cpu_seconds(c.service_pid(NODE, "agent")))
                    first_pass.append(time.monotonic() - answered)
                time.sleep(1.0)
            flips += prober.flips
            rounds += prober.rounds
        what = "policy loop" if service == "policy" else "agent"
        extra = f"; its first pass changed: {', '.join(sorted(set(changes)))}" if changes else ""
        if service == "agent":
            extra += f"; exited again before converging: {len(again)} ({'; '.join(sorted(set(again)))})"
        part = ("the first pass itself" if service == "policy" else
                "from its metrics answering (process started, code loaded) to that pass's end")
        print(f"  {what} SIGKILL x{restarts}: restarted in median {statistics.median(back):.2f} s; converged "
              f"(kill -> {'its first pass enforced the store revision' if service == 'policy' else 'its first pass over the pods'}) "
              f"median {statistics.median(times):.2f} s, max {max(times):.2f} s (goal <= 2 s), of which {part} "
              f"median {statistics.median(first_pass):.2f} s; CPU time the new process used until then median "
              f"{statistics.median(cpu):.2f} s; "
              f"{flips} probe flips in {rounds} rounds of {len(pairs)} pairs{extra}")


# -- 3: a node cut off from etcd -------------------------------------------------------------

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ (ERROR|WARNING) (.*)$")


def first_error_after(path: str, since_wall: float) -> tuple[float, str] | None:
    """The first ERROR/WARNING line of a loop's log written after ``since_wall``."""
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        m = LOG_TIME.match(line)
        if not m:
            continue
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if when >= since_wall:
            return when - since_wall, m.group(3)[:90]
    return None


def node_row(c: Cluster, node: str) -> str:
    return next(line for line in c.cli("get", "nodes").stdout.splitlines() if line.startswith(node)) + " "


def bench_cutoff(c: Cluster, hold: float) -> None:
    etcd = etcd_cluster(c.state())
    if etcd is None:
        print("etcd cut-off: skipped (the embedded store has no connection to lose)")
        return
    ns = c.node_ns(NODE)
    addresses = sorted({m.address for m in etcd.members})
    logs = os.path.join(c.sd, "logs")
    time.sleep(6)  # every process's connections idle past the keepalive's idle time, as in a quiet cluster
    cut, cut_mono = time.time(), time.monotonic()
    faultkit.blackhole(ns, addresses, 2379)
    not_ready = None
    try:
        while time.monotonic() - cut_mono < hold:
            if not_ready is None and "NotReady" in node_row(c, NODE):
                not_ready = time.monotonic() - cut_mono
            time.sleep(0.5)
    finally:
        faultkit.heal(ns)
    noticed = {svc: first_error_after(os.path.join(logs, f"{NODE}-{svc}.log"), cut)
               for svc in ("agent", "policy", "routing", "proxy")}
    parts = [f"{svc} {r[0]:.1f} s ({r[1]})" if r else f"{svc} not within {hold:.0f} s"
             for svc, r in noticed.items()]
    print(f"{NODE} cut off from etcd ({', '.join(addresses)}:2379 blackholed in its namespace) for {hold:.0f} s: "
          f"first error reported by {'; '.join(parts)}; NotReady after "
          f"{f'{not_ready:.1f} s' if not_ready is not None else 'never'} (goal: loss noticed <= 15 s)")


# -- 4: a running flow while node processes are killed -----------------------------------------

def bench_flow(c: Cluster, kills: int, rate: int) -> None:
    c.apply_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: flow-src, namespace: default, labels: {{run: flow}}}}
spec:
  nodeName: {NODE}
  containers: [{{name: c, image: busybox, command: [sleep, "360000"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: flow-dst, namespace: default, labels: {{run: flow}}}}
spec:
  nodeName: {PEER}
  containers: [{{name: c, image: busybox, command: [sleep, "360000"]}}]
""")
    c.cli("wait", "pods", "flow-src", "flow-dst", "--for", "condition=Ready", "--timeout", "120s")
    src, dst = c.pod_netns("flow-src"), c.pod_netns("flow-dst")
    ip = c.pods()["flow-dst"]["status"]["podIP"]
    rng = random.Random(4)
    killed: dict[str, int] = {}
    with TcpFlow(src, dst, ip, rate=rate) as flow:
        flow.settle(3)
        for _ in range(kills):
            node, service = rng.choice((NODE, PEER)), rng.choice(("agent", "policy", "routing"))
            deadline = time.monotonic() + 30
            while (pid := c.service_pid(node, service)) is None and time.monotonic() < deadline:
                time.sleep(0.05)  # still being restarted after an earlier kill
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed[service] = killed.get(service, 0) + 1
            time.sleep(rng.uniform(0.5, 1.5))
        flow.settle(3)
    per_second, zero = flow.result.per_second, flow.result.zero_seconds
    print(f"TCP flow {NODE} -> {PEER} at {rate / 1e6:.1f} MB/s offered, {len(per_second)} s, while "
          f"{sum(killed.values())} SIGKILLs hit {json.dumps(killed, sort_keys=True)} on both nodes: per-second "
          f"throughput min {min(per_second) / 1e6:.2f} MB/s, median {statistics.median(per_second) / 1e6:.2f} MB/s; "
          f"{zero} seconds with zero bytes (goal 0)")
    c.cli("delete", "pod", "flow-src", "flow-dst", check=False)


# -- 2: a watch behind compaction ------------------------------------------------------------

def bench_compaction(tmp: str, rounds: int, writes: int) -> None:
    relist, resume, full_reads = [], [], []
    with loopback_cluster(os.path.join(tmp, "etcd")) as cluster:
        for i in range(rounds):
            r = behind_compaction(cluster, writes=writes, prefix=f"/registry/configmaps/default/c{i}-")
            relist.append(r.relisted)
            resume.append(r.resumed)
            full_reads.append(r.full_reads)
            cluster.start_member(r.killed)
            cluster.wait_healthy()
    print(f"watch behind compaction ({writes} writes and a compaction while the consumer's stream was down, "
          f"x{rounds}): re-listed and holding the store's state p50 {pct(relist, 50):.2f} s, max {max(relist):.2f} s "
          f"(goal <= 2 s); then following the watch again (next write seen) p50 {pct(resume, 50) * 1000:.0f} ms, "
          f"max {max(resume) * 1000:.0f} ms; full reads per round {sorted(set(full_reads))}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a small cluster and few repetitions (a few minutes)")
    ap.add_argument("--store", choices=("etcd", "sqlite"), default="etcd")
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--compactions", type=int, default=5)
    ap.add_argument("--cutoff", type=float, default=25.0)
    ap.add_argument("--rate", type=int, default=4_000_000, help="bytes/s the flow offers")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: restart,compaction,cutoff,flow")
    args = ap.parse_args()
    if args.quick:
        args.pods, args.policies, args.restarts, args.kills, args.writes, args.compactions = 30, 100, 2, 10, 500, 2
    skip = set(filter(None, args.skip.split(",")))
    if os.geteuid() != 0:
        sys.exit("bench/faults_converge.py needs root (namespaces, nftables)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # cleanups run on SIGTERM too
    tmp = tempfile.mkdtemp(prefix="podnet-bench-converge-")
    prefix = f"bc-{os.getpid() % 10000}-"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; store: {args.store}", flush=True)
    try:
        if "compaction" not in skip:
            bench_compaction(tmp, args.compactions, args.writes)
        if skip >= {"restart", "cutoff", "flow"}:
            return
        c = Cluster(os.path.join(tmp, "lab"), prefix)
        t0 = time.monotonic()
        c.cli("up", "--nodes", "3", "--store", args.store, "--prefix", prefix, timeout=300)
        try:
            c.apply_text(pods_yaml(args.pods))
            c.cli("wait", "pods", "--all", "-n", "default", "--for", "condition=Ready", "--timeout", "900s",
                  timeout=960)
            t1 = time.monotonic()
            c.apply_text(policies_yaml(args.policies))
            c.enforced(timeout=300)
            print(f"lab: up + {args.pods} pods ready {t1 - t0:.0f} s; {args.policies} policies enforced on every node "
                  f"{time.monotonic() - t1:.1f} s later")
            if "restart" not in skip:
                bench_restart(c, args.restarts, args.pods, args.policies)
            if "flow" not in skip:
                bench_flow(c, args.kills, args.rate)
            if "cutoff" not in skip:
                bench_cutoff(c, args.cutoff)
        finally:
            c.cli("down", check=False, timeout=300)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
