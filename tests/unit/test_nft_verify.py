"""``podnet verify``'s comparison: each disagreeing cell is reported with the engine's reason;
cells the kernel could not probe (no SCTP sockets) are skipped, not counted as mismatches."""
from __future__ import annotations

from podnet.dataplane.nft.verify import compare
from podnet.policy.cluster import ClusterState
from podnet.policy.matrix import Matrix, compute_matrix

from test_nft_render import (  # rootdir-relative (pytest puts tests/unit on sys.path)
    NAMESPACES,
    PODS,
    SCENARIOS,
    policies,
)


def _flip(m: Matrix, key: str, i: int, j: int) -> Matrix:
    rows = dict(m.rows)
    row = list(rows[key])
    row[i] ^= 1 << j
    rows[key] = tuple(row)
    return Matrix(m.pods, m.ports, m.protocols, rows)


def test_agreeing_matrices_report_ok() -> None:
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s1"]))
    m = compute_matrix(state, [80], ["TCP", "ICMP"])
    report = compare(state, m, m, {})
    assert report.ok and report.agreed == report.cells == len(m.pods) ** 2 * 2


def test_a_flipped_cell_is_explained() -> None:
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s1"]))
    m = compute_matrix(state, [80], ["TCP"])
    i, j = m.pods.index("default/client2"), m.pods.index("default/web")
    observed = _flip(m, "80/TCP", i, j)  # the kernel let client2 in
    report = compare(state, m, observed, {("default/client2", "default/web", "80/TCP"): "connected"})
    assert not report.ok and len(report.disagreements) == 1
    d = report.disagreements[0]
    assert (d.src, d.dst, d.traffic, d.expected, d.observed) == ("default/client2", "default/web", "80/TCP", False,
                                                                   "connected")
    assert "DENIED by ingress" in d.explanation and "test-network-policy" in d.explanation
    assert report.to_dict()["disagreements"][0]["expected"] == "denied"


def test_unprobeable_cells_are_skipped() -> None:
    state = ClusterState.build(NAMESPACES, PODS, [])
    m = compute_matrix(state, [80], ["SCTP"])
    empty = Matrix(m.pods, m.ports, m.protocols, {k: tuple(0 for _ in v) for k, v in m.rows.items()})
    outcomes = {(a, b, "80/SCTP"): "unsupported" for a in m.pods for b in m.pods}
    report = compare(state, m, empty, outcomes)
    assert report.ok and report.skipped == report.cells and report.agreed == 0
