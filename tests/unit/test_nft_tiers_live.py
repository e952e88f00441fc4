"""Changes on a tiered table without rendering it again (``dataplane/nft/tiers_live.py``): over
random sequences of policy creates, updates and deletes of every kind and pod creates, deletes,
relabels and readdresses (named ports included), the live plan applied to the previous table
equals a full render of the new state after every step (the table and the commands of a full
diff), and a declined change is one a full render then handles."""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.model import NftTable
from podnet.dataplane.nft.render import render_indexed
from podnet.dataplane.nft.tiers import render_tiered_layout, tiered_policy_chain_name
from podnet.dataplane.nft.tiers_live import TieredLiveTable
from podnet.model import GlobalNetworkPolicy, GlobalNetworkSet, Namespace, Node, Pod, Tier
from podnet.policy.cluster import ClusterState, compile_any, endpoint_for_pod, ref_of

from test_policy_naive import KEYS, VALUES, tiered_cluster

NODE, NODE_IPS = "node0", ["192.168.0.1"]
NAMESPACES = [Namespace.model_validate({"metadata": {"name": f"n{i}", "labels": labels}})
              for i, labels in enumerate([{"team": "x"}, {"team": "y"}, {}])]
NODES = [Node.model_validate({"metadata": {"name": f"node{i}", "labels": {"zone": VALUES[i]}},
                              "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.0.{i + 1}"}]}})
         for i in range(2)]
TIERS = [Tier.model_validate({"metadata": {"name": "early"}, "spec": {"order": 10}}),
         Tier.model_validate({"metadata": {"name": "late"}, "spec": {"order": 5000, "defaultAction": "Pass"}}),
         Tier.model_validate({"metadata": {"name": "loose"}, "spec": {}})]
NETSETS = [GlobalNetworkSet.model_validate({"metadata": {"name": "g0", "labels": {"kind": "gset"}},
                                            "spec": {"nets": ["10.0.1.0/24", "8.8.0.0/16"]}})]


def canonical(table: NftTable) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True) for c in table.to_json())


def commands(cmds: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True) for c in cmds)


def pod(rng: random.Random, name: str, ip: str, namespace: str | None = None) -> Pod:
    labels = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 2))}
    ports = [{"name": "web", "containerPort": 80, "protocol": "TCP"}] if rng.random() < 0.3 else []
    node = rng.randrange(2)
    return Pod.model_validate({
        "metadata": {"name": name, "namespace": namespace or rng.choice(NAMESPACES).metadata.name,
                     "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": ports}], "nodeName": f"node{node}",
                 "serviceAccountName": rng.choice(["default", "robot"])},
        "status": {"podIP": ip, "hostIP": f"192.168.0.{node + 1}"}})


def policy_pool(named_ports: bool) -> list[Any]:
    """Policies of every kind from the engine corpus's generator; the same name from several
    clusters is the same policy changed. Tiers outside ``TIERS`` stay in (the planner declines);
    without ``named_ports`` the policies with a named port are left out."""
    pool = [p for seed in range(60) for p in tiered_cluster(seed)["policies"]]  # namespaces n0..n2 too
    if not named_ports:
        pool = [p for p in pool if "'web'" not in repr(p.model_dump()) and '"web"' not in json.dumps(p.model_dump())]
    return pool


def state_of(pods: dict[str, Pod], policies: dict[str, Any]) -> ClusterState:
    return ClusterState.build(NAMESPACES, pods.values(), policies.values(), tiers=TIERS, network_sets=NETSETS,
                              nodes=NODES)


def full(state: ClusterState) -> tuple[NftTable, TieredLiveTable | None]:
    if not state.tiered:
        return render_indexed(state, NODE, node_ips=NODE_IPS)[0], None
    table, index, layout = render_tiered_layout(state, NODE, node_ips=NODE_IPS)
    return table, TieredLiveTable(table, index, layout)


def run(seed: int, steps: int, named_ports: bool) -> dict[str, int]:
    rng = random.Random(seed)
    pool = policy_pool(named_ports)
    free = [f"10.0.{i // 200}.{2 + i % 200}" for i in range(400)]
    rng.shuffle(free)
    pods = {f"p{i}": pod(rng, f"p{i}", free.pop()) for i in range(16)}
    policies: dict[str, Any] = {}
    while sum(1 for p in policies.values() if p.kind != "NetworkPolicy") < 6:
        p = rng.choice(pool)
        policies[ref_of(p)] = p
    state = state_of(pods, policies)
    table, live = full(state)
    seen = {"policy": 0, "pod": 0, "declined": 0, "elements": 0, "chains": 0}
    for step in range(steps):
        kind = "policy" if rng.random() < 0.45 else "pod"
        change: list[Any] = []
        # one change, or a few of one kind in one pass (the loop batches what the watch brought)
        for n in range(1 if rng.random() < 0.75 else rng.randint(2, 4)):
            if kind == "policy":
                p = rng.choice(pool)
                ref = ref_of(p)
                was = policies.get(ref)
                if ref in policies and rng.random() < 0.3:
                    del policies[ref]
                else:
                    policies[ref] = p
                change.append((compile_any(was) if was is not None else None,
                               compile_any(policies[ref]) if ref in policies else None))
                continue
            name = rng.choice(sorted(pods))
            was_pod = pods.get(name)
            roll = rng.random()
            if roll < 0.15:
                del pods[name]
            elif roll < 0.3:
                name, was_pod = f"q{step}.{n}", None
                pods[name] = pod(rng, name, free.pop())
            else:
                fresh = pod(rng, name, pods[name].status.pod_ip if roll < 0.8 else free.pop(), pods[name].metadata.namespace)
                if roll < 0.55:  # only the labels: same namespace, node and address
                    fresh = pods[name].model_copy(update={"metadata": pods[name].metadata.model_copy(
                        update={"labels": fresh.metadata.labels})})
                pods[name] = fresh
            change.append((endpoint_for_pod(was_pod) if was_pod is not None else None,
                           endpoint_for_pod(pods[name]) if name in pods else None))
        state = state_of(pods, policies)
        expected = render_indexed(state, NODE, node_ips=NODE_IPS)[0]
        update = None
        if live is not None:
            update = live.plan_policies(change) if kind == "policy" else live.plan_pods(change)
        if update is None:
            seen["declined"] += 1
            table, live = full(state)
            assert canonical(table) == canonical(expected)
            continue
        assert live is not None
        before = live.snapshot()
        assert commands(update.commands) == commands(plan_sync(expected, before).commands), (step, kind, change)
        live.commit(update)
        assert canonical(live.snapshot()) == canonical(expected), (step, kind, change)
        seen[kind] += 1
        seen["elements"] += update.plan.elements_added + update.plan.elements_removed
        seen["chains"] += update.plan.chains_added + update.plan.chains_rewritten + update.plan.chains_removed
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_plans_on_a_tiered_table_equal_a_full_render(seed: int) -> None:
    seen = run(seed, 90, named_ports=False)
    # the sequence exercised both planners, with chain and element changes, and some fallbacks
    assert seen["policy"] >= 20 and seen["pod"] >= 30, seen
    assert seen["elements"] > 0 and seen["chains"] > 0, seen


def test_named_ports_are_planned_too() -> None:
    """Named ports resolve per destination (``tnport-`` sets): a pod's address in them follows
    the pod, and a changed policy's sets are resolved again under the same names."""
    seen = run(7, 60, named_ports=True)
    assert seen["policy"] >= 10 and seen["pod"] >= 15, seen


def test_a_port_change_rewrites_one_policy_chain_and_nothing_else() -> None:
    rng = random.Random(5)
    pods = {f"p{i}": pod(rng, f"p{i}", f"10.0.0.{i + 2}") for i in range(12)}
    spec = {"tier": "early", "order": 10, "selector": "all()", "types": ["Ingress"],
            "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}]}
    a = GlobalNetworkPolicy.model_validate({"metadata": {"name": "web"}, "spec": spec})
    b = GlobalNetworkPolicy.model_validate({"metadata": {"name": "web"}, "spec": {
        **spec, "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [81]}}]}})
    table, live = full(state_of(pods, {"gnp:web": a}))
    assert live is not None
    update = live.plan_policies([(compile_any(a), compile_any(b))])
    assert update is not None
    assert update.plan.touched_chains == [tiered_policy_chain_name("gnp:web", "ingress")]
    assert update.plan.chains_rewritten == 1 and update.plan.chains_added == update.plan.chains_removed == 0
    assert update.plan.elements_added == update.plan.elements_removed == update.plan.map_changes == 0
    live.commit(update)
    assert canonical(live.snapshot()) == canonical(render_indexed(state_of(pods, {"gnp:web": b}), NODE,
                                                                  node_ips=NODE_IPS)[0])


def _gnp(name: str, tier: str, port: int) -> Any:
    return GlobalNetworkPolicy.model_validate({"metadata": {"name": name}, "spec": {
        "tier": tier, "selector": "all()", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [port]}}]}})


def test_changes_it_cannot_decide_are_declined() -> None:
    """Each of these would give a table the planner does not model: it declines (the loop then
    renders in full), and a decline changes nothing in the live table."""
    rng = random.Random(9)
    pods = {f"p{i}": pod(rng, f"p{i}", f"10.0.0.{i + 2}") for i in range(8)}
    web = _gnp("web", "early", 80)
    table, live = full(state_of(pods, {"gnp:web": web}))
    assert live is not None
    before = canonical(live.snapshot())
    ir = compile_any(web)
    # the last tiered policy goes: the table goes back to the Kubernetes-only layout
    assert live.plan_policies([(ir, None)]) is None
    # a tier no Tier object defines and no policy named at the last full pass
    assert live.plan_policies([(None, compile_any(_gnp("odd", "nowhere", 81)))]) is None
    # a pod on the address of another pod
    twin = endpoint_for_pod(pod(rng, "twin", pods["p1"].status.pod_ip or ""))
    assert live.plan_pods([(None, twin)]) is None
    # a pod whose hostIP no node has: a node address would appear
    stray = pod(rng, "stray", "10.0.0.99")
    stray = stray.model_copy(update={"status": stray.status.model_copy(update={"host_ip": "192.168.0.77"})})
    assert live.plan_pods([(None, endpoint_for_pod(stray))]) is None
    assert canonical(live.snapshot()) == before == canonical(table)
