"""Tiered policy in the kernel: what tiers cost against the equivalent Kubernetes-only table.

Side by side in one run, in a namespace made for it (one node, ``--pods`` synthetic pods):

  1. render and apply (a full atomic sync into an empty table) of N Kubernetes NetworkPolicies
     vs the same N policies as Calico NetworkPolicies spread over 4 tiers (same selectors, same
     Allow rules, defaultAction Pass for all but the last tier), medians of ``--repeats``;
  2. one policy change (a port of one policy) → committed, p50/p99 over ``--changes`` changes,
     four ways interleaved change by change (each in its own namespace): the full path (state
     build, render, diff, one atomic transaction) and the live path (compile the changed policy,
     plan it on the live table: ``dataplane/nft/live.py`` for the Kubernetes-only table,
     ``dataplane/nft/tiers_live.py`` for the tiered one; commit the commands, a raw netlink
     batch when the encoder covers them), for each kind of table; then one pod relabelled
     (it moves to another label group) on the live path of each table;
  3. the same change through the policy loop (a store write, then ``PolicyReconciler.
     reconcile_view``: read the watch, compile, plan on the live table, commit, hold the
     affected pods' tracked flows to it), both tables interleaved, write → committed.

Run as root: .venv/bin/python bench/policy_tiers.py [--policies 100] [--pods 200] [--changes 50]
"""
from __future__ import annotations

import argparse
import functools
import os
import secrets
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.dataplane.nft.live import LiveTable  # noqa: E402
from podnet.dataplane.nft.render import render, render_indexed  # noqa: E402
from podnet.dataplane.nft.tiers import render_tiered_layout  # noqa: E402
from podnet.dataplane.nft.tiers_live import TieredLiveTable  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.kernel.nft.apply import NftApplier  # noqa: E402
from podnet.model import CalicoNetworkPolicy, Namespace, NetworkPolicy, Pod, Tier  # noqa: E402
from podnet.policy.cluster import ClusterState, compile_any, endpoint_for_pod  # noqa: E402

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
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--no-cut-flows", action="store_true",
                    help="the loop does not hold tracked flows to the new policy (no conntrack listing)")
    args = ap.parse_args()
    name = f"bt{secrets.token_hex(3)}"
    spaces = {(kind, path): f"{name}{kind[0]}{path[0]}" for kind in ("k8s", "tiered") for path in ("full", "live")}
    netns.create(name)
    for ns in spaces.values():
        netns.create(ns)
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
        changes = one_change_figures(args, pod_list, spaces)
        loop = loop_figures(args, pod_list, {kind: spaces[(kind, "live")] for kind in ("k8s", "tiered")})
    finally:
        for ns in spaces.values():
            netns.remove(ns)
        netns.remove(name)
    print(f"{args.policies} policies, {args.pods} pods on the node ({TIERS} tiers for the tiered table); "
          "medians in ms; the machine may be shared with other work")
    for kind in ("k8s", "tiered"):
        f, c = figures[kind], counts[kind]
        print(f"  {kind:7s} rules {c['rules']:5d} chains {c['chains']:4d} sets {c['sets']:4d} set elements "
              f"{c['set_elements']:6d} | render {1e3 * statistics.median(f['render']):7.1f}  apply "
              f"{1e3 * statistics.median(f['apply']):7.1f}")
    k, t = figures["k8s"], figures["tiered"]
    print(f"  tiered / k8s: render {statistics.median(t['render']) / statistics.median(k['render']):.2f}x  "
          f"apply {statistics.median(t['apply']) / statistics.median(k['apply']):.2f}x")
    print(f"one policy change → committed, ms over {args.changes} changes (the four ways interleaved):")
    for kind in ("k8s", "tiered"):
        for path in ("full", "live"):
            xs, how = changes[(kind, path)]
            print(f"  {kind:7s} {path:5s} p50 {1e3 * pct(xs, 50):7.2f}  p99 {1e3 * pct(xs, 99):7.2f}  "
                  f"(commit: {', '.join(f'{h} {n}' for h, n in sorted(how.items()))})")
    for kind in ("k8s", "tiered"):
        xs, how = changes[(kind, "pod")]
        print(f"  {kind:7s} one pod relabelled, live path: p50 {1e3 * pct(xs, 50):7.2f}  p99 {1e3 * pct(xs, 99):7.2f}  "
              f"(commit: {', '.join(f'{h} {n}' for h, n in sorted(how.items()))})")
    for kind in ("k8s", "tiered"):
        full, live = changes[(kind, "full")][0], changes[(kind, "live")][0]
        print(f"  {kind:7s} full / live: p50 {pct(full, 50) / pct(live, 50):.1f}x  p99 {pct(full, 99) / pct(live, 99):.1f}x")
    tl, kl = changes[("tiered", "live")][0], changes[("k8s", "live")][0]
    print(f"  tiered live / k8s live: p50 {pct(tl, 50) / pct(kl, 50):.2f}x  p99 {pct(tl, 99) / pct(kl, 99):.2f}x")
    print(f"through the policy loop (store write → committed), ms over {args.changes} changes:")
    for kind in ("k8s", "tiered"):
        xs, passes, live_passes = loop[kind]
        print(f"  {kind:7s} p50 {1e3 * pct(xs, 50):7.2f}  p99 {1e3 * pct(xs, 99):7.2f}  (the loop's pass alone: p50 "
              f"{1e3 * pct(passes, 50):6.2f}  p99 {1e3 * pct(passes, 99):6.2f}; live passes {live_passes}/{len(xs)})")
    return 0


def loop_figures(args: argparse.Namespace, pod_list: list[Pod], spaces: dict[str, str]
                 ) -> dict[str, tuple[list[float], list[float], int]]:
    """One policy written to a store at a time, then one pass of the node's policy loop."""
    from podnet.agent.policy import PolicyReconciler
    from podnet.agent.policy_view import LiveView
    from podnet.store.open import open_store

    out: dict[str, tuple[list[float], list[float], int]] = {}
    runs: dict[str, tuple[Any, Any, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, ns in spaces.items():
            netns.run_in(ns, ["nft", "delete", "table", "inet", "podnet"], check=False)
            store = open_store(os.path.join(tmp, kind))
            store.create(Namespace.model_validate({"metadata": {"name": NS}}))
            if kind == "tiered":
                for tier in tiers():
                    store.create(tier)
            for p in pod_list:
                created = store.create(Pod.model_validate({k: v for k, v in p.to_dict().items() if k != "status"}))
                store.update_status(Pod.model_validate({**created.to_dict(), "status": p.to_dict()["status"]}))
            for pol in (k8s_policies if kind == "k8s" else tiered_policies)(args.policies):
                store.create(pol)
            rec = PolicyReconciler("n1", netns=ns, readback_every=1e9, cut_flows=not args.no_cut_flows)
            view = LiveView(store)
            assert rec.reconcile_view(view).error is None
            runs[kind] = (store, rec, view)
            out[kind] = ([], [], 0)
        try:
            for i in range(args.changes):
                for kind, (store, rec, view) in runs.items():
                    obj = (k8s_policies if kind == "k8s" else tiered_policies)(1, 1 + i % 2)[0]
                    cls = type(obj)
                    have = store.get(cls, obj.metadata.name, obj.metadata.namespace)
                    fresh = cls.model_validate({**obj.to_dict(), "metadata": {
                        **obj.to_dict()["metadata"], "resourceVersion": have.metadata.resource_version}})
                    t0 = time.perf_counter()
                    store.update(fresh)
                    status = rec.reconcile_view(view)
                    took = time.perf_counter() - t0
                    assert status.error is None and not status.skipped
                    xs, passes, live = out[kind]
                    xs.append(took)
                    passes.append(status.seconds)
                    out[kind] = (xs, passes, live + bool(status.plan.get("incremental")))
        finally:
            for store, _, _ in runs.values():
                store.close()
    return out


def one_change_figures(args: argparse.Namespace, pod_list: list[Pod], spaces: dict[tuple[str, str], str]
                       ) -> dict[tuple[str, str], tuple[list[float], dict[str, int]]]:
    """One policy change at a time, the four ways in turn (so a busy moment hits all of them)."""
    appliers: dict[tuple[str, str], NftApplier] = {}
    lives: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for (kind, path), ns in spaces.items():
        netns.run_in(ns, ["nft", "delete", "table", "inet", "podnet"], check=False)
        appliers[(kind, path)] = applier = NftApplier(ns)
        st = state(kind, args.policies, pod_list)
        if kind == "tiered":
            table, index, layout = render_tiered_layout(st, "n1", node_ips=["10.99.0.1"])
            live: Any = TieredLiveTable(table, index, layout)
        else:
            table, index = render_indexed(st, "n1", node_ips=["10.99.0.1"])
            live = LiveTable(table, index, st)
        applier.sync(table)
        if path == "live":
            lives[kind] = (live, st)
            current[kind] = next(p for p in st.policies if p.name.endswith("np0000"))
    out: dict[tuple[str, str], tuple[list[float], dict[str, int]]] = {k: ([], {}) for k in spaces}
    for i in range(args.changes):
        bump = 1 + i % 2
        for kind, path in spaces:
            xs, how = out[(kind, path)]
            applier = appliers[(kind, path)]
            t0 = time.perf_counter()
            if path == "full":
                plan = applier.sync(render(state(kind, args.policies, pod_list, bump=bump), "n1", node_ips=["10.99.0.1"]))
                assert not plan.empty
                way = applier.last_path
            else:
                live, st = lives[kind]
                obj = (k8s_policies if kind == "k8s" else tiered_policies)(1, bump)[0]
                new = compile_any(obj)
                if kind == "k8s":
                    update = live.plan_policies([(current[kind], new)], st)
                else:
                    update = live.plan_policies([(current[kind], new)])
                assert update is not None and not update.plan.empty
                way = applier.apply_elements(update.commands, live, functools.partial(live.commit, update))
                current[kind] = new
            xs.append(time.perf_counter() - t0)
            how[way] = how.get(way, 0) + 1
    # one pod relabelled (it leaves one label group for another), on the live path of each table
    subject = pod_list[7]
    pod_now = {kind: endpoint_for_pod(subject) for kind in lives}
    for i in range(args.changes):
        labels = {"app": f"a{(7 + 1 + i % 2) % 20}"}
        moved = endpoint_for_pod(subject.model_copy(update={"metadata": subject.metadata.model_copy(
            update={"labels": labels})}))
        for kind, (live, st) in lives.items():
            applier = appliers[(kind, "live")]
            xs, how = out.setdefault((kind, "pod"), ([], {}))
            t0 = time.perf_counter()
            if kind == "k8s":
                update = live.plan_pods([(pod_now[kind], moved)], st.policies_by_ns, st)
            else:
                update = live.plan_pods([(pod_now[kind], moved)])
            assert update is not None and not update.plan.empty
            way = applier.apply_elements(update.commands, live, functools.partial(live.commit, update))
            xs.append(time.perf_counter() - t0)
            how[way] = how.get(way, 0) + 1
            pod_now[kind] = moved
    return out


if __name__ == "__main__":
    sys.exit(main())
