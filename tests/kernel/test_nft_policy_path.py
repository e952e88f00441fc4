"""Policy changes through the policy loop's fast path on the real kernel: random creates,
updates and deletes (and some pod relabels) written to a store, each pass planned on the live
table; after every pass the kernel's table (read back) equals a full render of the store, and most passes commit as one raw
netlink batch."""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler, cluster_state
from podnet.agent.policy_view import LiveView
from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.render import render
from podnet.kernel import netns
from podnet.kernel.nft.apply import NftApplier
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.store.open import open_store

pytestmark = pytest.mark.kernel

APPS = ["a", "b", "c"]


@pytest.fixture()
def setup(tmp_path: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    name = f"{prefix}nft"
    netns.create(name)
    store = open_store(str(tmp_path / "state"))
    try:
        yield name, store
    finally:
        store.close()
        netns.remove(name)


def _policy(rng: random.Random, ns: str, name: str) -> NetworkPolicy:
    types = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": rng.choice(APPS)}} if rng.random() < 0.8 else {},
                            "policyTypes": types}
    for direction, key in (("Ingress", "from"), ("Egress", "to")):
        if direction in types:
            peers = [rng.choice([{"podSelector": {"matchLabels": {"app": rng.choice(APPS)}}},
                                 {"namespaceSelector": {"matchLabels": {"team": rng.choice(["x", "y"])}}},
                                 {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.7.0/24"]}}])]
            ports = [{"protocol": rng.choice(["TCP", "UDP"]), "port": rng.choice([80, 81])},
                     {"protocol": "TCP", "port": 8000, "endPort": 8000 + rng.randint(1, 99)}]
            spec[direction.lower()] = [{key: peers, "ports": ports[:rng.randint(1, 2)]}]
    return NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                         "metadata": {"name": name, "namespace": ns}, "spec": spec})


def test_policy_changes_take_the_fast_path_and_match_a_full_render(setup: tuple[str, Any]) -> None:
    ns_name, store = setup
    rng = random.Random(23)
    for ns in ("x", "y"):
        store.create(Namespace.model_validate({"metadata": {"name": ns, "labels": {"team": ns}}}))
    for i in range(12):
        node = "n1" if i % 3 else "n2"
        pod = Pod.model_validate({"metadata": {"name": f"p{i}", "namespace": "xy"[i % 2], "labels": {"app": APPS[i % 3]}},
                                  "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}})
        created = store.create(pod)
        store.update_status(Pod.model_validate({**created.to_dict(), "status": {
            "phase": "Running", "podIP": f"10.244.{1 if node == 'n1' else 2}.{10 + i}",
            "hostIP": "10.99.0.1" if node == "n1" else "10.99.0.2"}}))
    for i in range(3):
        store.create(_policy(rng, "xy"[i % 2], f"np{i}"))
    rec = PolicyReconciler("n1", netns=ns_name, readback_every=1e9)
    view = LiveView(store)
    rec.reconcile_view(view)
    fast = by_netlink = 0
    for step in range(40):
        names = sorted((p.metadata.namespace, p.metadata.name) for p in store.list(NetworkPolicy))
        roll = rng.random()
        if roll < 0.1:
            data = rng.choice(store.list(Pod)).to_dict()
            data["metadata"]["labels"] = {"app": rng.choice(APPS)}
            store.update(Pod.model_validate(data), check_version=False)
        elif roll < 0.4 or len(names) < 2:
            ns = rng.choice(["x", "y"])
            store.create(_policy(rng, ns, f"new{step}"))
        elif roll < 0.85:
            ns, name = rng.choice(names)
            store.update(_policy(rng, ns, name), check_version=False)
        else:
            ns, name = rng.choice(names)
            store.delete(NetworkPolicy, name, ns)
        st = rec.reconcile_view(view)
        assert st.revision == store.revision() and not st.error
        if roll >= 0.1:
            assert st.plan.get("incremental"), f"step {step}: {st.plan}"
            fast += 1
            by_netlink += st.plan.get("path") == "netlink"
        kernel = NftApplier(ns_name).read()
        assert kernel is not None
        full = render(cluster_state(store.snapshot()), "n1")
        assert plan_sync(full, kernel).empty, f"step {step}: the kernel differs from a full render"
        assert rec.applier.model_matches_kernel(), f"step {step}: the model differs from the kernel"
    assert fast >= 30
    assert by_netlink >= 10  # chain rewrites as raw netlink batches (new ipBlock sets go through libnftables)
