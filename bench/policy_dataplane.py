"""Policy enforcement benchmark: what the ``inet podnet`` table costs and how fast it follows.

  1. datapath with 0, 100 and 1,000 policies (20 pods per node, 2 nodes, an allowed pair across
     nodes whose ends are both isolated and selected by 1/20 of the policies): new-connection
     rate, 1-byte request/response rate, iperf3 single-stream throughput, each as a ratio to
     0 policies measured in the same run; with veth offloads on and off.
     (goals: new connections >= 0.90x, request/response >= 0.97x, throughput >= 0.98x); and the
     new-connection rate with the dispatch by membership sets against per-pod verdict maps.
  2. nft rules, chains and set/map elements against policies and pods (must grow with
     policies + pods, not pods²); the render, first apply and read-back resync of a whole table.
  3. policy write -> enforced latency through the store and the policy loop process, with
     1,000 policies and 200 pods (goal p99 <= 100 ms).
  4. one change at 10,000 objects vs the same change at 10 (goal <= 1.2x): a pod's label and a
     policy's port, each the policy loop's whole pass (read the watch events, plan the change on
     the live table, commit), both sizes measured side by side; with the commit as a raw netlink
     batch (the agent's path) and, for comparison, through libnftables.

Run as root: .venv/bin/python bench/policy_dataplane.py [--quick] [--json FILE]
             [--only datapath|dispatch|sizes|apply|write|one-change]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.agent.policy import PolicyReconciler, read_status  # noqa: E402
from podnet.agent.policy_view import LiveView  # noqa: E402
from podnet.dataplane.nft.dispatch import FROM_MAP, FROM_WL, TO_MAP, TO_WL, dispatch_entries, is_member_set  # noqa: E402
from podnet.dataplane.nft.model import NftMap, NftTable  # noqa: E402
from podnet.dataplane.nft.render import base_chains, render  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.model import Namespace, NetworkPolicy, Node, Pod  # noqa: E402
from podnet.policy.cluster import ClusterState  # noqa: E402
from podnet.store.open import open_store  # noqa: E402
from podnet.testing.policy_lab import PolicyLab  # noqa: E402
from podnet.testing.service_lab import EchoServer  # noqa: E402

NS = "bench"
SERVER_PORT, IPERF_PORT = 8080, 5201


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# --- policies ---------------------------------------------------------------------------------


def make_policies(n: int) -> list[NetworkPolicy]:
    """``n`` policies in ``bench``: policy j isolates app=a{j%20} both ways and allows a
    neighbouring app on its own port; every 20th one (selecting a0 / a1) also carries the rule
    that lets the client (a1) reach the server (a0), so both ends walk their full policy lists."""
    out = []
    for j in range(n):
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": {"app": f"a{j % 20}"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"a{(j + 3) % 20}"}}}],
                         "ports": [{"port": 10000 + j}]}],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": f"a{(j + 5) % 20}"}}}],
                        "ports": [{"port": 20000 + j}]}],
        }
        out.append(NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                                 "metadata": {"name": f"np{j:04d}", "namespace": NS}, "spec": spec}))
    allow = [
        {"metadata": {"name": "zz-server-in", "namespace": NS},
         "spec": {"podSelector": {"matchLabels": {"app": "a0"}},
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a1"}}}],
                               "ports": [{"port": SERVER_PORT}, {"port": IPERF_PORT}]}]}},
        {"metadata": {"name": "zz-client-out", "namespace": NS},
         "spec": {"podSelector": {"matchLabels": {"app": "a1"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "a0"}}}],
                              "ports": [{"port": SERVER_PORT}, {"port": IPERF_PORT}]}]}},
    ]
    if n:
        out += [NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **d})
                for d in allow]
    return out


# --- traffic ----------------------------------------------------------------------------------


CLIENT = r"""
import socket, struct, sys, time
mode, ip, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
n, end = 0, time.perf_counter() + secs
if mode == "conn":
    linger = struct.pack("ii", 1, 0)
    while time.perf_counter() < end:
        c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        c.connect((ip, port)); c.close(); n += 1
else:
    c = socket.socket(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.connect((ip, port))
    while time.perf_counter() < end:
        c.sendall(b"x"); c.recv(1); n += 1
print(n / secs)
"""


def _client(mode: str, ns: str, ip: str, seconds: float) -> float:
    res = netns.run_in(ns, ["/usr/bin/python3", "-IS", "-c", CLIENT, mode, ip, str(SERVER_PORT), str(seconds)],
                       timeout=seconds + 30)
    if res.returncode != 0:
        raise RuntimeError(f"{mode} client failed: {res.stderr[-300:]}")
    return float(res.stdout.strip())


def conn_rate(ns: str, ip: str, seconds: float) -> float:
    """New TCP connections per second (connect + close with a reset, so no TIME_WAIT piles up)."""
    return _client("conn", ns, ip, seconds)


def rr_rate(ns: str, ip: str, seconds: float) -> float:
    """1-byte request/response round trips per second on one connection."""
    return _client("rr", ns, ip, seconds)


def iperf(client_ns: str, server_ns: str, ip: str, seconds: float) -> float:
    srv = netns.popen_in(server_ns, ["iperf3", "-s", "-1", "-B", ip, "-p", str(IPERF_PORT)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            res = netns.run_in(client_ns, ["iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(max(1, round(seconds))), "-J"],
                               timeout=seconds + 20)
            try:
                end = json.loads(res.stdout).get("end", {})
            except ValueError:
                end = {}
            if res.returncode == 0 and "sum_received" in end:
                return end["sum_received"]["bits_per_second"] / 1e9
            time.sleep(0.05)  # server not listening yet
        raise RuntimeError(f"iperf3 failed: {res.stdout[-300:]}")
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def set_offloads(lab: PolicyLab, on: bool) -> None:
    state = "on" if on else "off"
    for node in lab.nodes.values():
        devs = ["eth0"] + [p.ifname for p in lab.pods.values() if p.node == node.name]
        for dev in devs:
            netns.run_in(node.netns, ["ethtool", "-K", dev, "tso", state, "gso", state, "gro", state])
    for p in lab.pods.values():
        netns.run_in(p.netns, ["ethtool", "-K", "eth0", "tso", state, "gso", state, "gro", state])
    ul = f"{lab.prefix}-ul"
    for dev in [f"{n}-ul" for n in lab.nodes]:
        netns.run_in(ul, ["ethtool", "-K", dev, "tso", state, "gso", state, "gro", state])


def datapath(seconds: float, counts: list[int], runs: int) -> dict[str, Any]:
    lab = PolicyLab.build(f"pb-{secrets.token_hex(2)}")
    out: dict[str, Any] = {}
    try:
        for node in ("n1", "n2"):
            for i in range(20):
                app = "a0" if (node, i) == ("n1", 0) else "a1" if (node, i) == ("n2", 0) else f"a{2 + i % 18}"
                lab.add_pod(NS, f"{node}-p{i}", node, {"app": app})
        server, client = lab.pods[f"{NS}/n1-p0"], lab.pods[f"{NS}/n2-p0"]
        srv = EchoServer(server.netns, server.ip, SERVER_PORT)
        try:
            for offload in (True, False):
                set_offloads(lab, offload)
                res: dict[int, dict[str, list[float]]] = {c: {"conn": [], "rr": [], "bw": []} for c in counts}
                for _ in range(runs):  # interleave counts so drift hits all of them
                    for c in counts:
                        state = lab.state(make_policies(c))
                        lab.apply(state)
                        res[c]["conn"].append(conn_rate(client.netns, server.ip, seconds))
                        res[c]["rr"].append(rr_rate(client.netns, server.ip, seconds))
                        res[c]["bw"].append(iperf(client.netns, server.netns, server.ip, seconds))
                key = "offloads_on" if offload else "offloads_off"
                base = {m: statistics.median(v) for m, v in res[0].items()}
                out[key] = {}
                for c in counts:
                    med = {m: statistics.median(v) for m, v in res[c].items()}
                    out[key][c] = {"conn_per_s": round(med["conn"]), "rr_per_s": round(med["rr"]),
                                   "gbit_s": round(med["bw"], 2),
                                   "conn_ratio": round(med["conn"] / base["conn"], 3),
                                   "rr_ratio": round(med["rr"] / base["rr"], 3),
                                   "bw_ratio": round(med["bw"] / base["bw"], 3)}
                    r = out[key][c]
                    print(f"  {key:12s} {c:5d} policies: conn {r['conn_per_s']:6d}/s ({r['conn_ratio']:.3f}x)  "
                          f"rr {r['rr_per_s']:6d}/s ({r['rr_ratio']:.3f}x)  iperf3 {r['gbit_s']:6.2f} Gbit/s "
                          f"({r['bw_ratio']:.3f}x)", flush=True)
        finally:
            srv.close()
    finally:
        lab.close()
    return out


def vmap_layout(table: NftTable) -> NftTable:
    """The same table with the dispatch of its earlier layout (and the tiered table's): verdict
    maps keyed on the pod, one ``vmap`` rule in each dispatch chain, no membership sets."""
    base = base_chains()
    maps = {FROM_MAP: NftMap(FROM_MAP, ("ifname", "ipv4_addr"), dispatch_entries(table, FROM_MAP)),
            TO_MAP: NftMap(TO_MAP, ("ifname",), dispatch_entries(table, TO_MAP))}
    return NftTable(table.family, table.name, sets={n: s for n, s in table.sets.items() if not is_member_set(n)},
                    maps=maps, chains={**table.chains, FROM_WL: base[FROM_WL], TO_WL: base[TO_WL]})


def dispatch_cost(seconds: float, runs: int) -> dict[str, Any]:
    """New connections per second across nodes with 1,000 policies, the dispatch by membership
    sets (one rule per signature chain) against the same table with per-pod verdict maps, and 0
    policies; runs interleaved, medians (the machine's load moves single runs a lot)."""
    lab = PolicyLab.build(f"pd-{secrets.token_hex(2)}")
    out: dict[str, Any] = {}
    try:
        for node in ("n1", "n2"):
            for i in range(20):
                app = "a0" if (node, i) == ("n1", 0) else "a1" if (node, i) == ("n2", 0) else f"a{2 + i % 18}"
                lab.add_pod(NS, f"{node}-p{i}", node, {"app": app})
        server, client = lab.pods[f"{NS}/n1-p0"], lab.pods[f"{NS}/n2-p0"]
        tables: dict[str, dict[str, NftTable]] = {}
        for key, pols in (("none", 0), ("sets", 1000)):
            state = lab.state(make_policies(pols))
            tables[key] = {n: render(state, n, node_ips=[node.ip]) for n, node in lab.nodes.items()}
        tables["vmaps"] = {n: vmap_layout(t) for n, t in tables["sets"].items()}
        rules = {n: len(t.chains[FROM_WL].rules) + len(t.chains[TO_WL].rules) for n, t in tables["sets"].items()}
        srv = EchoServer(server.netns, server.ip, SERVER_PORT)
        try:
            res: dict[str, list[float]] = {k: [] for k in tables}
            for _ in range(runs):
                for key, by_node in tables.items():
                    for n, node in lab.nodes.items():
                        node.applier.sync(by_node[n])
                    res[key].append(conn_rate(client.netns, server.ip, seconds))
        finally:
            srv.close()
        med = {k: statistics.median(v) for k, v in res.items()}
        out = {"conn_per_s": {k: round(v) for k, v in med.items()}, "dispatch_rules": rules,
               "sets_vs_vmaps": round(med["sets"] / med["vmaps"], 3), "sets_vs_none": round(med["sets"] / med["none"], 3),
               "vmaps_vs_none": round(med["vmaps"] / med["none"], 3), "runs": runs}
        print(f"  new conn/s, 1,000 policies: membership sets {round(med['sets'])} ({out['sets_vs_none']:.3f}x of 0 "
              f"policies), verdict maps {round(med['vmaps'])} ({out['vmaps_vs_none']:.3f}x), 0 policies "
              f"{round(med['none'])}: sets / maps {out['sets_vs_vmaps']:.3f}x (medians of {runs} interleaved runs "
              f"of {seconds} s; dispatch rules per node {rules})", flush=True)
    finally:
        lab.close()
    return out


# --- sizes ------------------------------------------------------------------------------------


def synthetic_pods(n: int, nodes: int = 2) -> list[Pod]:
    return [Pod.model_validate({
        "metadata": {"name": f"p{i:05d}", "namespace": NS, "labels": {"app": f"a{i % 20}"}},
        "spec": {"nodeName": f"n{1 + i % nodes}", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": f"10.{244 + i // 65000}.{(i // 250) % 256}.{2 + i % 250}",
                   "hostIP": f"10.99.0.{1 + i % nodes}"}}) for i in range(n)]


def sizes() -> list[dict[str, Any]]:
    rows = []
    nss = [Namespace.model_validate({"metadata": {"name": NS}})]
    for pods in (40, 200, 1000):
        for pols in (0, 100, 1000):
            t0 = time.perf_counter()
            table = render(ClusterState.build(nss, synthetic_pods(pods), make_policies(pols)), "n1")
            c = table.counts()
            rows.append({"pods": pods, "policies": pols, **c, "render_s": round(time.perf_counter() - t0, 3)})
            print(f"  {pods:5d} pods {pols:5d} policies: rules {c['rules']:5d}  chains {c['chains']:5d}  "
                  f"sets {c['sets']:5d}  set elements {c['set_elements']:6d}  map elements {c['map_elements']:5d}",
                  flush=True)
    return rows


# --- a whole table applied ------------------------------------------------------------------------


def full_apply(repeats: int = 3) -> list[dict[str, Any]]:
    """What a full pass costs at 1,000 policies: the render, the first apply of the whole table
    to a node without one (one libnftables transaction), and a resync that reads the kernel back
    and finds nothing to change (listing, parse, diff); medians of ``repeats``."""
    from podnet.kernel.nft.apply import NftApplier

    nss = [Namespace.model_validate({"metadata": {"name": NS}})]
    rows = []
    for pods in (1000, 9000):
        state = ClusterState.build(nss, synthetic_pods(pods), make_policies(1000))
        renders, applies, resyncs = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            table = render(state, "n1", node_ips=["10.99.0.1"])
            renders.append(time.perf_counter() - t0)
            lab = PolicyLab.build(f"pf-{secrets.token_hex(2)}", nodes=1)
            try:
                applier = NftApplier(lab.nodes["n1"].netns)
                t0 = time.perf_counter()
                applier.sync(table)
                applies.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                plan = applier.sync(table, read_back=True)
                resyncs.append(time.perf_counter() - t0)
                assert plan.empty, plan.summary()
            finally:
                lab.close()
        c = table.counts()
        row = {"pods": pods, "policies": 1000, **c, "render_ms": round(statistics.median(renders) * 1000, 1),
               "apply_ms": round(statistics.median(applies) * 1000, 1),
               "resync_ms": round(statistics.median(resyncs) * 1000, 1)}
        rows.append(row)
        print(f"  {pods:5d} pods, 1,000 policies (node n1 of 2): rules {c['rules']}, sets {c['sets']}, set elements "
              f"{c['set_elements']}, map elements {c['map_elements']}: render {row['render_ms']} ms, first apply "
              f"{row['apply_ms']} ms, read-back resync {row['resync_ms']} ms (medians of {repeats})", flush=True)
    return rows


def jump_check(repeats: int = 30) -> dict[str, Any]:
    """The kernel's part of a rule change, by layout: one chain flushed and refilled with a
    ``counter accept`` rule (a rule with a verdict makes nf_tables check the table's jumps
    before it commits), as one raw netlink batch, in the 9,000-pod table with the dispatch by
    membership sets and the same table with per-pod verdict maps; and one pod moved between
    signature chains (two set elements, or the two verdict-map entries replaced)."""
    from podnet.kernel.nft.apply import NftApplier
    from podnet.kernel.nft.netlink import encode

    nss = [Namespace.model_validate({"metadata": {"name": NS}})]
    sets = render(ClusterState.build(nss, synthetic_pods(9000), make_policies(1000)), "n1", node_ips=["10.99.0.1"])
    out: dict[str, Any] = {}
    for layout, table in (("sets", sets), ("vmaps", vmap_layout(sets))):
        lab = PolicyLab.build(f"pj-{secrets.token_hex(2)}", nodes=1)
        try:
            applier = NftApplier(lab.nodes["n1"].netns)
            applier.sync(table)
            sock = applier._element_socket()
            chain = next(n for n in sorted(table.chains) if n.startswith("pi-"))
            t = table.id
            rule = {"add": {"rule": t.ref(chain=chain, expr=[{"counter": None}, {"accept": None}], comment="x")}}
            flush = {"flush": {"chain": t.ref(name=chain)}}
            if layout == "sets":
                a, b = sorted(n for n in table.sets if n.startswith("from-") and n != "from-open")[:2]
                elem = sorted(table.sets[a].elements)[0]
                key = {"concat": [elem[0], str(__import__("ipaddress").IPv4Address(elem[1][0]))]}  # type: ignore[index]
                moves = [[{"delete": {"element": t.ref(name=a, elem=[key])}}, {"add": {"element": t.ref(name=b, elem=[key])}}],
                         [{"delete": {"element": t.ref(name=b, elem=[key])}}, {"add": {"element": t.ref(name=a, elem=[key])}}]]
            else:
                entries = table.maps[FROM_MAP].elements
                k = sorted(entries)[0]
                other = next(v for v in sorted(set(entries.values())) if v != entries[k] and v[1] != "egress-ok")
                moves = [[{"delete": {"element": t.ref(name=FROM_MAP, elem=[{"concat": list(k)}])}},
                          {"add": {"element": t.ref(name=FROM_MAP, elem=[[{"concat": list(k)}, {v[0]: {"target": v[1]}}]])}}]
                         for v in (other, entries[k])]
            times: dict[str, list[float]] = {"rule": [], "move": []}
            for i in range(repeats):
                for what, cmds in (("rule", [flush, rule]), ("move", moves[i % 2])):
                    batch = encode(cmds, t, table.key_info, sock.seq + 1)
                    assert batch is not None, (layout, what)
                    t0 = time.perf_counter()
                    sock.commit(*batch)
                    times[what].append(time.perf_counter() - t0)
            out[layout] = {w: round(statistics.median(v) * 1000, 3) for w, v in times.items()}
        finally:
            lab.close()
    print(f"  kernel commit, 9,000 pods and 1,000 policies (4,500 pods on the node): a rule with a verdict "
          f"{out['sets']['rule']} ms with membership sets, {out['vmaps']['rule']} ms with verdict maps; a pod "
          f"moved between chains {out['sets']['move']} ms (set elements) vs {out['vmaps']['move']} ms (map "
          f"entries) (medians of {repeats})", flush=True)
    return out


# --- write -> enforced -------------------------------------------------------------------------


def write_to_enforced(samples: int) -> dict[str, Any]:
    lab = PolicyLab.build(f"pw-{secrets.token_hex(2)}", nodes=1)
    sd = tempfile.mkdtemp(prefix="podnet-bench-")
    proc = None
    try:
        store = open_store(sd)
        store.create(Namespace.model_validate({"metadata": {"name": NS}}))
        for p in synthetic_pods(200, nodes=2):
            created = store.create(Pod.model_validate({k: v for k, v in p.to_dict().items() if k != "status"}))
            store.update_status(Pod.model_validate({**created.to_dict(), "status": p.to_dict()["status"]}))
        for pol in make_policies(1000):
            store.create(pol)
        proc = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, "policy-loop",
                                 "--node", "n1", "--netns", lab.nodes["n1"].netns, "--resync", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def wait(rev: int) -> dict[str, Any]:
            while True:
                st = read_status(sd, "n1")
                if st and st["revision"] >= rev:
                    return st
                if proc.poll() is not None:
                    raise RuntimeError("policy loop exited")
                time.sleep(0.0005)

        wait(store.revision())
        import gc

        gc.collect()
        gc.freeze()  # keep this process's collector out of the timings
        lat, sync, after_commit = [], [], []
        for i in range(samples):
            cur = store.get(NetworkPolicy, f"np{i % 1000:04d}", NS)
            data = cur.to_dict()
            data["spec"]["ingress"][0]["ports"] = [{"port": 30000 + i}]
            t0 = time.perf_counter()
            store.update(NetworkPolicy.model_validate(data), check_version=False)
            t1 = time.perf_counter()
            st = wait(store.revision())
            t2 = time.perf_counter()
            lat.append((t2 - t0) * 1000)
            after_commit.append((t2 - t1) * 1000)
            sync.append(st["seconds"] * 1000)
        worst = sorted(zip(lat, sync), reverse=True)[:3]
        out = {"samples": samples, "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
               "worst_ms": [(round(a, 1), round(b, 1)) for a, b in worst],
               "max_ms": round(max(lat), 1), "reconcile_p50_ms": round(pct(sync, 50), 1),
               "from_commit_p50_ms": round(pct(after_commit, 50), 1),
               "from_commit_p99_ms": round(pct(after_commit, 99), 1)}
        print(f"  write -> enforced (1,000 policies, 200 pods): p50 {out['p50_ms']} ms  p99 {out['p99_ms']} ms  "
              f"(from the store commit: p50 {out['from_commit_p50_ms']} ms, p99 {out['from_commit_p99_ms']} ms; "
              f"reconcile pass p50 {out['reconcile_p50_ms']} ms)", flush=True)
        store.close()
        return out
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        lab.close()
        shutil.rmtree(sd, ignore_errors=True)


# --- one change at 10 vs 10,000 objects ---------------------------------------------------------


class OneChange:
    """A one-node lab whose store holds ``objects`` objects (a tenth of them policies), the
    policy loop's reconciler and live view over it, and a pod whose label flips at each step."""

    def __init__(self, objects: int) -> None:
        self.objects = objects
        self.lab = PolicyLab.build(f"po-{secrets.token_hex(2)}", nodes=1)
        self.sd = tempfile.mkdtemp(prefix="podnet-bench-")
        self.store = open_store(self.sd)
        self.store.create(Namespace.model_validate({"metadata": {"name": NS}}))
        self.store.create(Node.model_validate({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.99.0.1"}]}}))
        npol = objects // 10
        pods = synthetic_pods(objects - npol, nodes=2)
        for p in pods:
            created = self.store.create(Pod.model_validate({k: v for k, v in p.to_dict().items() if k != "status"}))
            self.store.update_status(Pod.model_validate({**created.to_dict(), "status": p.to_dict()["status"]}))
        for pol in make_policies(npol):
            self.store.create(pol)
        self.rec = PolicyReconciler("n1", netns=self.lab.nodes["n1"].netns, readback_every=1e9)
        self.view = LiveView(self.store)  # what the policy loop reads: the store kept current by watch events
        self.rec.reconcile_view(self.view)
        self.target = pods[1].metadata.name  # a pod on n2: its label change is one set element on n1
        self.local = pods[2].metadata.name  # a pod on n1 (app a2): moves between a2's and a0's chains
        self.flips = 0

    def _timed_pass(self, kind: type[Any], name: str, edit: Any) -> float:
        """Write ``edit(data)`` of the object, then time the loop's whole pass over it (poll the
        watch, plan on the live table, commit); the pass must have taken the live path."""
        data = self.store.get(kind, name, NS).to_dict()
        edit(data)
        self.flips += 1
        self.store.update(kind.model_validate(data), check_version=False)
        t0 = time.perf_counter()
        st = self.rec.reconcile_view(self.view)
        took = time.perf_counter() - t0
        assert st.revision == self.store.revision() and st.plan.get("incremental"), st.plan
        return took

    def _relabel(self, pod: str, app: str) -> float:
        def edit(data: dict[str, Any]) -> None:
            data["metadata"]["labels"] = {"app": app}
        return self._timed_pass(Pod, pod, edit)

    def step(self) -> float:
        """One label change of a pod on the other node: one set element here."""
        return self._relabel(self.target, "a3" if self.flips % 2 == 0 else "a1")

    def local_step(self) -> float:
        """A pod of this node relabelled between two apps whose signature chains exist (a0's,
        and a2's or, at 10 objects, the open one): its dispatch moves, no chain is added."""
        return self._relabel(self.local, "a0" if self.flips % 2 == 0 else "a2")

    def policy_step(self) -> float:
        """One policy's port changed: the policy's chain is planned on the live table."""
        def edit(data: dict[str, Any]) -> None:
            data["spec"]["ingress"][0]["ports"] = [{"port": 30000 + self.flips % 1000}]
        return self._timed_pass(NetworkPolicy, "np0000", edit)

    def peer_step(self) -> float:
        """One policy's peer changed (another pod selector): its rules are rewritten, so the
        kernel checks the table's jumps (see ``jump_check``)."""
        def edit(data: dict[str, Any]) -> None:
            app = "a7" if self.flips % 2 else "a3"
            data["spec"]["ingress"][0]["from"] = [{"podSelector": {"matchLabels": {"app": app}}}]
        return self._timed_pass(NetworkPolicy, "np0000", edit)

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self.lab.close()
            shutil.rmtree(self.sd, ignore_errors=True)


def _side_by_side(small: OneChange, big: OneChange, step: Any, repeats: int) -> dict[str, Any]:
    """``step`` on both cases, alternating, after one warm-up each: medians and p90 in ms."""
    times: dict[int, list[float]] = {10: [], 10000: []}
    for case in (small, big):
        step(case)  # warm up this path
    for _ in range(repeats):
        for case in (small, big):
            times[case.objects].append(step(case))
    for case in (small, big):
        assert case.rec.applier.model_matches_kernel(), "the kernel differs from the applier's model"
    s_ms, b_ms = (statistics.median(times[n]) * 1000 for n in (10, 10000))
    return {"small_ms": round(s_ms, 3), "big_ms": round(b_ms, 3), "ratio": round(b_ms / s_ms, 2),
            "small_p90_ms": round(pct(times[10], 90) * 1000, 3), "big_p90_ms": round(pct(times[10000], 90) * 1000, 3),
            "repeats": repeats, "path": big.rec.status.plan.get("path"),
            "commands": big.rec.status.plan.get("commands", 0)}


#: (key, what, the step, commit through raw netlink, hold the flows of the named pods)
ONE_CHANGE_CASES: tuple[tuple[str, str, Any, bool, bool], ...] = (
    ("netlink", "a remote pod's label", OneChange.step, True, False),
    ("libnftables", "a remote pod's label", OneChange.step, False, False),
    ("local", "a local pod's label (between chains)", OneChange.local_step, True, False),
    ("policy", "one policy's port", OneChange.policy_step, True, False),
    ("policy_libnftables", "one policy's port", OneChange.policy_step, False, False),
    ("policy_peer", "one policy's peer (its rules rewritten)", OneChange.peer_step, True, False),
    ("policy_flows", "one policy's port, flows held", OneChange.policy_step, True, True),
    ("local_flows", "a local pod's label, flows held", OneChange.local_step, True, True),
)


def one_change(repeats: int) -> dict[str, Any]:
    """10 vs 10,000 objects side by side: passes alternate between the two, so drift on the
    machine hits both. A pod's label (element changes) on another node and on this one, then a
    policy's port; the commit as a raw netlink batch (the agent's path) and, for comparison,
    through libnftables (which lists the table's chains and sets before every commit). The
    table's part is measured with the flow recheck off; the last rows add it (after each
    commit the loop lists the node's conntrack entries when the commit names pods)."""
    small = big = None
    out: dict[str, Any] = {}
    try:
        small, big = OneChange(10), OneChange(10000)
        for key, what, step, raw, flows in ONE_CHANGE_CASES:
            for case in (small, big):
                case.rec.applier.raw_elements = raw
                case.rec.cut_flows = flows
            n = repeats if step is OneChange.step else max(5, repeats // 4)
            r = out[key] = _side_by_side(small, big, step, n)
            print(f"  {what:38s} via {r['path']:11s}: 10 objects {r['small_ms']:.3f} ms, 10,000 objects "
                  f"{r['big_ms']:.3f} ms: ratio {r['ratio']}x (medians of {n}; p90 {r['small_p90_ms']:.3f} / "
                  f"{r['big_p90_ms']:.3f} ms; {r['commands']} commands)", flush=True)
    finally:
        for case in (small, big):
            if case is not None:
                case.close()
    out["ratio"] = out.get("netlink", {}).get("ratio")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--only", choices=["datapath", "dispatch", "sizes", "apply", "write", "one-change"], default=None,
                    help="run only this section")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    secs, runs, samples = (1.0, 2, 30) if args.quick else (2.0, 5, 100)
    out: dict[str, Any] = {}
    if args.only in (None, "datapath"):
        print("1. datapath, allowed pair across nodes, 20 pods per node", flush=True)
        out["datapath"] = datapath(secs, [0, 100, 1000], runs)
    if args.only in (None, "dispatch"):
        print("1b. the dispatch's cost per new connection: membership sets vs verdict maps", flush=True)
        out["dispatch"] = dispatch_cost(1.5, 4 if args.quick else 8)
    if args.only in (None, "sizes"):
        print("2. table size", flush=True)
        out["sizes"] = sizes()
    if args.only in (None, "apply"):
        print("2b. a whole table applied", flush=True)
        out["full_apply"] = full_apply()
        out["jump_check"] = jump_check()
    if args.only in (None, "write"):
        print("3. policy write -> enforced", flush=True)
        out["write_to_enforced"] = write_to_enforced(samples)
    if args.only not in (None, "one-change"):
        return _write(args.json, out)
    print("4. one change (a pod's label, a policy's port): 10 objects vs 10,000", flush=True)
    out["one_change"] = one_change(50 if args.quick else 200)
    return _write(args.json, out)


def _write(path: str | None, out: dict[str, Any]) -> int:
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
