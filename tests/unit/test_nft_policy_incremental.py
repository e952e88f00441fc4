"""Policy updates without rendering (``dataplane/nft/live.py``): over random
sequences of policy creates, updates and deletes, mixed with pod changes through the pod fast
path, the live table equals a full render after every step, and the commands turn the old
table into the new one."""
from __future__ import annotations

import json
import random
from typing import Any

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.dispatch import FROM_MAP, TO_MAP, dispatch_entries
from podnet.dataplane.nft.live import LiveTable
from podnet.dataplane.nft.model import NftTable
from podnet.dataplane.nft.recheck import pods_to_recheck_after
from podnet.dataplane.nft.render import render_indexed
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ClusterState, Endpoint, endpoint_for_pod
from podnet.policy.ir import PolicyIR, compile_policy

NODE_IPS = ["10.99.0.1"]
NAMESPACES = [Namespace.model_validate({"metadata": {"name": n, "labels": {"team": n}}}) for n in ("x", "y")]
APPS = ["a", "b", "c"]


def _canonical(table: NftTable) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True) for c in table.to_json())


def _peers(pod_sets: Any) -> dict[str, Any]:
    """What a pod set's peer selects (not which policy's rule defined it first)."""
    return {name: (p.namespace if p.namespace_selector is None else None,
                   p.namespace_selector and p.namespace_selector.to_dict(), p.pod_selector.to_dict())
            for name, p in pod_sets.items()}


def _pod(ns: str, name: str, ip: str, node: str, app: str) -> Endpoint:
    return endpoint_for_pod(Pod.model_validate({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "10.99.0.1" if node == "n1" else "10.99.0.2"}}))


def _peer(rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.5:
        return {"podSelector": {"matchLabels": {"app": rng.choice(APPS)}}}
    if kind < 0.7:
        return {"namespaceSelector": {"matchLabels": {"team": rng.choice(["x", "y"])}},
                "podSelector": {"matchLabels": {"app": rng.choice(APPS)}}}
    if kind < 0.85:
        return {"namespaceSelector": {}}
    return {"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{rng.randint(1, 3)}.0.0/16"]}}


def _policy(rng: random.Random, ns: str, name: str) -> PolicyIR:
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": rng.choice(APPS)}} if rng.random() < 0.8 else {},
                            "policyTypes": types}
    for direction, key in (("Ingress", "from"), ("Egress", "to")):
        if direction not in types:
            continue
        rules = []
        for _ in range(rng.choice([0, 1, 1, 2])):
            rule: dict[str, Any] = {}
            if rng.random() < 0.8:
                rule[key] = [_peer(rng) for _ in range(rng.randint(1, 2))]
            if rng.random() < 0.6:
                rule["ports"] = [{"protocol": rng.choice(["TCP", "UDP"]), "port": rng.choice([80, 81, 443])}]
            rules.append(rule)
        spec[direction.lower()] = rules
    return compile_policy(NetworkPolicy.model_validate({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec}))


def _same_recheck(live: LiveTable, commands: list[dict[str, Any]], where: str) -> None:
    """The live table's dispatch index is its dispatch entries indexed, and the flow recheck
    names the same pods with it as by visiting every entry."""
    entries = {w: dict(live.entries(w)) for w in (FROM_MAP, TO_MAP)}
    assert entries == {w: dispatch_entries(live.table, w) for w in (FROM_MAP, TO_MAP)}, where
    members = {w: {v: {k for k, x in entries[w].items() if x == v} for v in set(entries[w].values())}
               for w in entries}
    assert live.dispatch.members == members, where
    plain = pods_to_recheck_after(commands, live.chains, entries[FROM_MAP], entries[TO_MAP])
    assert pods_to_recheck_after(commands, live.chains, entries[FROM_MAP], entries[TO_MAP], live.dispatch) == plain, where


def test_policy_updates_without_rendering_equal_a_full_render() -> None:
    rng = random.Random(17)
    ips = iter(range(10, 250))
    pods: dict[str, Endpoint] = {}
    for i in range(14):
        ns, node = rng.choice(["x", "y"]), rng.choice(["n1", "n1", "n2"])
        ep = _pod(ns, f"p{i}", f"10.244.{1 if node == 'n1' else 2}.{next(ips)}", node, rng.choice(APPS))
        pods[ep.key] = ep
    pols: dict[str, PolicyIR] = {}
    for i in range(4):
        p = _policy(rng, rng.choice(["x", "y"]), f"np{i}")
        pols[p.ref] = p

    def state() -> ClusterState:
        return ClusterState.from_parts(NAMESPACES, list(pods.values()), list(pols.values()))

    st = state()
    table, index = render_indexed(st, "n1", node_ips=NODE_IPS)
    live = LiveTable(table, index, st)
    incremental = pod_steps = 0
    for step in range(150):
        if rng.random() < 0.25:  # a pod change through the pod fast path
            key = rng.choice(sorted(pods))
            old = pods[key]
            new = _pod(old.namespace or "", old.name or "", old.ip or "", old.node or "", rng.choice(APPS))
            pods[key] = new
            st = state()
            upd = live.plan_pods([(old, new)], st.policies_by_ns, st)
            if upd is not None:
                live.commit(upd)
                pod_steps += 1
                _same_recheck(live, upd.commands, f"step {step}")
            else:
                table, index = render_indexed(st, "n1", node_ips=NODE_IPS)
                live = LiveTable(table, index, st)
            full, _ = render_indexed(st, "n1", node_ips=NODE_IPS)
            assert _canonical(live.table) == _canonical(full), f"step {step}: pod change"
            continue
        changes = []
        for _ in range(rng.choice([1, 1, 1, 2])):
            roll = rng.random()
            if roll < 0.3 or len(pols) < 2:
                ns = rng.choice(["x", "y"])
                new = _policy(rng, ns, f"np{step}-{len(changes)}")
                changes.append((None, new))
                pols[new.ref] = new
            elif roll < 0.8:
                ref = rng.choice(sorted(pols))
                ns, name = ref.split("/")
                new = _policy(rng, ns, name)
                changes.append((pols[ref], new))
                pols[ref] = new
            else:
                ref = rng.choice(sorted(pols))
                changes.append((pols.pop(ref), None))
        st = state()
        full, full_index = render_indexed(st, "n1", node_ips=NODE_IPS)
        before = live.table  # a value: the commit below does not change it
        upd = live.plan_policies(changes, st)
        assert upd is not None, f"step {step}: declined"
        incremental += 1
        live.commit(upd)
        assert _canonical(live.table) == _canonical(full), f"step {step}: {[(a and a.ref, b and b.ref) for a, b in changes]}"
        _same_recheck(live, upd.commands, f"step {step}")
        assert _peers(live.pod_sets) == _peers(full_index.pod_sets), f"step {step}: pod sets"
        assert live.book is not None and live.book.signatures == dict(full_index.signatures), f"step {step}"
        # The commands turn the old table into the new one: the plan against the new one is empty
        # exactly when it is applied (plan_sync on the full tables gives the same chains).
        whole = plan_sync(full, before)
        assert set(upd.plan.touched_chains) == set(whole.touched_chains), f"step {step}"
        assert (upd.plan.sets_added, upd.plan.sets_removed, upd.plan.chains_removed) == \
            (whole.sets_added, whole.sets_removed, whole.chains_removed), f"step {step}"
    assert incremental >= 100 and pod_steps >= 10


def test_a_port_change_is_an_element_change() -> None:
    rng = random.Random(2)
    pods = [_pod("x", f"p{i}", f"10.244.1.{10 + i}", "n1", APPS[i % 3]) for i in range(9)]
    pol = compile_policy(NetworkPolicy.model_validate({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web", "namespace": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": "a"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 80}]}]}}))
    st = ClusterState.from_parts(NAMESPACES, pods, [pol])
    table, index = render_indexed(st, "n1", node_ips=NODE_IPS)
    live = LiveTable(table, index, st)
    data = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"app": "a"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 8080}]}]}}
    new = compile_policy(NetworkPolicy.model_validate(data))
    upd = live.plan_policies([(pol, new)], st)
    assert upd is not None and rng is not None
    # the rule reads its own port set: the edit is that set's elements, no rule changes
    assert upd.plan.touched_chains == [] and upd.plan.chains_rewritten == 0
    assert not upd.maps["from-pod"] and not upd.maps["to-pod"] and not upd.sets_added and not upd.sets_removed
    (name, (gone, fresh)), = upd.elements.items()
    assert name.startswith("ports-") and gone == {("tcp", (80, 80))} and fresh == {("tcp", (8080, 8080))}
    assert [(next(iter(c)), next(iter(next(iter(c.values()))))) for c in upd.commands] == \
        [("delete", "element"), ("add", "element")], upd.commands
    live.commit(upd)
    assert _canonical(live.table) == _canonical(render_indexed(ClusterState.from_parts(NAMESPACES, pods, [new]), "n1",
                                                               node_ips=NODE_IPS)[0])
