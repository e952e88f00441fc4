"""Tiered policy in the kernel: what tiers cost against the equivalent Kubernetes-only table.

Side by side in one run, in a namespace made for it (one node, ``--pods`` synthetic pods):

  1. render and apply (a full atomic sync into an empty table) of N Kubernetes NetworkPolicies
     vs the same N policies as Calico NetworkPolicies spread over 4 tiers (same selectors, same
     Allow rules, defaultAction Pass for all but the last tier), medians of ``--repeats``;
  2. one policy change (a port of one policy) → committed: the full path both kinds take when
     they cannot use the Kubernetes-only live fast path (state build, render, diff, one atomic
     transaction), p50/p99 over ``--changes`` changes.

Run as root: .venv/bin/python bench/policy_tiers.py [--policies 100] [--pods 200]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.dataplane.nft.render import render  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.kernel.nft.apply import NftApplier  # noqa: E402
from podnet.model import CalicoNetworkPolicy, Namespace, NetworkPolicy, Pod, Tier  # noqa: E402
from podnet.policy.cluster import ClusterState  # noqa: E402

NS = "bench"
TIERS = 4


def pods(n: int) -> list[Pod]:
    return [Pod.model_validate({
        "metadata": {"name": f"p{i:05d}", "namespace": NS, "labels": {"app": f"a{i % 20}"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{2 + i % 250}", "hostIP": "10.99.0.1"}})
        for i in range(n)]


def k8s_policies(n: int, bump: int = 0) -> list[Any]:
    return [NetworkPolicy.model_validate({"metadata": {"name": f"np{j:04d}", "namespace": NS}, "spec": {
        "podSelector": {"matchLabels": {"app": f"a{j % 20}"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"a{(j + 3) % 20}"}}}],
                     "ports": [{"port": 10000 + j + (bump if j == 0 else 0)}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": f"a{(j + 5) % 20}"}}}], "ports": [{"port": 20000 + j}]}],
    }}) for j in range(n)]


def tiers() -> list[Tier]:
    return [Tier.model_validate({"metadata": {"name": f"t{k}"}, "spec": {
        "order": 100 * (k + 1), **({"defaultAction": "Pass"} if k < TIERS - 1 else {})}}) for k in range(TIERS)]


def tiered_policies(n: int, bump: int = 0) -> list[Any]:
    return [CalicoNetworkPolicy.model_validate({"metadata": {"name": f"t{j // 20 % TIERS}.np{j:04d}", "namespace": NS}, "spec": {
        "tier": f"t{j // 20 % TIERS}", "order": j, "selector": f"app == 'a{j % 20}'", "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": f"app == 'a{(j + 3) % 20}'"},
                     "destination": {"ports": [10000 + j + (bump if j == 0 else 0)]}}],
        "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"selector": f"app == 'a{(j + 5) % 20}'",
                                                                         "ports": [20000 + j]}}],
    }}) for j in range(n)]


def state(kind: str, n: int, pod_list: list[Pod], bump: int = 0) -> ClusterState:
    nss = [Namespace.model_validate({"metadata": {"name": NS}})]
    if kind == "k8s":
        return ClusterState.build(nss, pod_list, k8s_policies(n, bump))
    return ClusterState.build(nss, pod_list, tiered_policies(n, bump), tiers=tiers())


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    name = f"bt{secrets.token_hex(3)}"
    netns.create(name)
    try:
        def fresh() -> NftApplier:
            """An empty table and an applier that knows it."""
            netns.run_in(name, ["nft", "delete", "table", "inet", "podnet"], check=False)
            return NftApplier(name)

        pod_list = pods(args.pods)
        figures: dict[str, dict[str, list[float]]] = {k: {"render": [], "apply": [], "change": []} for k in ("k8s", "tiered")}
        counts: dict[str, dict[str, int]] = {}
        for _ in range(args.repeats):
            for kind in ("k8s", "tiered"):  # alternating, so a busy moment hits both
                st = state(kind, args.policies, pod_list)
                t0 = time.perf_counter()
                table = render(st, "n1", node_ips=["10.99.0.1"])
                t1 = time.perf_counter()
                applier = fresh()
                t1 = time.perf_counter()
                applier.sync(table)
                t2 = time.perf_counter()
                figures[kind]["render"].append(t1 - t0)
                figures[kind]["apply"].append(t2 - t1)
                counts[kind] = table.counts()
        for kind in ("k8s", "tiered"):
            applier = fresh()
            applier.sync(render(state(kind, args.policies, pod_list), "n1", node_ips=["10.99.0.1"]))
            for i in range(args.changes):
                t0 = time.perf_counter()
                table = render(state(kind, args.policies, pod_list, bump=1 + i % 2), "n1", node_ips=["10.99.0.1"])
                plan = applier.sync(table)
                figures[kind]["change"].append(time.perf_counter() - t0)
                assert not plan.empty
    finally:
        netns.remove(name)
    print(f"{args.policies} policies, {args.pods} pods on the node ({TIERS} tiers for the tiered table); "
          "medians in ms; the machine may be shared with other work")
    for kind in ("k8s", "tiered"):
        f, c = figures[kind], counts[kind]
        print(f"  {kind:7s} rules {c['rules']:5d} chains {c['chains']:4d} sets {c['sets']:4d} set elements "
              f"{c['set_elements']:6d} | render {1e3 * statistics.median(f['render']):7.1f}  apply "
              f"{1e3 * statistics.median(f['apply']):7.1f}  one change p50 {1e3 * pct(f['change'], 50):7.1f} "
              f"p99 {1e3 * pct(f['change'], 99):7.1f}")
    k, t = figures["k8s"], figures["tiered"]
    print(f"  tiered / k8s: render {statistics.median(t['render']) / statistics.median(k['render']):.2f}x  "
          f"apply {statistics.median(t['apply']) / statistics.median(k['apply']):.2f}x  "
          f"one change p50 {pct(t['change'], 50) / pct(k['change'], 50):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
