"""The semantic diff: its pairs are exactly the cells whose verdict changed, each group is
explained by the walks of its pairs, and a change larger than the explanation budget is still
counted in full."""
from __future__ import annotations

import pytest

from podnet.policy.cluster import ClusterState
from podnet.policy.diff import UNEXPLAINED, _changed_rows, semantic_diff
from podnet.policy.matrix import compute_matrix
from podnet.policy.walk import allowed

from test_policy_naive import tiered_cluster

PORTS = [80, 81]


def _states(seed: int) -> tuple[ClusterState, ClusterState]:
    """Two clusters with the same pods: policies of two seeds' generators over one cluster."""
    a, b = tiered_cluster(seed), tiered_cluster(seed + 1000)
    old = ClusterState.build(a["namespaces"], a["pods"], a["policies"], tiers=a["tiers"], network_sets=a["netsets"],
                             nodes=a["nodes"])
    new = ClusterState.build(a["namespaces"], a["pods"], b["policies"], tiers=b["tiers"], network_sets=b["netsets"],
                             nodes=a["nodes"])
    return old, new


@pytest.mark.parametrize("seed", range(25))
def test_diff_pairs_are_exactly_the_changed_cells(seed: int) -> None:
    old, new = _states(seed)
    result = semantic_diff(old, new, PORTS, ["TCP", "ICMP"])
    listed = {(g.change, g.key, s, d) for g in result.groups for p in g.products for s, d in p.pairs()}
    want = set()
    for key, port, proto in [("80/TCP", 80, "TCP"), ("81/TCP", 81, "TCP"), ("ICMP", None, "ICMP")]:
        for src in old.pods:
            for dst in old.pods:
                was = allowed(old, src, dst, port, proto)
                now = allowed(new, new.by_key[src.key], new.by_key[dst.key], port, proto)
                if was != now:
                    want.add(("opened" if now else "closed", key, src.key, dst.key))
    assert listed == want
    assert result.opened + result.closed == len(want) and result.changed == bool(want)
    for g in result.groups:  # every group's reason is the walk of its pairs: denied after iff closed
        assert g.after.startswith("denied" if g.change == "closed" else "allowed")
        assert g.before.startswith("allowed" if g.change == "closed" else "denied")


def test_a_change_beyond_the_budget_is_counted_but_grouped_by_namespaces() -> None:
    seed = next(s for s in range(100) if semantic_diff(*_states(s), PORTS, ["TCP"]).changed)
    old, new = _states(seed)
    full = semantic_diff(old, new, PORTS, ["TCP"])
    none = semantic_diff(old, new, PORTS, ["TCP"], budget=0)
    assert (none.opened, none.closed) == (full.opened, full.closed)
    assert all(g.before == UNEXPLAINED and " → " in g.after and g.policies == () for g in none.groups)
    assert {pair for g in none.groups for p in g.products for pair in p.pairs()} == {
        pair for g in full.groups for p in g.products for pair in p.pairs()}


@pytest.mark.parametrize("seed", range(25))
def test_changed_rows_from_classes_equal_the_pod_rows(seed: int) -> None:
    """The class-level walk of the changes (each (before, after) class pair expanded once) yields
    exactly what comparing every pod's expanded rows yields, hostNetwork pods' extras included."""
    old, new = _states(seed)
    common = sorted(e.key for e in old.pods)
    before = compute_matrix(old, PORTS, ["TCP", "ICMP"], [old.by_key[k] for k in common])
    after = compute_matrix(new, PORTS, ["TCP", "ICMP"], [new.by_key[k] for k in common])
    assert before.by_class is not None and after.by_class is not None
    for key in before.keys:
        for change in ("closed", "opened"):
            want = []
            for i, (was, now) in enumerate(zip(before.rows[key], after.rows[key])):
                bits = was & ~now if change == "closed" else now & ~was
                if bits:
                    want.append((i, bits))
            assert list(_changed_rows(before, after, key, change)) == want
