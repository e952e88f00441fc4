"""CNI benchmark: podnet-cni vs Debian's reference bridge + host-local, invoked the same way.

1. ADD and DEL latency, p50/p99, over N interleaved runs (default 500): for each run a fresh
   container namespace is made outside the timer, then podnet ADD, reference ADD, podnet DEL,
   reference DEL are each timed as one exec of the plugin (env + JSON on stdin) from a process
   sitting in the node namespace. The reference gets its own subnet and a private dataDir.
2. The same for podnet-cni's in-process fallback (no agent listening), fewer runs.
3. 100 pods on one node to Running with `podnet agent` + `podnet controllers`: total time and
   memory per pod (container processes' PSS, and the machine's MemAvailable drop), with each
   container in its sandbox (bubblewrap) and, side by side, without (`--no-sandbox`).

Usage: .venv/bin/python bench/cni.py [--runs 500] [--pods 100]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.kernel import netns  # noqa: E402
from podnet.testing.cni_lab import Lab, cni_lab, make_node_ns  # noqa: E402

REF = "/usr/lib/cni"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def call(exe: str, conf: dict, command: str, cid: str, ns_path: str, env_extra: dict | None = None) -> float:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": ns_path, "CNI_IFNAME": "eth0", "CNI_PATH": f"{os.path.dirname(exe)}:{REF}",
           **(env_extra or {})}
    data = json.dumps(conf).encode()
    t = time.perf_counter()
    proc = subprocess.run([exe], input=data, env=env, capture_output=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return dt * 1000


def _exec_ms(argv: list[str]) -> float:
    """One exec with nothing to do: the start-up floor the plugin cannot go below."""
    t = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return (time.perf_counter() - t) * 1000


def latency(runs: int, inprocess_runs: int) -> None:
    tag = secrets.token_hex(3)
    work = tempfile.mkdtemp(prefix="podnet-bench-")
    made: list[str] = []
    try:
        with cni_lab(work, f"pcb-{tag}-", serve=True) as lab:  # the agent's side served in this process
            _latency(lab, runs, inprocess_runs, tag, made)
    finally:
        for n in made:
            netns.remove(n)
        shutil.rmtree(work, ignore_errors=True)


def _latency(lab: Lab, runs: int, inprocess_runs: int, tag: str, made: list[str]) -> None:
    """The interleaved runs; ``made`` lists the container namespaces not yet removed."""
    node, exe, cl = lab.node_ns, os.path.join(lab.bin_dir, "podnet-cni"), lab.conflist
    podnet_conf = {**cl["plugins"][0], "name": cl["name"], "cniVersion": "1.0.0"}
    ref_conf = {"cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "cni-bench0",
                "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "subnet": "10.245.0.0/16", "dataDir": os.path.join(os.path.dirname(lab.state_dir), "hl"),
                         "routes": [{"dst": "0.0.0.0/0"}]}}
    ref = os.path.join(REF, "bridge")
    res: dict[str, list[float]] = {k: [] for k in ("p_add", "p_del", "r_add", "r_del", "i_add", "i_del")}
    with netns.enter(node):  # plugins run in the node namespace, as a runtime would call them
        for i in range(runs + inprocess_runs):
            a, b = f"pcb-{tag}-a{i}", f"pcb-{tag}-b{i}"
            netns.create(a)
            netns.create(b)
            made += [a, b]
            if i < runs:
                res["p_add"].append(call(exe, podnet_conf, "ADD", f"c{i}", netns.path(a)))
                res["r_add"].append(call(ref, ref_conf, "ADD", f"c{i}", netns.path(b)))
                res["p_del"].append(call(exe, podnet_conf, "DEL", f"c{i}", netns.path(a)))
                res["r_del"].append(call(ref, ref_conf, "DEL", f"c{i}", netns.path(b)))
            else:
                env = {"PODNET_CNI_INPROCESS": "1"}
                res["i_add"].append(call(exe, podnet_conf, "ADD", f"c{i}", netns.path(a), env))
                res["i_del"].append(call(exe, podnet_conf, "DEL", f"c{i}", netns.path(a), env))
            netns.remove(a)
            netns.remove(b)
            del made[-2:]
    ver = [call(exe, podnet_conf, "VERSION", "", "") for _ in range(50)]
    ver_ref = [call(ref, ref_conf, "VERSION", "", "") for _ in range(50)]
    floor = [_exec_ms(["/usr/bin/python3", "-IS", "-c", "pass"]) for _ in range(50)]
    true = [_exec_ms(["/bin/true"]) for _ in range(50)]
    print(f"== CNI latency, {runs} interleaved runs (ms)           p50     p99    mean")
    for label, key in (("podnet-cni ADD (thin plugin → agent)", "p_add"), ("bridge+host-local ADD", "r_add"),
                       ("podnet-cni DEL", "p_del"), ("bridge+host-local DEL", "r_del"),
                       (f"podnet-cni ADD in-process ({inprocess_runs} runs)", "i_add"),
                       (f"podnet-cni DEL in-process ({inprocess_runs} runs)", "i_del")):
        xs = res[key]
        if xs:
            print(f"  {label:<46} {pct(xs, 50):7.1f} {pct(xs, 99):7.1f} {statistics.mean(xs):7.1f}")
    print(f"  {'exec only: VERSION podnet-cni / bridge':<46} {pct(ver, 50):7.1f} / {pct(ver_ref, 50):.1f}")
    print(f"  {'start floor: python3 -IS -c pass / /bin/true':<46} {pct(floor, 50):7.1f} / {pct(true, 50):.1f}")
    print(f"  ADD p50 ratio podnet/reference: {pct(res['p_add'], 50) / pct(res['r_add'], 50):.2f}x"
          f"   DEL p50 ratio: {pct(res['p_del'], 50) / pct(res['r_del'], 50):.2f}x")


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _with_children(pid: int) -> list[int]:
    """A container's recorded PID (its sandbox's init) and the processes under it."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return [pid, *[p for c in children for p in _with_children(c)]]


def hundred_pods(n: int, sandbox: bool = True) -> float:
    from podnet.model.core import Node, Pod
    from podnet.store.open import open_store

    tag = secrets.token_hex(3)
    node, node_ns = f"pcb-{tag}-n1", f"pcb-{tag}-node"
    work = tempfile.mkdtemp(prefix="podnet-bench-")
    state = os.path.join(work, "state")
    make_node_ns(node_ns)
    procs: list[subprocess.Popen[bytes]] = []
    store = open_store(state)
    try:
        store.create(Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))
        py = sys.executable
        log = open(os.path.join(work, "agent.log"), "ab")
        procs.append(subprocess.Popen(netns.nsenter_argv(node_ns, [py, "-m", "podnet.cli.main", "--state-dir", state,
                                                                    "agent", "--node", node, "--resync", "0.5",
                                                                    "--sandbox" if sandbox else "--no-sandbox"]),
                                      stdout=log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([py, "-m", "podnet.cli.main", "--state-dir", state, "controllers",
                                       "--resync", "0.5"], stdout=log, stderr=subprocess.STDOUT))
        ready = os.path.join(state, "nodes", node, "agent.ready")
        while not os.path.exists(ready):
            time.sleep(0.01)
        time.sleep(0.5)
        mem0 = _meminfo("MemAvailable")
        t0 = time.perf_counter()
        pods = [Pod.model_validate({"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}) for i in range(n)]
        store.apply(pods)
        while True:
            running = [p for p in store.list(Pod, "default") if p.status.phase == "Running" and p.status.pod_ip]
            if len(running) == n:
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"only {len(running)}/{n} pods Running after 300 s")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        time.sleep(1)
        mem1 = _meminfo("MemAvailable")
        pids = []
        for d in os.listdir(os.path.join(state, "nodes", node, "pods")):
            with open(os.path.join(state, "nodes", node, "pods", d, "pod.json")) as f:
                pids += [p for c in json.load(f)["containers"] if c["pid"] for p in _with_children(c["pid"])]
        pss = sum(_pss_kib(p) for p in pids)
        print(f"== {n} pods (nginx → built-in HTTP server) on one node to Running, "
              f"{'each container sandboxed' if sandbox else 'no sandbox'}")
        print(f"  total {total:.2f} s ({total / n * 1000:.0f} ms/pod, scheduler + agent + CNI ADD + process start)")
        print(f"  memory per pod: container process PSS {pss / n / 1024:.1f} MiB;"
              f" MemAvailable drop {(mem0 - mem1) / n / 1024:.1f} MiB (processes + netns + veth + store)")
        t1 = time.perf_counter()
        procs[0].send_signal(signal.SIGTERM)  # the agent tears all its pods down
        procs[0].wait(timeout=300)
        print(f"  agent stop with {n} pods (stop processes, CNI DEL, remove netns): {time.perf_counter() - t1:.2f} s")
        return total
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
        store.close()
        for name in netns.list_all():
            if name.startswith(node + "-"):  # pod sandboxes the agent failed to remove
                netns.remove(name, only_owned=False)
        netns.remove(node_ns)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--inprocess-runs", type=int, default=30)
    ap.add_argument("--pods", type=int, default=100)
    a = ap.parse_args()
    if a.runs:
        latency(a.runs, a.inprocess_runs)
    if a.pods:
        sandboxed, bare = hundred_pods(a.pods, sandbox=True), hundred_pods(a.pods, sandbox=False)
        print(f"== sandboxed / unsandboxed time to {a.pods} pods Running: {sandboxed / bare:.2f}x")


if __name__ == "__main__":
    main()
