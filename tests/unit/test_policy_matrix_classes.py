"""The per-class matrix (``ClassRows``) and its expansion to pods: every way of reading a pod's
row (text, int, one cell, a whole key, a count, the printed forms) equals the definition
"pod i reaches pod j when i's class reaches j's class, or j is i, or j is one of i's extras"."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.policy import class_rows
from podnet.policy.class_rows import ClassRows
from podnet.policy.cluster import ClusterState
from podnet.policy.matrix import Matrix, compute_matrix, reference_matrix

from test_policy_support import netpol, ns, pod, random_cluster


@st.composite
def class_matrices(draw: st.DrawFn) -> ClassRows:
    count = draw(st.integers(1, 6))
    n = draw(st.integers(0, 9))
    class_of = tuple(draw(st.lists(st.integers(0, count - 1), min_size=n, max_size=n)))
    keys = draw(st.lists(st.sampled_from(["80/TCP", "53/UDP", "ICMP"]), min_size=1, max_size=3, unique=True))
    rows = {key: tuple(draw(st.integers(0, (1 << count) - 1)) for _ in range(count)) for key in keys}
    extra: dict[int, frozenset[int]] = {}
    for i in range(n):
        others = draw(st.frozensets(st.integers(0, n - 1), max_size=3)) - {i}
        if others:
            extra[i] = others
    return ClassRows(class_of, count, rows, extra)


def by_definition(m: ClassRows, key: str) -> list[list[bool]]:
    n = len(m.class_of)
    return [[bool((m.rows[key][m.class_of[i]] >> m.class_of[j]) & 1) or i == j or j in m.extra.get(i, ())
             for j in range(n)] for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(m=class_matrices())
def test_every_reading_of_a_pod_row_is_the_definition(m):
    n = len(m.class_of)
    for key in m.keys:
        want = by_definition(m, key)
        ints = [sum(1 << j for j in range(n) if want[i][j]) for i in range(n)]
        assert [m.bits(key, i) for i in range(n)] == ["".join("1" if c else "0" for c in row) for row in want]
        assert [m.row(key, i) for i in range(n)] == ints
        assert [[m.allowed(key, i, j) for j in range(n)] for i in range(n)] == want
        assert m.pod_rows(key) == tuple(ints) == tuple(m.iter_rows(key))
        assert m.count_allowed(key) == sum(map(sum, want))


@settings(max_examples=150, deadline=None)
@given(m=class_matrices())
def test_printed_forms_equal_those_of_the_same_matrix_held_per_pod(m):
    """What the CLI prints from the per-class matrix is the text of the same matrix held as
    pod rows (the form ``reference_matrix`` and probes build)."""
    pods = tuple(f"ns/p{i}" for i in range(len(m.class_of)))
    per_class = Matrix.from_classes(pods, (80, 53), ("TCP", "UDP"), m)
    per_pod = Matrix(pods, (80, 53), ("TCP", "UDP"), {key: m.pod_rows(key) for key in m.keys})
    assert per_class.rows == per_pod.rows
    assert "".join(per_class.iter_json()) == "".join(per_pod.iter_json()) == json.dumps(per_pod.to_json())
    assert per_class.render_csv() == per_pod.render_csv()
    for key in m.keys:
        assert per_class.render_table(key) == per_pod.render_table(key)
        assert per_class.table(key) == per_pod.table(key)
        assert per_class.count_allowed(key) == per_pod.count_allowed(key)


def test_expanded_text_cache_is_bounded_and_stays_correct(monkeypatch):
    monkeypatch.setattr(class_rows, "TEXT_CACHE_CHARS", 8)  # room for one 5-pod row
    m = ClassRows((0, 1, 2, 1, 0), 3, {"80/TCP": (0b011, 0b110, 0b100)}, {})
    want = by_definition(m, "80/TCP")
    for _ in range(2):
        for i in range(5):
            assert m.bits("80/TCP", i) == "".join("1" if c else "0" for c in want[i])
    assert len(m._expanded) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_pods=st.integers(0, 12), n_pol=st.integers(0, 6))
def test_computed_class_matrix_reads_as_the_reference(seed, n_pods, n_pol):
    state = ClusterState.build(*random_cluster(seed, 3, n_pods, n_pol))
    fast = compute_matrix(state, [80, 8080], ["TCP", "UDP"])
    ref = reference_matrix(state, [80, 8080], ["TCP", "UDP"])
    n = len(ref.pods)
    for key in ref.keys:
        assert fast.count_allowed(key) == sum(row.bit_count() for row in ref.rows[key])
        assert [fast.row(key, i) for i in range(n)] == list(ref.rows[key])
        assert all(fast.allowed(key, i, j) == ref.allowed(key, i, j) for i in range(n) for j in range(n))


def test_host_network_pod_reaches_its_node_pods_beyond_its_class_row():
    pods = [pod("x", "a", {"app": "a"}, "10.0.0.1", host_ip="192.168.0.1"),
            pod("x", "b", {"app": "b"}, "10.0.0.2", host_ip="192.168.0.2"),
            pod("x", "h", {}, host_network=True, host_ip="192.168.0.1")]
    deny = netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    m = compute_matrix(ClusterState.build([ns("x")], pods, [deny]), [80], ["TCP"])
    assert m.pods == ("x/a", "x/b", "x/h")
    assert m.row_bits("80/TCP", 2) == "101"  # its node's pod x/a and itself; x/b is on another node
    assert m.rows == reference_matrix(ClusterState.build([ns("x")], pods, [deny]), [80], ["TCP"]).rows


def test_pods_differing_only_in_a_port_name_no_rule_uses_share_a_class():
    ports = [[{"name": "http", "containerPort": 8080}], [{"name": "web", "containerPort": 8080}],
             [{"name": "http", "containerPort": 9090}], []]
    pods = [pod("x", f"p{i}", {"app": "a"}, f"10.0.0.{i + 1}", ports=p) for i, p in enumerate(ports)]
    named = netpol("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})
    state = ClusterState.build([ns("x")], pods, [named])
    m = compute_matrix(state, [8080, 9090], ["TCP"])
    # "web" is referred to by no rule: p1 and p3 (no named port) fall together; "http" at 8080
    # and at 9090 stay apart
    assert m.classes == 3 and m.class_of[1] == m.class_of[3]
    assert m.rows == reference_matrix(state, [8080, 9090], ["TCP"]).rows


def test_empty_and_single_pod_matrices():
    empty = compute_matrix(ClusterState.build([ns("x")], [], []), [80], ["TCP"])
    assert empty.rows == {"80/TCP": ()} and "".join(empty.iter_json()) == json.dumps(empty.to_json())
    one = compute_matrix(ClusterState.build([ns("x")], [pod("x", "a", {}, "10.0.0.1")], []), [80], ["TCP"])
    assert one.row_bits("80/TCP", 0) == "1" and one.rows["80/TCP"] == (1,) and one.count_allowed("80/TCP") == 1
