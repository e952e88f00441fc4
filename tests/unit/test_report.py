"""podnet report: the page agrees with `podnet matrix`/`explain`, and names cannot inject markup."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from podnet.cli.main import cli
from podnet.policy.cluster import ClusterState, Endpoint
from podnet.report.build import build_report
from podnet.report.facts import DeniedFlow, ReportFacts, routes_between

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["--state-dir", "/nonexistent-podnet-state", *args], obj={})
    assert result.exit_code == 0, result.output
    return result.output


def script_json(page: str, ident: str) -> object:
    m = re.search(rf'<script type="application/json" id="{ident}">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def pod_cells(page: str) -> dict[tuple[str, str, str], bool]:
    """Every pod-table cell, as the HTML (without JavaScript) shows it: (traffic, from, to) → allowed."""
    cells = re.findall(r'data-traffic="([^"]*)" data-src="([^"]*)" data-dst="([^"]*)" data-allowed="(true|false)"', page)
    return {(html.unescape(k), html.unescape(s), html.unescape(d)): a == "true" for k, s, d, a in cells}


def test_report_matches_matrix_json_and_explain(tmp_path):
    out = tmp_path / "r.html"
    run("report", "--from-files", str(EXAMPLES / "tiers"), "-o", str(out))
    page = out.read_text()
    expected = json.loads(run("matrix", "--from-files", str(EXAMPLES / "tiers"), "-o", "json"))
    assert script_json(page, "matrix-json") == expected
    cells = pod_cells(page)
    pods = expected["pods"]
    assert len(cells) == len(pods) ** 2 * len(expected["allowed"])
    assert len(expected["allowed"]) > 1 and any(not ok for t in expected["allowed"].values() for r in t for ok in r)
    for key, table in expected["allowed"].items():
        for i, src in enumerate(pods):
            for j, dst in enumerate(pods):
                assert cells[(key, src, dst)] is table[i][j]
    # a cell's explanation is what `podnet explain` prints for that pair
    explanations = script_json(page, "explanations")
    assert isinstance(explanations, list)
    src, dst, key = pods[2], pods[3], "8080/TCP"  # prod/api-0 → prod/web-0: denied on 8080
    assert expected["allowed"][key][2][3] is False
    m = re.search(rf'data-traffic="{key}" data-src="{re.escape(html.escape(src))}" data-dst="{re.escape(html.escape(dst))}" '
                  rf'data-allowed="\w+" data-e="(\d+)"', page)
    assert m is not None
    text = run("explain", "--from-files", str(EXAMPLES / "tiers"), "--from", src, "--to", f"{dst}:{key}")
    assert explanations[int(m.group(1))] == text.rstrip("\n")


def test_heat_map_counts_add_up_to_the_matrix(tmp_path):
    out = tmp_path / "r.html"
    run("report", "--from-files", str(EXAMPLES / "s1"), "-o", str(out))
    page = out.read_text()
    expected = json.loads(run("matrix", "--from-files", str(EXAMPLES / "s1"), "-o", "json"))
    heat = page.split('<table class="heat">', 1)[1].split("</table>", 1)[0]
    counts = [tuple(map(int, c)) for c in re.findall(r">(\d+)/(\d+)</td>", heat)]
    table = next(iter(expected["allowed"].values()))
    assert sum(a for a, _ in counts) == sum(map(sum, table))
    assert sum(t for _, t in counts) == len(expected["pods"]) ** 2
    assert "No flow" not in page and "made from files" in page  # offline: flows section says why empty


def test_self_contained_no_external_resources(tmp_path):
    out = tmp_path / "r.html"
    run("report", "--from-files", str(EXAMPLES / "tiers"), "-o", str(out))
    page = out.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "default-src 'none'" in page


HOSTILE = '<script>alert(1)</script>"\'&<img src=x onerror=alert(2)>'


def test_hostile_names_are_escaped(tmp_path):
    """Names, labels and file paths from objects never become markup or script."""
    a = Endpoint("10.0.0.1", HOSTILE, "a" + HOSTILE, {"app": HOSTILE}, node="n</script>1")
    b = Endpoint("10.0.0.2", "ns</script><script>alert(3)", "b", {HOSTILE: "v"})
    state = ClusterState.from_parts({}, [a, b], [])
    facts = ReportFacts(live=True, source=HOSTILE,
                        nodes=routes_between([(HOSTILE, ("192.0.2.1",), ("10.0.0.0/24",)),
                                              ("n2", ("192.0.2.2",), ("10.0.1.0/24",))]),
                        flows=(DeniedFlow("t", HOSTILE, "b", "80/TCP", "DROPPED", HOSTILE),))
    page = build_report(state, [80], ["TCP"], facts=facts)
    assert "<script>alert" not in page and "<img" not in page and "</script><script>" not in page
    assert page.count("<script") == 3  # the two JSON blocks and the page's own script
    # and the names are still there, escaped, for a reader
    assert html.escape(HOSTILE) in page
    assert script_json(page, "matrix-json") is not None


def test_hostile_file_path_in_policy_source_is_escaped(tmp_path):
    hostile_dir = tmp_path / "x<script>alert(1)<"
    shutil.copytree(EXAMPLES / "s1", hostile_dir)
    out = tmp_path / "r.html"
    run("report", "--from-files", str(hostile_dir), "-o", str(out))
    page = out.read_text()
    assert "<script>alert" not in page
    assert html.escape("x<script>alert(1)<") in page


def test_large_cluster_folds_by_namespace(tmp_path):
    eps = [Endpoint(f"10.1.{i // 200}.{i % 200}", f"ns{i % 60}", f"p{i}", {"app": f"a{i % 7}"}) for i in range(300)]
    state = ClusterState.from_parts({}, eps, [])
    page = build_report(state, [80], ["TCP"])
    assert "Grouped by namespace (largest)" in page
    assert "the other 31 namespaces" in page  # 60 namespaces, 29 shown (MAX_AXIS 30)
    assert 'class="pods-matrix"' not in page  # too many pods for the pod table
    assert script_json(page, "matrix-json") is None


def test_live_store_shows_nodes_routes_and_flows_section(tmp_path):
    from podnet.manifest import load_paths
    from podnet.model import Node
    from podnet.store.open import open_store

    store = open_store(str(tmp_path))
    try:
        store.apply([item.obj for item in load_paths([str(EXAMPLES / "s1")])])
        for i in (1, 2):  # as a node's agent registers itself: with its status
            store.create(Node.model_validate({"metadata": {"name": f"n{i}"}, "spec": {"podCIDR": f"10.244.{i}.0/24"},
                                              "status": {"addresses": [{"type": "InternalIP", "address": f"192.0.2.{i}"}]}}))
    finally:
        store.close()
    out = tmp_path / "live.html"
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "report", "-o", str(out)], obj={})
    assert result.exit_code == 0, result.output
    page = out.read_text()
    expected = json.loads(CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "matrix", "-o", "json"], obj={}).output)
    assert script_json(page, "matrix-json") == expected
    assert "10.244.2.0/24 via 192.0.2.2 (n2)" in page and "10.244.1.0/24 via 192.0.2.1 (n1)" in page
    assert "No flow log source is available" in page
