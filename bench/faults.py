"""Fault benchmark: the full counts of tests/faults, every figure as counts (root).

1. etcd leader SIGKILLed during compare-and-set writes, N times (3 members, TLS, loopback):
   time until writes resume (p50/p99/max), acknowledged writes lost, unknown outcomes (and how
   many of them happened), watch gaps and reversals across the kills;
2. concurrent CNI ADD/DEL with the plugin SIGKILLed at random points: duplicate and leaked
   addresses, leaked veths;
3. a `podnet up --store etcd` cluster: a crashed agent back (s), a hung agent (SIGSTOP) back
   (s); kill -9 of random node processes during a churn of pods and policies, then probe
   disagreements and leaks; every etcd member paused for the outage: changes on the probe
   matrix during it, CNI ADD failure time, convergence after the heal; a pod started while its
   node's policy loop is stopped: allowed probes before its policy is in place.

Run: sudo .venv/bin/python bench/faults.py [--leader-kills 20] [--cni 500] [--kills 100] [--outage 60]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from podnet.agent.cnicall import CniCallFailed, CniRuntime  # noqa: E402
from podnet.cluster.datastore import etcd_cluster, node_state_dir  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.kernel.probe import REACHED, probe  # noqa: E402
from podnet.testing.cli_cluster import EX, Cluster  # noqa: E402
from podnet.testing.cluster_audit import audit  # noqa: E402
from podnet.testing.cni_faults import run_cni_churn  # noqa: E402
from podnet.testing.cni_lab import cni_lab  # noqa: E402
from podnet.testing.etcd_lab import client, loopback_cluster  # noqa: E402
from podnet.testing.history import check_register, register_history, run_register  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def bench_leader_kills(tmp: str, kills: int) -> None:
    resumes, lost, unknown, applied, ok, gaps, reversals = [], 0, 0, 0, 0, 0, 0
    with loopback_cluster(os.path.join(tmp, "etcd")) as cluster:
        for i in range(kills):
            leader = cluster.leader()
            killed: list[float] = []

            def kill() -> None:
                time.sleep(0.7)
                killed.append(time.monotonic())  # noqa: B023
                cluster.kill(leader.name)  # noqa: B023

            key = f"/register/{i}"
            ops = run_register(lambda: client(cluster), key, writers=3, seconds=6.0, during=kill)
            store = client(cluster)
            report = check_register(ops, register_history(store, key))
            store.close()
            after = [o.end for o in ops if o.outcome == "ok" and o.start >= killed[0]]
            resumes.append(min(after) - killed[0] if after else float("inf"))
            lost += len(report.lost) + len(report.misplaced)
            unknown += report.unknown
            applied += report.unknown_applied
            ok += report.ok
            gaps += report.skipped + report.duplicates
            reversals += report.reversals
            cluster.start_member(leader)
            cluster.wait_healthy()
    print(f"leader SIGKILL x{kills} during CAS writes (3 writers): writes resume p50 {pct(resumes, 50):.2f} s, "
          f"p99 {pct(resumes, 99):.2f} s, max {max(resumes):.2f} s; {ok} acknowledged, {lost} lost; "
          f"{unknown} unknown outcomes ({applied} of them happened); history gaps/duplicates {gaps}, "
          f"reversals {reversals}")


def bench_cni(tmp: str, count: int, prefix: str) -> None:
    with cni_lab(os.path.join(tmp, "cni"), prefix, serve=False) as lab:
        t0 = time.monotonic()
        r = run_cni_churn(lab, count=count, concurrency=32, seed=1)
        took = time.monotonic() - t0
    print(f"CNI ADD/DEL x{count} (32 at once) with random plugin kills: {r.killed} killed mid-ADD, {r.added} added, "
          f"{r.failed} failed; duplicate addresses {len(r.duplicate_ips)}, leaked handles {r.leaked_handles}, "
          f"leaked addresses {r.leaked_addresses}, leaked veths {len(r.leaked_links)}, DEL errors "
          f"{len(r.del_errors)} ({took:.0f} s)")


def wait_new_pid(c: Cluster, node: str, service: str, old: int, timeout: float = 60) -> float:
    t0 = time.monotonic()
    while c.service_pid(node, service) in (None, old):
        if time.monotonic() - t0 > timeout:
            return float("inf")
        time.sleep(0.01)
    return time.monotonic() - t0


def pairs(c: Cluster) -> list[tuple[str, str]]:
    pods = c.pods()
    return [(c.pod_netns(s), p["status"]["podIP"]) for s in pods for d, p in pods.items() if s != d]


def matrix(targets: list[tuple[str, str]]) -> list[bool]:
    return [probe(ns, ip, 80, "TCP", 0.5)[0] in REACHED for ns, ip in targets]


def bench_cluster(tmp: str, prefix: str, kills: int, outage: float) -> None:
    c = Cluster(os.path.join(tmp, "lab"), prefix)
    c.cli("up", "--nodes", "3", "--store", "etcd", "--prefix", prefix, timeout=300)
    try:
        c.apply_text((EX / "s1" / "web.yaml").read_text() + "\n---\n" + (EX / "s1" / "clients.yaml").read_text())
        c.ready()
        c.cli("apply", "-f", str(EX / "s1" / "pod_policy.yaml"))
        c.enforced()
        node = "k8s-node01"

        pid = c.service_pid(node, "agent")
        assert pid
        os.kill(pid, signal.SIGKILL)
        crashed = wait_new_pid(c, node, "agent", pid)
        pid = c.service_pid(node, "agent")
        assert pid
        os.kill(pid, signal.SIGSTOP)
        hung = wait_new_pid(c, node, "agent", pid)
        print(f"supervision: a crashed agent back in {crashed:.2f} s; a hung agent (SIGSTOP) back in {hung:.1f} s "
              f"(watchdog 10 s in the lab, 30 s in the units)")

        rng = random.Random(14)
        t0 = time.monotonic()
        for i in range(kills):
            c.churn_and_kill(i, rng, policies=3)
            if i >= 2:
                c.cli("delete", "pod", f"churn{i - 2}")
        c.ready(timeout="300s")
        c.enforced(timeout=120)
        verify = c.cli("verify", "--timeout", "0.5", "-n", "default", "--ports", "80", check=False, timeout=600)
        result = audit(c.sd)
        print(f"kill -9 x{kills} of node processes during churn ({time.monotonic() - t0:.0f} s): "
              f"{verify.stdout.strip().splitlines()[-1] if verify.stdout.strip() else verify.stderr.strip()}; "
              f"leaks {json.dumps({k: v for k, v in result.to_dict().items() if k != 'pods' and v})} "
              f"({result.pods} pods)")

        etcd = etcd_cluster(c.state())
        assert etcd is not None
        targets = pairs(c)
        before = matrix(targets)
        for m in etcd.members:
            etcd.kill(m.name, signal.SIGSTOP)
        paused = time.monotonic()
        changes = rounds = 0
        run_dir = os.path.join(node_state_dir(c.sd, node), "nodes", node)
        with open(os.path.join(run_dir, "cni", "net.d", "10-podnet.conflist")) as f:
            runtime = CniRuntime(json.load(f), bin_dirs=(os.path.join(run_dir, "cni", "bin"),),
                                 netns_exec=netns.nsenter_argv(c.node_ns(node), [])[:-1])
        pod_ns = f"{prefix}outage"
        netns.create(pod_ns)
        t = time.monotonic()
        try:
            runtime.call("ADD", "outage", netns.path(pod_ns), "eth0", timeout=60)
            cni = "succeeded?!"
        except CniCallFailed as exc:
            cni = f"failed in {time.monotonic() - t:.1f} s ({exc.msg[:60]}…)"
        netns.remove(pod_ns)
        while time.monotonic() - paused < outage:
            changes += sum(a != b for a, b in zip(before, matrix(targets)))
            rounds += 1
        for m in etcd.members:
            etcd.kill(m.name, signal.SIGCONT)
        healed = time.monotonic()
        c.apply_text("""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: after-heal, namespace: default}
spec:
  podSelector: {matchLabels: {run: client1}}
  policyTypes: [Ingress]
""")
        c.enforced(timeout=120)
        print(f"every etcd member paused {outage:.0f} s: {changes} changes in {rounds} probe rounds of "
              f"{len(targets)} pairs; CNI ADD {cni}; a new policy enforced on every node "
              f"{time.monotonic() - healed:.1f} s after the heal")

        pol = c.service_pid(node, "policy")
        assert pol
        os.kill(pol, signal.SIGSTOP)
        c.apply_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: late, namespace: default, labels: {{run: late}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: late-deny, namespace: default}}
spec:
  podSelector: {{matchLabels: {{run: late}}}}
  policyTypes: [Ingress]
""")
        allowed = tries = 0
        ip = None
        client_ns = c.pod_netns("client1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pods = c.pods()
            ip = pods.get("late", {}).get("status", {}).get("podIP")
            if ip:
                break
            time.sleep(0.1)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 3:  # the policy loop is still stopped: fail closed
            tries += 1
            allowed += probe(client_ns, ip or "0.0.0.0", 80, "TCP", 0.3)[0] in REACHED
        os.kill(pol, signal.SIGCONT)
        c.enforced(timeout=60)
        for _ in range(5):
            tries += 1
            allowed += probe(client_ns, ip or "0.0.0.0", 80, "TCP", 0.3)[0] in REACHED
        print(f"a pod started while its node's policy loop was stopped: {allowed} of {tries} probes allowed")
    finally:
        c.cli("down", check=False, timeout=300)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leader-kills", type=int, default=20)
    ap.add_argument("--cni", type=int, default=500)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--outage", type=float, default=60.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/faults.py needs root (namespaces, nftables)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # cleanups run on SIGTERM too
    tmp = tempfile.mkdtemp(prefix="podnet-bench-faults-")
    prefix = f"bf-{os.getpid() % 10000}-"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    try:
        if args.leader_kills:
            bench_leader_kills(tmp, args.leader_kills)
        if args.cni:
            bench_cni(tmp, args.cni, prefix + "c")
        if args.kills or args.outage:
            bench_cluster(tmp, prefix, args.kills, args.outage)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
