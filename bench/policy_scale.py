"""Policy engine at scale: full connectivity matrix, speed-up over the reference, explain latency,
and the same with tiered policy (GlobalNetworkPolicies in three tiers, AdminNetworkPolicies) plus
the semantic diff of two such policy sets.

    .venv/bin/python bench/policy_scale.py            # 1,000 and 10,000 pods × 100 and 1,000 policies, then tiers
    .venv/bin/python bench/policy_scale.py --quick    # 1,000 pods only
    .venv/bin/python bench/policy_scale.py --tiers    # only the tiered measurement (10,000 pods)
    .venv/bin/python bench/policy_scale.py --scale 10000,100000  # pods (policies = pods / 10), each size in
                                                      # its own process: the bench's own footprint, full matrix,
                                                      # every pod row expanded, explain, `matrix -o json`, RSS
    .venv/bin/python bench/policy_scale.py --diff 10000,40000 [--against TREE]
                                                      # the semantic diff of a change at each size (time, peak
                                                      # RSS), each in its own process; with --against, the same
                                                      # run of another podnet tree (e.g. a `git worktree` of an
                                                      # older commit) beside it

Clusters are generated with realistic skew: 500 namespaces whose sizes follow a Zipf-like law,
deployments with pod-template-hash labels, a few popular app/tier labels, named ports, and a
policy mix seen in practice (default deny, same-app, cross-namespace by label and by name,
named ports, port ranges, ipBlock with except, DNS egress).
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ``--against``: the child process measures the podnet of another tree
sys.path.insert(0, os.environ.get("PODNET_BENCH_TREE") or str(Path(__file__).resolve().parents[1]))

from podnet.model import (  # noqa: E402
    AdminNetworkPolicy,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Pod,
    Tier,
)
from podnet.policy.cluster import ClusterState, compile_any, endpoint_for_pod  # noqa: E402
from podnet.policy.diff import semantic_diff  # noqa: E402
from podnet.policy.evaluate import evaluate  # noqa: E402
from podnet.policy.matrix import Matrix, compute_matrix, reference_matrix  # noqa: E402

APPS = [f"app{i}" for i in range(60)]
TIERS = ["web", "api", "db", "cache", "worker"]
PORTS = [("http", 8080, "TCP"), ("https", 443, "TCP"), ("metrics", 9090, "TCP"), ("db", 5432, "TCP"),
         ("dns", 53, "UDP"), ("web", 80, "TCP")]


def zipf_choice(rng: random.Random, items: list[Any], s: float = 1.1) -> Any:
    weights = [1 / (i + 1) ** s for i in range(len(items))]
    return rng.choices(items, weights)[0]


def generate(n_pods: int, n_policies: int, n_ns: int = 500, seed: int = 1):
    """The cluster as model objects (namespaces, pods, policies)."""
    out: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for kind, obj in iter_cluster(n_pods, n_policies, n_ns, seed):
        out[kind].append(obj)
    return out


def generate_state(n_pods: int, n_policies: int, n_ns: int = 500, seed: int = 1) -> ClusterState:
    """The same cluster as ``ClusterState.build(*generate(...))``, each pod turned into its
    endpoint as it is generated, so the bench never holds 100,000 Pod models at once (they,
    not the engine, were most of its memory)."""
    namespaces, endpoints, policies = [], [], []
    for kind, obj in iter_cluster(n_pods, n_policies, n_ns, seed):
        if kind == NAMESPACE:
            namespaces.append(obj)
        elif kind == POD:
            endpoints.append(endpoint_for_pod(obj))
        else:
            policies.append(compile_any(obj))
    return ClusterState.from_parts(namespaces, endpoints, policies)


NAMESPACE, POD, POLICY = 0, 1, 2


def iter_cluster(n_pods: int, n_policies: int, n_ns: int = 500, seed: int = 1) -> Iterator[tuple[int, Any]]:
    """(kind, object) for every namespace, then pod, then policy, in one random sequence."""
    rng = random.Random(seed)
    for i in range(n_ns):
        labels = {"team": f"team{int(rng.paretovariate(1.2)) % 40}", "env": rng.choice(["prod", "dev", "staging"])}
        if rng.random() < 0.1:
            labels["networking/namespace"] = f"zone{i % 7}"
        yield NAMESPACE, Namespace.model_validate({"metadata": {"name": f"ns{i}", "labels": labels}})
    ns_weights = [1 / (i + 1) ** 0.9 for i in range(n_ns)]
    deployments: dict[str, list[dict[str, str]]] = {}
    for i in range(n_pods):
        ns = rng.choices(range(n_ns), ns_weights)[0]
        nsname = f"ns{ns}"
        deps = deployments.setdefault(nsname, [])
        if not deps or rng.random() < 0.15:
            deps.append({"app": zipf_choice(rng, APPS), "tier": rng.choice(TIERS),
                         "pod-template-hash": f"{rng.getrandbits(32):08x}"})
        labels = dict(rng.choice(deps))
        if rng.random() < 0.05:
            labels["access"] = "true"
        declared = rng.sample(PORTS, rng.randint(0, 3))
        node = i % 50
        yield POD, Pod.model_validate({
            "metadata": {"name": f"{labels['app']}-{i}", "namespace": nsname, "labels": labels},
            "spec": {"containers": [{"name": "main", "ports": [{"name": n, "containerPort": p, "protocol": pr}
                                                                 for n, p, pr in declared]}], "nodeName": f"node{node}"},
            "status": {"podIP": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", "hostIP": f"192.168.{node // 250}.{node % 250 + 1}"},
        })
    for i in range(n_policies):
        ns = rng.choices(range(n_ns), ns_weights)[0]
        app = zipf_choice(rng, APPS)
        kind = rng.random()
        sel = {"matchLabels": {"app": app}} if rng.random() < 0.8 else {}
        spec: dict[str, Any]
        if kind < 0.15:
            spec = {"podSelector": {}, "policyTypes": ["Ingress"]}
        elif kind < 0.35:
            spec = {"podSelector": sel, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": zipf_choice(rng, APPS)}}}],
                                                     "ports": [{"port": "http"}, {"port": 80}]}]}
        elif kind < 0.5:
            spec = {"podSelector": sel, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": f"team{rng.randint(0, 10)}"}},
                                                              "podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}}}]}]}
        elif kind < 0.6:
            spec = {"podSelector": sel, "ingress": [{"from": [
                {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]}}],
                "ports": [{"port": 8000, "endPort": 9100}]}]}
        elif kind < 0.72:
            spec = {"podSelector": sel, "policyTypes": ["Egress"], "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns0"}},
                         "podSelector": {"matchLabels": {"app": "app0"}}}],
                 "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"to": [{"podSelector": {}}]}]}
        elif kind < 0.82:
            base = rng.randint(0, 38)
            spec = {"podSelector": sel, "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [{"podSelector": {}}]}],
                    "egress": [{"to": [{"ipBlock": {"cidr": f"10.0.{base}.0/24", "except": [f"10.0.{base}.{rng.randint(0, 255)}/32"]}},
                                       {"ipBlock": {"cidr": "172.16.0.0/12"}}]}]}
        elif kind < 0.9:
            spec = {"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}], "ports": [{"port": "metrics"}]}]}
        else:
            spec = {"podSelector": sel, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]}
        yield POLICY, NetworkPolicy.model_validate({"metadata": {"name": f"pol{i}", "namespace": f"ns{ns}"}, "spec": spec})


TIER_ORDERS = {"security": 100, "platform": 500, "apps": 2_000_000}


def generate_tiers(n_gnp: int, n_anp: int, n_ns: int = 500, seed: int = 2, variant: int = 0):
    """Tiers, network sets, GlobalNetworkPolicies spread over three tiers and AdminNetworkPolicies,
    with the rule mix platform teams write (deny to metadata and dev → prod, allow monitoring,
    pass the rest on, ports and ranges, namespace selectors, network sets). ``variant`` edits
    them as a change under review would: > 0 opens one more port in one policy; < 0 moves a
    policy in its tier and changes an AdminNetworkPolicy's action."""
    rng = random.Random(seed)
    tiers = [Tier.model_validate({"metadata": {"name": n}, "spec": {"order": o, **({"defaultAction": "Pass"} if n == "apps" else {})}})
             for n, o in TIER_ORDERS.items()]
    sets = [GlobalNetworkSet.model_validate({"metadata": {"name": "metadata", "labels": {"role": "metadata"}},
                                             "spec": {"nets": ["169.254.169.254/32", "10.0.200.0/24"]}}),
            GlobalNetworkSet.model_validate({"metadata": {"name": "partners", "labels": {"role": "partner"}},
                                             "spec": {"nets": [f"172.16.{i}.0/24" for i in range(8)] + ["10.0.7.0/26"]}})]
    sets += [NetworkSet.model_validate({"metadata": {"name": f"egress-{i}", "namespace": f"ns{i}", "labels": {"role": "egress"}},
                                        "spec": {"nets": [f"10.{i % 3}.{i}.0/28"]}}) for i in range(10)]
    gnps = []
    edited = False
    tier_names = list(TIER_ORDERS)
    for i in range(n_gnp):
        tier = tier_names[i % 3]
        app = zipf_choice(rng, APPS)
        kind = rng.random()
        selector = rng.choice([f"app == '{app}'", "all()", f"tier == '{rng.choice(TIERS)}'", f"app in {{'{app}', 'app1'}}"])
        rules: list[dict[str, Any]]
        if kind < 0.25:
            rules = [{"action": "Deny", "destination": {"selector": "role == 'metadata'"}}, {"action": "Pass"}]
            spec = {"types": ["Egress"], "egress": rules}
        elif kind < 0.5:
            rules = [{"action": "Allow", "source": {"namespaceSelector": f"team == 'team{rng.randint(0, 5)}'"}},
                     {"action": "Deny", "source": {"namespaceSelector": "env == 'dev'"},
                      "destination": {"namespaceSelector": "env == 'prod'"}},
                     {"action": "Pass"}]
            spec = {"types": ["Ingress"], "ingress": rules}
        elif kind < 0.7:
            ports: list[int | str] = [80, "http", 443]
            if variant > 0 and i >= variant and i % 3 == 0 and not edited:  # a review: one more port opened
                ports, edited = ports + [5432], True
            rules = [{"action": "Log", "protocol": "TCP", "destination": {"ports": ["8000:9100"]}},
                     {"action": "Allow", "protocol": "TCP", "source": {"selector": f"app == '{zipf_choice(rng, APPS)}'"},
                      "destination": {"ports": ports}},
                     {"action": "Deny", "protocol": "UDP", "destination": {"notPorts": [53]}}]
            spec = {"types": ["Ingress"], "ingress": rules}
        elif kind < 0.85:
            rules = [{"action": "Allow", "destination": {"selector": "role == 'partner'"}},
                     {"action": "Deny", "destination": {"nets": ["172.16.0.0/12"], "notNets": ["172.16.3.0/24"]}},
                     {"action": "Pass"}]
            spec = {"types": ["Egress"], "egress": rules}
        else:
            rules = [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}},
                     {"action": "Deny", "source": {"notSelector": f"app == '{app}'"}}]
            spec = {"types": ["Ingress"], "ingress": rules}
        if variant < 0 and i == -variant:  # a broad change: a policy moves in its tier
            spec = {**spec, "order": rng.choice([1, 5000])}
        gnps.append(GlobalNetworkPolicy.model_validate({"metadata": {"name": f"{tier}.gnp{i}"}, "spec": {
            "tier": tier, "order": 10 * (i // 3), "selector": selector, **spec}}))
    anps = []
    for i in range(n_anp):
        team = f"team{rng.randint(0, 10)}"
        action = rng.choice(["Deny", "Pass", "Allow"])
        if variant < 0 and i == -variant % n_anp:
            action = "Deny" if action != "Deny" else "Pass"
        anps.append(AdminNetworkPolicy.model_validate({"metadata": {"name": f"anp{i}"}, "spec": {
            "priority": i * 5, "subject": {"namespaces": {"matchLabels": {"team": team}}},
            "ingress": [{"action": action, "from": [{"namespaces": {"matchLabels": {"env": "dev"}}}],
                         "ports": [{"portNumber": {"protocol": "TCP", "port": 5432}}]}],
            "egress": [{"action": "Deny", "to": [{"networks": ["169.254.169.254/32"]}]},
                       {"action": "Pass", "to": [{"pods": {"namespaceSelector": {"matchLabels": {"team": team}},
                                                           "podSelector": {}}}]}]}}))
    return tiers, sets, gnps + anps


def declared_ports(state: ClusterState) -> dict[str, list[int]]:
    out: dict[str, set[int]] = {}
    for ep in state.pods:
        for num, proto in ep.container_ports:
            out.setdefault(proto, set()).add(num)
    return {proto: sorted(nums) for proto, nums in sorted(out.items())}


def full_matrix(state: ClusterState) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    cells = classes = 0
    for proto, ports in declared_ports(state).items():
        m = compute_matrix(state, ports, [proto])
        cells += len(m.rows) * len(m.pods) ** 2
        classes = max(classes, m.classes)
    return time.perf_counter() - t0, cells, classes


def explain_latency(state: ClusterState, samples: int = 1000, seed: int = 7) -> tuple[float, float]:
    rng = random.Random(seed)
    pods = state.pods
    times = []
    for _ in range(samples):
        src, dst = rng.choice(pods), rng.choice(pods)
        port = rng.choice([80, 443, 8080, 9090])
        t0 = time.perf_counter()
        evaluate(state, src, dst, port, "TCP").to_dict()
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99)] * 1000


def tiered(n_pods: int, n_k8s: int, n_gnp: int, n_anp: int) -> None:
    """The tiered workload next to the same cluster with its NetworkPolicies alone."""
    ns, pods, pols = generate(n_pods, n_k8s)
    tiers, sets, tiered_pols = generate_tiers(n_gnp, n_anp)
    plain = ClusterState.build(ns, pods, pols)
    t0 = time.perf_counter()
    state = ClusterState.build(ns, pods, pols + tiered_pols, tiers=tiers, network_sets=sets)
    build = time.perf_counter() - t0
    plain_s, _, _ = full_matrix(plain)
    elapsed, cells, classes = full_matrix(state)
    p50, p99 = explain_latency(state)
    print(f"tiered: {n_pods} pods, {n_k8s} NetworkPolicies, {n_gnp} GlobalNetworkPolicies in 3 tiers, {n_anp} "
          f"AdminNetworkPolicies, {len(sets)} network sets", flush=True)
    print(f"  build {build:.2f} s; matrix {elapsed:.2f} s over {cells:,} cells, {classes} classes "
          f"(NetworkPolicies alone {plain_s:.2f} s: {elapsed / plain_s:.2f}x); explain p50 {p50:.3f} ms, p99 {p99:.3f} ms",
          flush=True)
    changes = [("a review-sized change (one port added to a GlobalNetworkPolicy rule, 3 NetworkPolicies removed)", 7),
               ("a broad one (a GlobalNetworkPolicy moved in its tier, an AdminNetworkPolicy's action changed, "
                "3 NetworkPolicies removed)", -7)]
    for what, variant in changes:
        _, _, changed_pols = generate_tiers(n_gnp, n_anp, variant=variant)
        changed = ClusterState.build(ns, pods, pols[:-3] + changed_pols, tiers=tiers, network_sets=sets)
        diff_s, opened, closed = timed_diff(state, changed)
        print(f"  diff of two such sets, {what}: {diff_s:.2f} s ({opened:,} connections opened, {closed:,} closed)",
              flush=True)
    print(f"  peak RSS {peak_rss_mb():.0f} MB", flush=True)


def json_output(state: ClusterState) -> tuple[float, float, int]:
    """``matrix -o json`` for one port: streamed row by row (what the CLI does) vs the document
    built then dumped, both written to /dev/null; the texts must be equal."""
    import hashlib
    import json

    m = compute_matrix(state, [80], ["TCP"])
    t0 = time.perf_counter()
    h1 = hashlib.sha256()
    with open("/dev/null", "w") as out:
        for piece in m.iter_json():
            out.write(piece)
            h1.update(piece.encode())
    streamed = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = json.dumps(m.to_json())
    with open("/dev/null", "w") as out:
        out.write(text)
    built = time.perf_counter() - t0
    assert hashlib.sha256(text.encode()).digest() == h1.digest(), "streamed JSON differs"
    return streamed, built, len(text)


def scale(n_pods: int) -> None:
    """One size of the 10:1 pods-to-policies workload, everything the issue bounds, with the
    bench's own footprint (generating the cluster) measured apart from the engine's."""
    n_pol = n_pods // 10
    t0 = time.perf_counter()
    state = generate_state(n_pods, n_pol)
    made = time.perf_counter() - t0
    print(f"{n_pods:>7} pods x {n_pol:>6} policies: generated and state built in {made:.1f} s; the bench's own "
          f"footprint: RSS {current_rss_mb():.0f} MB now, peak {peak_rss_mb():.0f} MB while generating", flush=True)
    reset = reset_peak_rss()
    before = current_rss_mb()
    elapsed, cells, classes, matrices = full_matrix_kept(state)
    matrix_peak = peak_rss_mb()
    print(f"         full matrix {elapsed:.2f} s ({cells:,} cells, {classes} classes), peak RSS "
          f"{matrix_peak:.0f} MB ({'since' if reset else 'process; RSS'} {before:.0f} MB before the matrix)", flush=True)
    t0 = time.perf_counter()
    allowed = expanded = 0
    for m in matrices:
        for key in m.keys:
            counted = m.count_allowed(key)
            assert m.by_class is not None
            seen = sum(row.bit_count() for row in m.by_class.iter_rows(key))
            assert seen == counted, f"{key}: {seen} cells in the expanded rows, {counted} counted per class"
            allowed += counted
            expanded += len(m.pods)
    expand_s = time.perf_counter() - t0
    print(f"         every pod row expanded once (streamed, not kept) and checked against the per-class count: "
          f"{expanded:,} rows in {expand_s:.2f} s ({allowed:,} of {cells:,} cells allowed), peak RSS "
          f"{peak_rss_mb():.0f} MB", flush=True)
    p50, p99 = explain_latency(state)
    print(f"         explain p50 {p50:.3f} ms p99 {p99:.3f} ms, peak RSS {peak_rss_mb():.0f} MB", flush=True)
    if n_pods <= 10000:  # the document built in memory is ~13 bytes per cell: 8 GB at 20,000 pods
        streamed, built, size = json_output(state)
        print(f"         matrix -o json, one port ({size / 1e6:.0f} MB): streamed {streamed:.2f} s vs built "
              f"then dumped {built:.2f} s ({built / streamed:.2f}x), peak RSS {peak_rss_mb():.0f} MB", flush=True)
    else:
        rows, took = json_rows(matrices[0])
        whole = took / rows * n_pods
        print(f"         matrix -o json, the first {rows:,} rows of one port: {took:.2f} s ({took / rows * 1000:.2f} ms "
              f"per row of {n_pods:,} cells, so a whole port is ~{whole / 60:.0f} min and "
              f"~{n_pods * n_pods * 6.5 / 1e9:.0f} GB)" if whole >= 120 else
              f"         matrix -o json, the first {rows:,} rows of one port: {took:.2f} s ({took / rows * 1000:.2f} ms "
              f"per row of {n_pods:,} cells, so a whole port is ~{whole:.0f} s and "
              f"~{n_pods * n_pods * 6.5 / 1e9:.0f} GB)", flush=True)


def timed_diff(state: ClusterState, changed: ClusterState) -> tuple[float, int, int]:
    """The semantic diff over every declared port: seconds, connections opened and closed."""
    t0 = time.perf_counter()
    opened = closed = 0
    for proto, ports in declared_ports(state).items():
        d = semantic_diff(state, changed, ports, [proto])
        opened += d.opened
        closed += d.closed
    return time.perf_counter() - t0, opened, closed


def diff_scale(n_pods: int) -> None:
    """One semantic diff at this size (10 pods per policy): the state against the same cluster
    with its first three policies removed, every declared port; time and peak RSS (the
    generation's own peak excluded where the kernel allows)."""
    ns, pods, pols = generate(n_pods, n_pods // 10)
    state = ClusterState.build(ns, pods, pols)
    changed = ClusterState.build(ns, pods, pols[3:])
    reset = reset_peak_rss()
    took, opened, closed = timed_diff(state, changed)
    tree = os.environ.get("PODNET_BENCH_TREE") or "this tree"
    print(f"{n_pods:>7} pods, {tree}: diff {took:.2f} s, peak RSS {peak_rss_mb():.0f} MB"
          f"{'' if reset else ' (process)'} ({opened:,} connections opened, {closed:,} closed)", flush=True)


def full_matrix_kept(state: ClusterState) -> tuple[float, int, int, list[Matrix]]:
    """``full_matrix``, keeping the matrices (per class, so small) for the checks after it."""
    t0 = time.perf_counter()
    cells = classes = 0
    out = []
    for proto, ports in declared_ports(state).items():
        m = compute_matrix(state, ports, [proto])
        cells += len(m.rows) * len(m.pods) ** 2
        classes = max(classes, m.classes)
        out.append(m)
    return time.perf_counter() - t0, cells, classes, out


def json_rows(m: Matrix, rows: int = 1000) -> tuple[int, float]:
    """``matrix -o json`` streamed to /dev/null for the first ``rows`` rows of the first key."""
    t0 = time.perf_counter()
    with open("/dev/null", "w") as out:
        for n, piece in enumerate(m.iter_json()):
            out.write(piece)
            if n > rows:  # the head, the key, then one piece per row
                break
    return rows, time.perf_counter() - t0


def peak_rss_mb() -> float:
    """The peak RSS (VmHWM: since the last ``reset_peak_rss``, else since the start)."""
    return _status_kb("VmHWM") / 1024 or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> bool:
    """Start VmHWM again from the current RSS (Linux ≥ 4.0), so a phase's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 pods only")
    parser.add_argument("--tiers", action="store_true", help="only the tiered measurement")
    parser.add_argument("--scale", default="", help="comma-separated pod counts, 10 pods per policy")
    parser.add_argument("--diff", default="", help="comma-separated pod counts: the semantic diff at each")
    parser.add_argument("--against", default="", help="with --diff: another podnet tree measured beside this one")
    parser.add_argument("--diff-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.diff_child:
        diff_scale(args.diff_child)
        return
    if args.diff:
        for n in (int(x) for x in args.diff.split(",")):
            for tree in ([args.against] if args.against else []) + [""]:
                env = {**os.environ, "PODNET_BENCH_TREE": os.path.abspath(tree)} if tree else dict(os.environ)
                subprocess.run([sys.executable, __file__, "--diff-child", str(n)], check=True, env=env)
        return
    if args.scale:
        sizes = [int(n) for n in args.scale.split(",")]
        if len(sizes) == 1:
            scale(sizes[0])
            return
        for n in sizes:  # each size in its own process, so one size's memory is not the next one's
            subprocess.run([sys.executable, __file__, "--scale", str(n)], check=True)
        return
    if args.tiers:
        tiered(10000, 1000, 100, 20)
        return
    sizes = [(1000, 100), (1000, 1000)] if args.quick else [(1000, 100), (1000, 1000), (10000, 100), (10000, 1000)]
    print(f"{'pods':>6} {'policies':>8} {'classes':>7} {'build s':>8} {'matrix s':>9} {'cells':>12} "
          f"{'explain p50 ms':>14} {'p99 ms':>7} {'peak RSS MB':>11}")
    for n_pods, n_pol in sizes:
        ns, pods, pols = generate(n_pods, n_pol)
        t0 = time.perf_counter()
        state = ClusterState.build(ns, pods, pols)
        build = time.perf_counter() - t0
        elapsed, cells, classes = full_matrix(state)
        p50, p99 = explain_latency(state)
        print(f"{n_pods:>6} {n_pol:>8} {classes:>7} {build:>8.2f} {elapsed:>9.2f} {cells:>12,} {p50:>14.3f} {p99:>7.3f} "
              f"{peak_rss_mb():>11.0f}", flush=True)
        if (n_pods, n_pol) == (1000, 100):
            ports = declared_ports(state)
            t0 = time.perf_counter()
            fast = {proto: compute_matrix(state, nums, [proto]) for proto, nums in ports.items()}
            fast_s = time.perf_counter() - t0
            ref_s = 0.0
            for proto, nums in ports.items():
                t0 = time.perf_counter()
                ref = reference_matrix(state, nums, [proto])
                ref_s += time.perf_counter() - t0
                assert ref.rows == fast[proto].rows, "fast path disagrees with the reference"
            print(f"       reference evaluator at {n_pods} pods x {n_pol} policies: {ref_s:.1f} s vs {fast_s:.3f} s "
                  f"-> speed-up {ref_s / fast_s:.0f}x (results identical)", flush=True)
    tiered(1000 if args.quick else 10000, 100 if args.quick else 1000, 100, 20)


if __name__ == "__main__":
    main()
