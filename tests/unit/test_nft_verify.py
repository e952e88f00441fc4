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


def test_a_flipped_tiered_cell_names_the_tier_and_policy() -> None:
    """A tiered cluster: the kernel letting in what a Deny in an earlier tier drops is reported
    with the tier and the policy that decided, so ``verify`` explains tiered disagreements too."""
    from podnet.model import GlobalNetworkPolicy, Tier

    gnp = GlobalNetworkPolicy.model_validate({"metadata": {"name": "security.no-client2"}, "spec": {
        "tier": "security", "selector": "app == 'web'",
        "ingress": [{"action": "Deny", "source": {"selector": "run == 'client2'"}}, {"action": "Pass"}]}})
    tier = Tier.model_validate({"metadata": {"name": "security"}, "spec": {"order": 100}})
    state = ClusterState.build(NAMESPACES, PODS, [gnp], tiers=[tier])
    m = compute_matrix(state, [80], ["TCP"])
    i, j = m.pods.index("default/client2"), m.pods.index("default/web")
    assert not m.allowed("80/TCP", i, j) and m.allowed("80/TCP", m.pods.index("default/client1"), j)
    report = compare(state, m, _flip(m, "80/TCP", i, j), {})
    assert len(report.disagreements) == 1
    text = report.disagreements[0].explanation
    assert "security" in text and "no-client2" in text, text
