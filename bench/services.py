"""Service proxy benchmark: what the ``ip podnet-svc`` table costs and how fast it follows.

  1. connect latency of a new TCP connection through a ClusterIP vs directly to the pod, with
     0, 1,000 and 10,000 other Services in the table (5 endpoints each), both measured
     interleaved in one client process (goal: p99 <= 1.10x, flat from 1,000 to 10,000).
  2. NodePort request rate from the external host vs the node's own address (and vs the pod's
     address, the same path without the DNAT) (goal >= 0.90x).
  3. time from a Service or endpoint change to the kernel rule, 10,000 Services vs 10, both
     measured side by side: the store write, the proxy's pass (watch events, plan, live table,
     one netlink batch) and the commit (goals: <= 1.2x, p99 <= 100 ms).
  4. rules, chains and elements against Services and endpoints (linear, never quadratic).

Run as root: .venv/bin/python bench/services.py [--quick] [--json FILE] [--only SECTION]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.agent.policy_view import LiveView  # noqa: E402
from podnet.agent.proxy import ProxyReconciler, ProxyView  # noqa: E402
from podnet.agent.proxy_loop import ProxyPass  # noqa: E402
from podnet.cluster.lifecycle import register_services  # noqa: E402
from podnet.dataplane.nft.services import NodeContext, render  # noqa: E402
from podnet.kernel import netns, underlay  # noqa: E402
from podnet.model import IPPool, Node, Service  # noqa: E402
from podnet.services.cluster import service_config  # noqa: E402
from podnet.services.proxy import plan  # noqa: E402
from podnet.store.memory import MemoryStore  # noqa: E402
from podnet.store.resources import ResourceStore  # noqa: E402
from podnet.testing.policy_lab import PolicyLab  # noqa: E402
from podnet.testing.service_lab import EchoServer  # noqa: E402
from podnet.testing.service_objects import ep, service, slice_  # noqa: E402

PORT, NODE_PORT, NODE_SERVER_PORT = 8080, 30080, 9090
CIDR = "10.96.0.0/16"
BENCH_IP = "10.96.0.10"
POD_CIDRS = ("10.244.0.0/16",)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


LATENCY = r"""
import json, socket, struct, sys, time
targets = [(a, int(p)) for a, p in (t.split(":") for t in sys.argv[2:])]
n = int(sys.argv[1])
linger = struct.pack("ii", 1, 0)
out = {f"{a}:{p}": [] for a, p in targets}
for i in range(n):
    for a, p in targets:  # interleaved: both see the same machine load
        c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        t0 = time.perf_counter_ns(); c.connect((a, p)); t1 = time.perf_counter_ns(); c.close()
        out[f"{a}:{p}"].append((t1 - t0) / 1000)
print(json.dumps(out))
"""

REQUESTS = r"""
import socket, struct, sys, time
ip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
linger = struct.pack("ii", 1, 0)
n, end = 0, time.perf_counter() + secs
while time.perf_counter() < end:
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    c.connect((ip, port)); c.sendall(b"x"); c.recv(1); c.close(); n += 1
print(n / secs)
"""


def _python(ns: str, script: str, *args: str, timeout: float = 300) -> str:
    res = netns.run_in(ns, ["/usr/bin/python3", "-IS", "-c", script, *args], timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-400:])
    return res.stdout


def _services(n: int, endpoints: list[str], node: str = "n1") -> tuple[list[Service], list[Any]]:
    """``n`` Services of 5 endpoints each (the lab's pods) from 10.96.128.0 up, and their slices."""
    base = int(ipaddress.ip_address("10.96.128.0"))
    svcs = [service(f"s{i}", ip=str(ipaddress.ip_address(base + i))) for i in range(n)]
    slices = [slice_(f"s{i}-1", f"s{i}", [ep(ip, node) for ip in endpoints], port=PORT) for i in range(n)]
    return svcs, slices


# --- 1. connect latency ------------------------------------------------------------------------


def latency(counts: list[int], samples: int) -> dict[str, Any]:
    lab = PolicyLab.build(f"sb-{secrets.token_hex(2)}", nodes=1)
    servers: list[EchoServer] = []
    out: dict[str, Any] = {}
    try:
        pods = [lab.add_pod("bench", f"web-{i}", "n1", {"app": "web"}) for i in range(5)]
        client = lab.add_pod("bench", "client", "n1", {"app": "client"})
        underlay.wait_carrier([lab.nodes["n1"].netns])
        servers = [EchoServer(p.netns, p.ip, PORT) for p in pods]
        node = lab.nodes["n1"]
        proxy = ProxyReconciler("n1", netns=node.netns, health=False)
        ctx = NodeContext((node.ip,), POD_CIDRS, CIDR)
        bench = service("bench", ip=BENCH_IP)
        # the measured Service has one endpoint, so both targets are the same pod
        bench_slice = slice_("bench-1", "bench", [ep(pods[0].ip, "n1")], port=PORT)
        for n in counts:
            svcs, slices = _services(n, [p.ip for p in pods])
            t0 = time.perf_counter()
            status = proxy.reconcile(plan([bench, *svcs], [bench_slice, *slices], "n1"), ctx)
            assert status.error is None, status.error
            build = time.perf_counter() - t0
            raw = json.loads(_python(client.netns, LATENCY, str(samples), f"{BENCH_IP}:80", f"{pods[0].ip}:{PORT}"))
            via, direct = raw[f"{BENCH_IP}:80"], raw[f"{pods[0].ip}:{PORT}"]
            row = {"services": n, "table_seconds": round(build, 2),
                   "clusterip_p50_us": round(statistics.median(via), 1), "clusterip_p99_us": round(pct(via, 99), 1),
                   "pod_p50_us": round(statistics.median(direct), 1), "pod_p99_us": round(pct(direct, 99), 1)}
            row["p50_ratio"] = round(row["clusterip_p50_us"] / row["pod_p50_us"], 3)
            row["p99_ratio"] = round(row["clusterip_p99_us"] / row["pod_p99_us"], 3)
            out[str(n)] = row
            print(f"  {n:>6} Services (table in {build:.1f} s): ClusterIP p50 {row['clusterip_p50_us']} us p99 "
                  f"{row['clusterip_p99_us']} us | pod p50 {row['pod_p50_us']} us p99 {row['pod_p99_us']} us | "
                  f"ratio p50 {row['p50_ratio']}x p99 {row['p99_ratio']}x", flush=True)
    finally:
        for s in servers:
            s.close()
        lab.close()
    return out


# --- 2. NodePort request rate --------------------------------------------------------------------


def nodeport_rate(seconds: float, runs: int) -> dict[str, Any]:
    lab = PolicyLab.build(f"sb-{secrets.token_hex(2)}", nodes=1)
    servers: list[EchoServer] = []
    try:
        node = lab.nodes["n1"]
        pod = lab.add_pod("bench", "web", "n1", {"app": "web"})
        ul = f"{lab.prefix}-ul"
        underlay.add_route(ul, node.pod_cidr, gateway=node.ip)  # the pod's address from outside, for comparison
        underlay.wait_carrier([node.netns])
        servers = [EchoServer(pod.netns, pod.ip, PORT), EchoServer(node.netns, node.ip, NODE_SERVER_PORT)]
        svc = service("bench", ip=BENCH_IP, type="NodePort",
                      ports=[{"name": "http", "port": 80, "targetPort": PORT, "nodePort": NODE_PORT}])
        proxy = ProxyReconciler("n1", netns=node.netns, health=False)
        status = proxy.reconcile(plan([svc], [slice_("bench-1", "bench", [ep(pod.ip, "n1")], port=PORT)], "n1"),
                                 NodeContext((node.ip,), POD_CIDRS, CIDR))
        assert status.error is None, status.error
        rates: dict[str, list[float]] = {"nodeport": [], "node": [], "pod": []}
        for _ in range(runs):  # interleaved runs
            for key, (ip, port) in (("nodeport", (node.ip, NODE_PORT)), ("node", (node.ip, NODE_SERVER_PORT)),
                                    ("pod", (pod.ip, PORT))):
                rates[key].append(float(_python(ul, REQUESTS, ip, str(port), str(seconds))))
        med = {k: statistics.median(v) for k, v in rates.items()}
        out = {f"{k}_per_s": round(v) for k, v in med.items()}
        out["ratio_vs_node"] = round(med["nodeport"] / med["node"], 3)
        out["ratio_vs_pod"] = round(med["nodeport"] / med["pod"], 3)
        print(f"  requests/s from the external host: NodePort {out['nodeport_per_s']}, node's own address "
              f"{out['node_per_s']} (ratio {out['ratio_vs_node']}x), pod address {out['pod_per_s']} "
              f"(ratio {out['ratio_vs_pod']}x); medians of {runs}", flush=True)
        return out
    finally:
        for s in servers:
            s.close()
        lab.close()


# --- 3. change -> kernel -------------------------------------------------------------------------


class Case:
    """A store with ``n`` Services and one node's proxy pass programming a lab namespace."""

    def __init__(self, n: int, node_ns: str, node_ip: str) -> None:
        self.n = n
        self.store = ResourceStore(MemoryStore(history=1_000_000))
        self.store.bootstrap()
        register_services(self.store, service_config("10.96.0.0/12"))
        self.store.apply([IPPool.model_validate({"metadata": {"name": "pods"}, "spec": {"cidr": POD_CIDRS[0]}})])
        obj = Node.model_validate({"metadata": {"name": "n1"},
                                   "status": {"addresses": [{"type": "InternalIP", "address": node_ip}]}})
        self.store.apply([obj])
        self.store.update_status(obj)
        eps = [f"10.244.1.{i}" for i in range(2, 7)]
        svcs = [Service.model_validate({"metadata": {"name": f"s{i}", "namespace": "default"},
                                        "spec": {"selector": {"app": f"s{i}"},
                                                 "ports": [{"name": "http", "port": 80, "targetPort": PORT}]}})
                for i in range(n)]
        for k in range(0, n, 1000):
            self.store.apply(svcs[k:k + 1000])
        for k in range(0, n, 1000):
            self.store.apply([slice_(f"s{i}-1", f"s{i}", [ep(ip) for ip in eps], port=PORT)
                              for i in range(k, min(n, k + 1000))])
        self.proxy = ProxyReconciler("n1", netns=node_ns, health=False)
        self.run = ProxyPass(self.proxy, ProxyView(LiveView(self.store), "n1"))
        self.run()
        assert self.proxy.status.error is None, self.proxy.status.error
        self.flip = 0

    def endpoint_change(self) -> float:
        """One endpoint of s0 replaced (its chains rewritten, one endpoint chain in, one out)."""
        self.flip += 1
        eps = [f"10.244.1.{i}" for i in range(2, 6)] + [f"10.244.2.{self.flip % 200 + 2}"]
        t0 = time.perf_counter()
        self.store.apply([slice_("s0-1", "s0", [ep(ip) for ip in eps], port=PORT)])
        self.run()
        return self._done(t0)

    def service_change(self) -> float:
        """A new Service with 5 endpoints appears (chains, its map entry and ClusterIP), or goes."""
        self.flip += 1
        name = "extra"
        t0 = time.perf_counter()
        if self.flip % 2:
            self.store.apply([Service.model_validate({"metadata": {"name": name, "namespace": "default"},
                                                      "spec": {"selector": {"app": name},
                                                               "ports": [{"name": "http", "port": 80,
                                                                          "targetPort": PORT}]}}),
                              slice_(f"{name}-1", name, [ep(f"10.244.3.{i}") for i in range(2, 7)], port=PORT)])
        else:
            self.store.delete(Service, name, "default")
        self.run()
        return self._done(t0)

    def _done(self, t0: float) -> float:
        took = time.perf_counter() - t0
        st = self.proxy.status
        assert st.error is None and st.path in ("live", "none"), st
        return took

    def close(self) -> None:
        self.proxy.close()
        self.store.close()


def change_to_kernel(samples: int, big: int) -> dict[str, Any]:
    lab = PolicyLab.build(f"sb-{secrets.token_hex(2)}", nodes=2)
    cases: list[Case] = []
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        small = Case(10, lab.nodes["n1"].netns, lab.nodes["n1"].ip)
        cases.append(small)
        large = Case(big, lab.nodes["n2"].netns, lab.nodes["n2"].ip)
        cases.append(large)
        print(f"  set up: store and table with 10 and {big:,} Services in {time.perf_counter() - t0:.1f} s "
              f"(first sync at {big:,}: {large.proxy.status.seconds:.1f} s)", flush=True)
        for kind in ("endpoint_change", "service_change"):
            times: dict[int, list[float]] = {10: [], big: []}
            for _ in range(samples):
                for case in (small, large):  # side by side
                    times[case.n].append(getattr(case, kind)())
            s50, b50 = statistics.median(times[10]) * 1000, statistics.median(times[big]) * 1000
            row = {"small_p50_ms": round(s50, 2), "big_p50_ms": round(b50, 2), "ratio_p50": round(b50 / s50, 2),
                   "small_p99_ms": round(pct(times[10], 99) * 1000, 2),
                   "big_p99_ms": round(pct(times[big], 99) * 1000, 2), "samples": samples,
                   "commit": large.proxy.status.plan.get("via")}
            out[kind] = row
            print(f"  {kind.replace('_', ' ')}: 10 Services p50 {row['small_p50_ms']} ms p99 {row['small_p99_ms']} ms"
                  f" | {big:,} p50 {row['big_p50_ms']} ms p99 {row['big_p99_ms']} ms | ratio {row['ratio_p50']}x "
                  f"(commit via {row['commit']})", flush=True)
    finally:
        for case in cases:
            case.close()
        lab.close()
    return out


# --- 4. sizes ----------------------------------------------------------------------------------


def sizes() -> dict[str, Any]:
    ctx = NodeContext(("10.99.0.1",), POD_CIDRS, CIDR)
    out: dict[str, Any] = {}
    for n, e in ((100, 5), (1000, 5), (10000, 5), (1000, 1), (1000, 20)):
        svcs, slices = _services(n, [f"10.244.{1 + i // 250}.{2 + i % 250}" for i in range(e)])
        counts = render(plan(svcs, slices, "n1"), ctx).counts()
        out[f"{n}x{e}"] = counts
        print(f"  {n:>6} Services x {e:>2} endpoints: {counts['chains']:>7} chains {counts['rules']:>7} rules "
              f"{counts['map_elements']:>6} map elements {counts['set_elements']:>6} set elements "
              f"({counts['rules'] / n:.1f} rules per Service)", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 Services at most, fewer samples")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--only", choices=["latency", "nodeport", "change", "sizes"], default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    big = 1000 if args.quick else 10000
    out: dict[str, Any] = {}
    if args.only in (None, "latency"):
        print("1. new TCP connection: ClusterIP vs pod address", flush=True)
        out["latency"] = latency([0, 1000] if args.quick else [0, 1000, 10000], 500 if args.quick else 2000)
    if args.only in (None, "nodeport"):
        print("2. NodePort request rate from the external host", flush=True)
        out["nodeport"] = nodeport_rate(1.0 if args.quick else 2.0, 3 if args.quick else 5)
    if args.only in (None, "change"):
        print(f"3. change -> kernel rule: 10 Services vs {big:,}", flush=True)
        out["change"] = change_to_kernel(20 if args.quick else 60, big)
    if args.only in (None, "sizes"):
        print("4. table size", flush=True)
        out["sizes"] = sizes()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
