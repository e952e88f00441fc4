"""The class-based matrix equals the pair-by-pair reference, on random clusters, in any order."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.model import Namespace, Pod
from podnet.policy.cluster import ClusterState
from podnet.policy.matrix import compute_matrix, reference_matrix

from test_policy_support import netpol, ns, pod, random_cluster

PORTS = [80, 81, 443, 8080]
PROTOCOLS = ["TCP", "UDP", "SCTP", "ICMP"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_ns=st.integers(1, 4), n_pods=st.integers(0, 12), n_pol=st.integers(0, 7),
       ipblock_pods=st.booleans())
def test_fast_matrix_equals_reference(seed, n_ns, n_pods, n_pol, ipblock_pods):
    namespaces, pods, policies = random_cluster(seed, n_ns, n_pods, n_pol)
    state = ClusterState.build(namespaces, pods, policies, ipblock_matches_pods=ipblock_pods)
    fast = compute_matrix(state, PORTS, PROTOCOLS)
    ref = reference_matrix(state, PORTS, PROTOCOLS)
    assert fast.pods == ref.pods
    assert fast.rows == ref.rows


def test_random_clusters_exercise_both_outcomes():
    seen = set()
    for seed in range(40):
        state = ClusterState.build(*random_cluster(seed, 3, 8, 4))
        m = compute_matrix(state, [80], ["TCP"])
        seen.update(cell for row in m.table("80/TCP") for cell in row)
    assert seen == {True, False}


def _relabelled(obj, rng):
    """The same object with its labels dict in another insertion order (as if labels arrived in another order)."""
    labels = list(obj.metadata.labels.items())
    rng.shuffle(labels)
    return obj.with_meta(labels=dict(labels))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), order=st.integers(0, 2**32 - 1))
def test_result_depends_only_on_state_not_arrival_order(seed, order):
    namespaces, pods, policies = random_cluster(seed, 3, 9, 5)
    want = compute_matrix(ClusterState.build(namespaces, pods, policies), PORTS, ["TCP", "UDP"]).to_json()
    rng = random.Random(order)
    namespaces = [_relabelled(n, rng) for n in namespaces]
    pods = [_relabelled(p, rng) for p in pods]
    for seq in (namespaces, pods, policies):
        rng.shuffle(seq)
    got = compute_matrix(ClusterState.build(namespaces, pods, policies), PORTS, ["TCP", "UDP"]).to_json()
    assert got == want


def test_json_contract_shape():
    pods = [pod("x", "b", {"pod": "b"}, "10.0.0.2"), pod("x", "a", {"pod": "a"}, "10.0.0.1"), pod("y", "a", {"pod": "a"}, "10.0.1.1")]
    pol = netpol("x", "only-a", {"podSelector": {"matchLabels": {"pod": "a"}},
                                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                                              "ports": [{"port": 80}]}]})
    state = ClusterState.build([ns("x"), ns("y")], pods, [pol])
    data = compute_matrix(state, [80, 81], ["TCP", "UDP"]).to_json()
    assert data["pods"] == ["x/a", "x/b", "y/a"]
    assert data["ports"] == [80, 81] and data["protocols"] == ["TCP", "UDP"]
    assert set(data["allowed"]) == {"80/TCP", "81/TCP", "80/UDP", "81/UDP"}
    t = data["allowed"]["80/TCP"]
    assert t == [[True, True, True], [True, True, True], [False, True, True]]  # y/a → x/a denied; x/b → x/a allowed
    assert data["allowed"]["81/TCP"][1][0] is False


def test_table_and_csv_rendering():
    state = ClusterState.build([ns("x")], [pod("x", "a", {}, "10.0.0.1"), pod("x", "b", {}, "10.0.0.2")],
                               [netpol("x", "deny", {"podSelector": {"matchLabels": {}}, "policyTypes": ["Ingress"]})])
    m = compute_matrix(state, [80], ["TCP"])
    table = m.render_table("80/TCP").splitlines()
    assert table[0].split() == ["80/TCP", "x/a", "x/b"]
    assert table[1].split() == ["x/a", ".", "X"] and table[2].split() == ["x/b", "X", "."]
    assert "80/TCP,x/a,x/b,false" in m.render_csv()


def test_subset_of_namespaces_keeps_whole_cluster_semantics():
    pods = [pod("x", "a", {"app": "a"}, "10.0.0.1"), pod("y", "b", {}, "10.0.1.1")]
    pol = netpol("x", "p", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"t": "1"}}}]}]})
    state = ClusterState.build([ns("x"), ns("y", t="1")], pods, [pol])
    only_x = [ep for ep in state.pods if ep.namespace == "x"]
    assert compute_matrix(state, [80], ["TCP"], only_x).to_json()["pods"] == ["x/a"]
    full = compute_matrix(state, [80], ["TCP"])
    assert full.allowed("80/TCP", 1, 0)  # y/b → x/a
    assert Namespace and Pod  # model types used by the generator


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_ns=st.integers(1, 3), n_pods=st.integers(0, 10), n_pol=st.integers(0, 5))
def test_streamed_json_is_the_same_text_as_the_document(seed, n_ns, n_pods, n_pol):
    import json

    state = ClusterState.build(*random_cluster(seed, n_ns, n_pods, n_pol))
    m = compute_matrix(state, [80, 443], ["TCP", "UDP"])
    text = "".join(m.iter_json())
    assert text == json.dumps(m.to_json())
    assert json.loads(text)["allowed"] == {key: m.table(key) for key in m.keys}
