"""Dataplane benchmark: podnet's datapaths against hand-built references, measured side by
side in the same run (so machine noise hits both), plus route convergence and `podnet up` time.

  1. pod<->pod on one node   vs a hand-built veth topology of the same shape  (goal >= 0.95x)
  2. host-gw pod<->pod across nodes vs node<->node over the underlay           (goal >= 0.85x)
  3. VXLAN   pod<->pod across nodes vs node<->node                               (goal >= 0.75x)
  each: iperf3 single TCP stream (Gbit/s) and a 1-byte TCP request/response rate (req/s);
  each also with the eBPF fast path (``--fast-path``) on the same pods, in the same rounds
  (goals 1.0x, 0.95x, 0.85x: issue 16).
  4. a new node's routes on every peer: time from its reconcile start (bgp, vxlan)
  5. `podnet up` (bgp, wait for Established) for 3 and 10 nodes

Run as root: .venv/bin/python bench/dataplane.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from podnet.cluster import lifecycle  # noqa: E402
from podnet.cluster.lab import Lab  # noqa: E402
from podnet.kernel import netns, underlay  # noqa: E402
from podnet.kernel.fastpath import FastPath  # noqa: E402
from podnet.kernel.underlay import ipr_in  # noqa: E402

SAME_NODE, HOST_GW, VXLAN = ("pod<->pod same node vs hand-built", "host-gw pod<->pod vs node<->node",
                             "vxlan pod<->pod vs node<->node")
FAST_GOALS = {SAME_NODE: 1.0, HOST_GW: 0.95, VXLAN: 0.85}  # issue 16, with the fast path on

RR_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    b = c.recv(1)
    if not b: break
    c.sendall(b)
"""


def iperf(client_ns: str, server_ns: str, ip: str, seconds: float) -> float:
    srv = netns.popen_in(server_ns, ["iperf3", "-s", "-1", "-B", ip], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            res = netns.run_in(client_ns, ["iperf3", "-c", ip, "-t", str(seconds), "-J"], timeout=seconds + 20)
            try:
                return json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
            except (ValueError, KeyError):
                if srv.poll() is not None:  # the one-off server took the failed attempt: restart it
                    srv = netns.popen_in(server_ns, ["iperf3", "-s", "-1", "-B", ip], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                time.sleep(0.05)
        raise RuntimeError(f"iperf3 to {ip} failed: {res.stdout[-300:]}")
    finally:
        srv.kill()
        srv.wait()


def rr_rate(client_ns: str, server_ns: str, ip: str, seconds: float) -> float:
    srv = netns.popen_in(server_ns, ["/usr/bin/python3", "-c", RR_SERVER, ip], stdout=subprocess.PIPE, text=True)
    try:
        srv.stdout.readline()
        with netns.enter(client_ns):
            c = socket.socket()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect((ip, 7000))
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(100):
                c.sendall(b"x")
                c.recv(1)
            n += 100
        c.close()
        return n / seconds
    finally:
        srv.kill()
        srv.wait()


class FastPathToggle:
    """Turns the eBPF fast path on and off on every device of a lab's nodes, so the same pods
    are measured with and without it in one run."""

    def __init__(self, node_namespaces: list[str]) -> None:
        self.paths = [FastPath(ns) for ns in node_namespaces]
        for fp in self.paths:
            fp.enable_liberal_tracking()

    def on(self) -> None:
        for fp in self.paths:
            with ipr_in(fp.ns) as ipr:
                names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
            for name in names:
                if name != "lo":
                    fp.attach(name)

    def off(self) -> None:
        for fp in self.paths:
            for name in sorted(fp.attached):
                fp.detach(name)

    def taken(self) -> int:
        return sum(fp.stats().fast for fp in self.paths)

    def close(self) -> None:
        for fp in self.paths:
            fp.close()


def _measure(where: tuple[str, str, str], fast: FastPathToggle | None, what, secs: float) -> float:
    if fast:
        fast.on()
    try:
        return what(*where, secs)
    finally:
        if fast:
            fast.off()


def side_by_side(label: str, ours: tuple[str, str, str], ref: tuple[str, str, str], runs: int, secs: float,
                 goal: float, fast: FastPathToggle | None = None) -> dict:
    """podnet, podnet with the fast path (when ``fast``) and the reference, interleaved with
    the order rotating each round, so drift and load hit all of them alike."""
    variants: list[tuple[str, tuple[str, str, str], FastPathToggle | None]] = [("", ours, None), ("ref_", ref, None)]
    if fast:
        variants.insert(1, ("fast_", ours, fast))
    acc: dict[str, list[float]] = {f"{v}{k}": [] for v, _, _ in variants for k in ("bw", "rr")}
    for i in range(runs):
        k = i % len(variants)
        for name, where, fp in variants[k:] + variants[:k]:
            acc[name + "bw"].append(_measure(where, fp, iperf, secs))
    for i in range(max(5, 2 * runs)):  # short and many: the request/response rate is load-sensitive
        k = i % len(variants)
        for name, where, fp in variants[k:] + variants[:k]:
            acc[name + "rr"].append(_measure(where, fp, rr_rate, 1.0))
    m = {k: statistics.median(v) for k, v in acc.items()}
    out = {"case": label, **{k: round(v, 2) for k, v in m.items()},
           "bw_ratio": round(m["bw"] / m["ref_bw"], 3), "rr_ratio": round(m["rr"] / m["ref_rr"], 3), "goal": goal}
    print(f"{label:38s} iperf3 {m['bw']:6.2f} vs {m['ref_bw']:6.2f} Gbit/s = {out['bw_ratio']:.3f}x   "
          f"req/resp {m['rr']:8.0f} vs {m['ref_rr']:8.0f} /s = {out['rr_ratio']:.3f}x   (goal >= {goal}x)",
          flush=True)
    if fast:
        out.update(fast_bw_ratio=round(m["fast_bw"] / m["ref_bw"], 3), fast_rr_ratio=round(m["fast_rr"] / m["ref_rr"], 3),
                   fast_goal=FAST_GOALS[label], fast_packets=fast.taken())
        print(f"{'  + fast path (--fast-path)':38s} iperf3 {m['fast_bw']:6.2f} vs {m['ref_bw']:6.2f} Gbit/s = "
              f"{out['fast_bw_ratio']:.3f}x   req/resp {m['fast_rr']:8.0f} vs {m['ref_rr']:8.0f} /s = "
              f"{out['fast_rr_ratio']:.3f}x   (goal >= {out['fast_goal']}x; {out['fast_packets']} packets on it)",
              flush=True)
    return out


def hand_built_same_node(prefix: str) -> tuple[list[str], tuple[str, str, str]]:
    """Two 'pods' behind one router namespace, wired by hand with `ip` (no podnet code)."""
    host, a, b = f"{prefix}hb-host", f"{prefix}hb-a", f"{prefix}hb-b"
    sh = [f"ip netns add {host}", f"ip netns add {a}", f"ip netns add {b}",
          f"ip -n {host} link set lo up", f"ip netns exec {host} sysctl -qw net.ipv4.ip_forward=1",
          f"ip -n {host} route add default dev lo"]
    for ns, ip, h in ((a, "10.99.0.2", "hva"), (b, "10.99.0.3", "hvb")):
        sh += [f"ip -n {ns} link set lo up",
               f"ip link add eth0 netns {ns} type veth peer name {h} netns {host}",
               f"ip netns exec {host} sysctl -qw net.ipv4.conf.{h}.proxy_arp=1 net.ipv4.neigh.{h}.proxy_delay=0",
               f"ip -n {host} link set {h} up", f"ip -n {host} route add {ip}/32 dev {h} scope link",
               f"ip -n {ns} addr add {ip}/32 dev eth0", f"ip -n {ns} link set eth0 up",
               f"ip -n {ns} route add 169.254.1.1 dev eth0 scope link",
               f"ip -n {ns} route add default via 169.254.1.1 dev eth0"]
    for cmd in sh:
        subprocess.run(cmd.split(), check=True)
    return [a, b, host], (a, b, "10.99.0.3")


def datapath(runs: int, secs: float, nat: bool = True, fast_path: bool = True) -> list[dict]:
    results = []
    prefix = f"pb-{uuid.uuid4().hex[:4]}-"
    made: list[str] = []
    try:
        made, ref = hand_built_same_node(prefix)
        with Lab(2, "l2", "host-gw", prefix=prefix + "g-", nat_outgoing=nat) as lab:
            p1 = lab.add_pod("k8s-master01")
            p2 = lab.add_pod("k8s-master01")
            p3 = lab.add_pod("k8s-node01")
            lab.reconcile()
            underlay.wait_carrier([p[0] for p in (p1, p2, p3)] + [n.netns for n in lab.topo.nodes])
            fast = FastPathToggle([n.netns for n in lab.topo.nodes]) if fast_path else None
            try:
                results.append(side_by_side(SAME_NODE, (p1[0], p2[0], p2[1]), ref, runs, secs, 0.95, fast))
                n0, n1 = lab.topo.nodes[0], lab.topo.nodes[1]
                results.append(side_by_side(HOST_GW, (p1[0], p3[0], p3[1]),
                                            (n0.netns, n1.netns, n1.address), runs, secs, 0.85, fast))
            finally:
                if fast:
                    fast.close()
        with Lab(2, "l2", "vxlan", prefix=prefix + "v-", nat_outgoing=nat) as lab:
            p1 = lab.add_pod("k8s-master01")
            p3 = lab.add_pod("k8s-node01")
            lab.reconcile()
            underlay.wait_carrier([p1[0], p3[0]])
            n0, n1 = lab.topo.nodes[0], lab.topo.nodes[1]
            fast = FastPathToggle([n.netns for n in lab.topo.nodes]) if fast_path else None
            try:
                results.append(side_by_side(VXLAN, (p1[0], p3[0], p3[1]),
                                            (n0.netns, n1.netns, n1.address), runs, secs, 0.75, fast))
            finally:
                if fast:
                    fast.close()
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return results


def convergence(backend: str, peers: int = 3, repeats: int = 3) -> dict:
    """A new node joins: from the start of its reconcile until every peer routes its block."""
    times = []
    for _ in range(repeats):
        with Lab(peers + 1, "l2", backend, prefix=f"pc-{uuid.uuid4().hex[:4]}-") as lab:
            new = lab.topo.nodes[-1].name
            block = lab.blocks[new][0]
            full = list(lab.resources)
            lab.resources = [r for r in full if r.name != new]
            old = [n.name for n in lab.topo.nodes[:-1]]
            lab.reconcile(old)
            if backend == "bgp":
                _wait(lambda old=old: all(_has_route(lab, n, lab.blocks[m][0]) for n in old for m in old if m != n),
                      15)
            lab.resources = full
            t0 = time.perf_counter()
            lab.reconcile([new])   # the new node's agent starts
            lab.reconcile(old)     # the peers see the new Node resources (store watch)
            _wait(lambda old=old, block=block: all(_has_route(lab, n, block) for n in old), 15)
            times.append(time.perf_counter() - t0)
    out = {"backend": backend, "median_s": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times]}
    print(f"new node's routes on all {peers} peers ({backend}): median {out['median_s']:.3f} s  runs {out['runs']}",
          flush=True)
    return out


def _has_route(lab: Lab, node: str, dst: str) -> bool:
    net, plen = dst.split("/")
    with ipr_in(lab.node_ns(node)) as ipr:
        return any(r["dst_len"] == int(plen) and r.get_attr("RTA_DST") == net and r["type"] == 1
                   for r in ipr.get_routes(family=socket.AF_INET))


def _wait(cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def up_time(nodes: int) -> dict:
    sd = tempfile.mkdtemp(prefix="podnet-bench-")
    try:
        t0 = time.perf_counter()
        lifecycle.up(sd, nodes=nodes, backend="bgp", prefix=f"pu-{uuid.uuid4().hex[:4]}-", timeout=90)
        t_up = time.perf_counter() - t0
        t0 = time.perf_counter()
        lifecycle.down(sd)
        t_down = time.perf_counter() - t0
    finally:
        lifecycle.down(sd)
        shutil.rmtree(sd, ignore_errors=True)
    print(f"podnet up, {nodes} nodes, bgp, all processes, until every agent is ready and session Established: "
          f"{t_up:.2f} s (down {t_down:.2f} s)", flush=True)
    return {"nodes": nodes, "up_s": round(t_up, 2), "down_s": round(t_down, 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 run of 1 s per case")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-nat", action="store_true", help="pools without natOutgoing (no conntrack on nodes)")
    ap.add_argument("--no-fast-path", action="store_true", help="skip the eBPF fast-path variant")
    ap.add_argument("--only", choices=["datapath", "convergence", "up"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/dataplane.py needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    runs, secs = (1, 1.0) if args.quick else (3, 3.0)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other work on the machine makes the ratios noisy)", flush=True)
    res: dict = {}
    if args.only in (None, "datapath"):
        res["datapath"] = datapath(runs, secs, nat=not args.no_nat, fast_path=not args.no_fast_path)
    if args.only in (None, "convergence"):
        res["convergence"] = [convergence("vxlan"), convergence("bgp")]
    if args.only in (None, "up"):
        res["up"] = [up_time(3), up_time(10)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
