"""Flow-log benchmark, every figure side by side in one run on a two-node policy lab:

  1. new TCP connections per second and request/response round trips per second from a client
     pod to a web pod isolated by 1,000 policies, with flow logs on (log statements programmed
     and ``podnet flow-logger`` running) vs off (the same table without them); rounds alternate
     and the medians are compared (goal: on/off >= 0.95);
  2. denied packet -> record in the node's flow ring, p50/p99 (goal: p99 <= 50 ms), and ->
     visible in ``podnet flows`` (a fresh CLI process polling; goal <= 1 s);
  3. a flood of denied UDP packets (``--flood-rate`` a second, default 100,000) from one pod
     to a pod one policy isolates (at 1,000 policies the forward path itself caps the rate):
     records a second for the deny rule (goal <= 10), the drop rule's counter against the
     packets sent (goal: exact), and the flow logger's CPU (goal < 25 % of a core);
  4. the same denied packet -> record with tiered policy (a Calico tier whose
     GlobalNetworkPolicy denies the intruder, beside the 1,000 Kubernetes policies), side by
     side with the Kubernetes default deny of the same run, each record checked to name its
     tier, policy, rule and action.

Run as root: .venv/bin/python bench/flows.py [--policies N] [--seconds S] [--flood-rate R]
             [--sections rates,latency,flood,tiered]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.dataplane.nft.flowlog import DENY_BURST, DENY_RATE, without_flow_logs  # noqa: E402
from podnet.dataplane.nft.render import render  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.model import GlobalNetworkPolicy, NetworkPolicy, Tier  # noqa: E402
from podnet.telemetry.flows import flows_path, read_ring  # noqa: E402
from podnet.testing.policy_lab import PolicyLab  # noqa: E402

PY = sys.executable
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

SERVER = r"""
import socket, threading
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4096)
    return s
def echo(c):
    try:
        while True:
            b = c.recv(64)
            if not b: break
            c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()
def closer(s):  # port 81: connections that only open and close
    while True:
        s.accept()[0].close()
rr, conn = listen(80), listen(81)
threading.Thread(target=closer, args=(conn,), daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = rr.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"""

CONNECT = r"""
import socket, sys, time
ip, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
n, end = 0, time.monotonic() + seconds
if mode == "connect":
    while time.monotonic() < end:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.connect((ip, 81)); s.close(); n += 1
else:
    s = socket.create_connection((ip, 80)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while time.monotonic() < end:
        s.sendall(b"x"); s.recv(64); n += 1
print(n / seconds)
"""

FLOOD = r"""
import ctypes, socket, sys, time
ip, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
s.connect((ip, 9))
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
BATCH = 256
buf = ctypes.create_string_buffer(b"x" * 18)
iov = iovec(ctypes.addressof(buf), 18)
msgs = (mmsghdr * BATCH)()
for m in msgs:
    m.hdr.iov = ctypes.pointer(iov); m.hdr.iovlen = 1
libc = ctypes.CDLL(None, use_errno=True)
sent, t0 = 0, time.monotonic()
while True:
    now = time.monotonic() - t0
    if now >= seconds: break
    want = int(now * rate) - sent
    if want <= 0:
        time.sleep(0.0005); continue
    n = libc.sendmmsg(s.fileno(), msgs, min(BATCH, want), 0)
    if n > 0: sent += n
print(sent)
"""


def policies(n: int) -> list[NetworkPolicy]:
    """``n`` policies isolating web, each allowing one client label on 80-81/TCP; the client's is in the middle."""
    return [NetworkPolicy.model_validate({
        "metadata": {"name": f"allow-{i:04d}", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": f"client{i}"}}}],
                              "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 81}]}]}})
            for i in range(n)]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drop_counter(node_ns: str) -> int:
    res = netns.run_in(node_ns, ["nft", "-j", "list", "table", "inet", "podnet"], check=True)
    return sum(e["counter"]["packets"] for item in json.loads(res.stdout)["nftables"]
               if (r := item.get("rule")) and r["chain"].startswith("ingress-")
               and "default deny ingress (isolated by default/db-from-web)" in r.get("comment", "")
               for e in r["expr"] if "counter" in e)


def run_in(ns: str, code: str, *args: str) -> str:
    return netns.run_in(ns, [PY, "-c", code, *args], check=True).stdout.strip()


def drop_to_record(sock: socket.socket, dst: str, first_port: int, samples: int, path: str) -> tuple[list[float], list[Any]]:
    """Denied packets one at a time (under the kernel's limit, so each is logged): seconds from
    each send to its record in the ring (sorted), and the records."""
    lat: list[float] = []
    start = len(read_ring(path))
    for i in range(samples):
        before = os.path.getsize(path) if os.path.exists(path) else 0
        t = time.perf_counter()
        sock.sendto(b"x", (dst, first_port + i))
        while time.perf_counter() - t < 1.0:
            if os.path.exists(path) and os.path.getsize(path) > before:
                lat.append(time.perf_counter() - t)
                break
            time.sleep(0.0005)
        time.sleep(1.0 / DENY_RATE + 0.01)  # stay under the kernel's limit: every sample logged
    lat.sort()
    return lat, read_ring(path)[start:]


def percentiles(lat: list[float]) -> str:
    if not lat:
        return "n=0"
    return f"p50 {lat[len(lat) // 2] * 1000:.1f} ms p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.1f} ms"


def tier_guard() -> tuple[Tier, GlobalNetworkPolicy]:
    """A security tier whose policy denies the intruder's UDP to db (rule 0) and passes the rest."""
    tier = Tier.model_validate({"metadata": {"name": "security"}, "spec": {"order": 100}})
    gnp = GlobalNetworkPolicy.model_validate({"metadata": {"name": "db-guard"}, "spec": {
        "tier": "security", "selector": "app == 'db'", "ingress": [
            {"action": "Deny", "protocol": "UDP", "source": {"selector": "run == 'intruder'"}}, {"action": "Pass"}]}})
    return tier, gnp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=2.0, help="Length of each rate round.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=40, help="Denied packets timed to their record.")
    ap.add_argument("--flood-rate", type=int, default=100_000)
    ap.add_argument("--flood-seconds", type=float, default=3.0)
    ap.add_argument("--sections", default="rates,latency,flood,tiered",
                    help="Which figures to measure (comma-separated: rates, latency, flood, tiered).")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    prefix = "fb" + secrets.token_hex(3)
    sd = tempfile.mkdtemp(prefix="podnet-flows-bench-")
    lab = PolicyLab.build(prefix, nodes=2)
    procs: list[subprocess.Popen[Any]] = []
    try:
        web = lab.add_pod("default", "web", "n1", {"app": "web"}, [("http", 80, "TCP")])
        client = lab.add_pod("default", "client", "n2", {"run": f"client{args.policies // 2}"})
        denied = lab.add_pod("default", "intruder", "n2", {"run": "intruder"})
        db = lab.add_pod("default", "db", "n1", {"app": "db"})  # the flood's target: one policy isolates it
        n1 = lab.nodes["n1"]
        db_policy = NetworkPolicy.model_validate({
            "metadata": {"name": "db-from-web", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}})
        state = lab.state([*policies(args.policies), db_policy])
        t0 = time.perf_counter()
        table_on = render(state, "n1", node_ips=[n1.ip])
        table_off = without_flow_logs(table_on)
        print(f"policies: {args.policies}, rules on n1: {table_on.counts()['rules']} (render {time.perf_counter() - t0:.2f} s)")
        lab.nodes["n2"].applier.sync(render(state, "n2", node_ips=[lab.nodes["n2"].ip]))
        server = netns.popen_in(web.netns, [PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        os.makedirs(os.path.join(sd, "nodes", "n1"), exist_ok=True)

        path = flows_path(sd, "n1")

        def recording(timeout: float = 30.0) -> None:
            """Until the logger records (its start-up takes seconds on a loaded machine): a
            connection from the client a second until one's record is in the ring."""
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                before = len(read_ring(path))
                with netns.enter(client.netns):
                    probe = socket.socket()
                try:
                    probe.settimeout(1.0)
                    probe.connect((web.ip, 81))
                except OSError:
                    pass
                finally:
                    probe.close()
                t = time.monotonic()
                while time.monotonic() - t < 1.0:
                    if any(r.verdict == "ALLOWED" and r.src == client.ip for r in read_ring(path)[before:]):
                        return
                    time.sleep(0.02)
            raise SystemExit(f"the flow logger recorded nothing in {timeout:g} s")

        def logger() -> subprocess.Popen[Any]:
            p = subprocess.Popen([PY, "-m", "podnet.cli.main", "--state-dir", sd, "flow-logger", "--node", "n1",
                                  "--netns", n1.netns], cwd=ROOT, stderr=subprocess.DEVNULL)
            procs.append(p)
            recording()  # bound before the first measured packet
            return p

        # 1. rates, on vs off, alternating rounds
        logger_cpu: list[float] = []
        rates: dict[str, dict[str, list[float]]] = {m: {"on": [], "off": []} for m in ("connect", "rr")}
        allowed: list[Any] = []  # the records of the measured connections (not the start-up check's)
        for _ in range(args.rounds if "rates" in sections else 0):
            for mode in ("off", "on"):
                n1.applier.sync(table_on if mode == "on" else table_off)
                lg = logger() if mode == "on" else None
                start = len(read_ring(path))
                cpu0, w0 = (cpu_seconds(lg.pid), time.monotonic()) if lg is not None else (0.0, 0.0)
                for kind in rates:
                    lab.flush_conntrack()
                    rates[kind][mode].append(float(run_in(client.netns, CONNECT, web.ip, str(args.seconds), kind)))
                    time.sleep(0.2)
                if lg is not None:
                    time.sleep(0.2)  # the last batch
                    logger_cpu.append((cpu_seconds(lg.pid) - cpu0) / (time.monotonic() - w0))
                    allowed += [r for r in read_ring(path)[start:] if r.verdict == "ALLOWED" and r.src == client.ip]
                    lg.terminate()
                    lg.wait()
        for kind, label in (("connect", "new connections/s"), ("rr", "request/response/s")):
            if "rates" not in sections:
                break
            on, off = statistics.median(rates[kind]["on"]), statistics.median(rates[kind]["off"])
            print(f"{label:22s} flow logs off {off:9.0f}  on {on:9.0f}  on/off {on / off:.3f} (goal >= 0.95)")
        made = round(sum(rates["connect"]["on"]) * args.seconds) + len(rates["rr"]["on"])
        print("allowed: none made (rates not measured)" if "rates" not in sections else
              f"allowed connections recorded with their policy: {sum(r.packets for r in allowed)} of {made} made "
              f"with flow logs on, in {len(allowed)} records, rule: {allowed[0].rule if allowed else '-'}; "
              f"the logger took {statistics.mean(logger_cpu) * 100:.1f} % of a core while connections were made")

        # 2. denied packet -> record latency, and -> `podnet flows`
        n1.applier.sync(table_on)
        lg = logger()
        with netns.enter(denied.netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if "latency" in sections:
            lat, _ = drop_to_record(sock, web.ip, 20000, args.samples, path)
            print(f"denied packet -> record in the ring: n={len(lat)}/{args.samples} {percentiles(lat)} "
                  "(goal p99 <= 50 ms)")
            # `podnet flows -f` running (as `hubble observe -f` is watched): packet -> its line printed
            follow = subprocess.Popen([PY, "-m", "podnet.cli.main", "--state-dir", sd, "flows", "-f", "--last", "0",
                                       "--verdict", "DROPPED", "--from-pod", denied.ip, "-o", "json"], cwd=ROOT,
                                      stdout=subprocess.PIPE, text=True)
            procs.append(follow)
            time.sleep(2.0)  # started and at the end of the rings
            visible = []
            assert follow.stdout is not None
            for i in range(10):
                port = 30000 + i
                t = time.perf_counter()
                sock.sendto(b"x", (web.ip, port))
                while json.loads(follow.stdout.readline())["dport"] != port:
                    pass
                visible.append(time.perf_counter() - t)
                time.sleep(1.0 / DENY_RATE + 0.01)
            t = time.perf_counter()
            once = subprocess.run([PY, "-m", "podnet.cli.main", "--state-dir", sd, "flows", "--verdict", "DROPPED",
                                   "--port", "30000", "-o", "json"], cwd=ROOT, capture_output=True, text=True)
            one_shot = time.perf_counter() - t
            print(f"denied packet -> line printed by a running `podnet flows -f`: p50 {statistics.median(visible) * 1000:.0f} ms "
                  f"max {max(visible) * 1000:.0f} ms over {len(visible)} (goal <= 1 s); a one-shot `podnet flows` "
                  f"takes {one_shot:.2f} s (process start-up, store read){'' if once.stdout.strip() else ' and FOUND NOTHING'}")

        # 4. tiered: denied packet -> record naming tier/policy/rule, beside the Kubernetes deny
        if "tiered" in sections:
            tier, gnp = tier_guard()
            tiered = lab.state([*policies(args.policies), db_policy, gnp], tiers=[tier])
            n1.applier.sync(render(tiered, "n1", node_ips=[n1.ip]))
            n = args.samples // 2
            k8s_lat, k8s_recs = drop_to_record(sock, web.ip, 40000, n, path)
            tier_lat, tier_recs = drop_to_record(sock, db.ip, 41000, n, path)
            named = sum((r.tier, r.policies, r.rule_index, r.action) == ("security", ["gnp:db-guard"], 0, "Deny")
                        for r in tier_recs)
            print(f"tiered: denied packet -> record: Kubernetes default deny {percentiles(k8s_lat)}; "
                  f"Calico tier Deny {percentiles(tier_lat)} (goal p99 <= 50 ms); {named} of {len(tier_lat)} records "
                  f"name security/gnp:db-guard rule 0 (Deny), "
                  f"{sum(r.tier == 'default' for r in k8s_recs)} of {len(k8s_lat)} the default tier")
            n1.applier.sync(table_on)

        sock.close()

        # 3. flood
        if "flood" in sections:
            time.sleep(1.0)
            records_before = len(read_ring(path))
            counter_before = drop_counter(n1.netns)
            cpu0, w0 = cpu_seconds(lg.pid), time.monotonic()
            sent = int(run_in(denied.netns, FLOOD, db.ip, str(args.flood_seconds), str(args.flood_rate)))
            time.sleep(0.3)
            cpu = (cpu_seconds(lg.pid) - cpu0) / (time.monotonic() - w0)
            dropped = drop_counter(n1.netns) - counter_before
            flood = [r for r in read_ring(path)[records_before:] if r.src == denied.ip and r.dst == db.ip]
            logged = sum(r.packets for r in flood)
            print(f"flood: {sent} denied packets in {args.flood_seconds:g} s ({sent / args.flood_seconds:,.0f}/s); "
                  f"drop counter +{dropped} ({'exact' if dropped == sent else 'NOT exact'}); "
                  f"{logged} packets logged in {len(flood)} records = {len(flood) / args.flood_seconds:.1f} records/s "
                  f"for the rule (limit {DENY_RATE}/s, burst {DENY_BURST}; goal <= 10); "
                  f"flow logger CPU {cpu * 100:.1f} % of a core (goal < 25 %)")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores (a shared machine)")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        lab.close()
        shutil.rmtree(sd, ignore_errors=True)


if __name__ == "__main__":
    main()
