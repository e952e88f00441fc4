"""The page: every string from objects goes through ``html.escape`` (or, inside the one JSON
block, through ``json_for_script``), so names and labels cannot inject markup or script."""
from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.lint import LintWarning
from podnet.policy.matrix import Matrix

from .facts import ReportFacts
from .graph import policy_graph
from .heatmap import HeatMap

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
td.cell{text-align:center;cursor:pointer;min-width:2.2em}
td.cell:focus,td.cell.sel{outline:2px solid #000}
td.ok{background:#bfe6bf} td.no{background:#f2b8b8}
pre#explain{background:#f6f6f6;border:1px solid #ccc;padding:.5em;white-space:pre-wrap;min-height:3em}
.edge{stroke:#3a7;stroke-width:1;opacity:.6} .node{fill:#246} svg text{font-size:11px}
.muted{color:#777} nav a{margin-right:1em}
"""

SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('explanations').textContent);
  var out = document.getElementById('explain');
  var selected = null;
  function show(td){
    if (selected) selected.classList.remove('sel');
    selected = td; td.classList.add('sel');
    out.textContent = data[Number(td.getAttribute('data-e'))];
  }
  document.querySelectorAll('td.cell[data-e]').forEach(function(td){
    td.tabIndex = 0;
    td.addEventListener('click', function(){ show(td); });
    td.addEventListener('keydown', function(ev){ if (ev.key === 'Enter') show(td); });
  });
  var pick = document.getElementById('key');
  if (pick) {
    function only(){
      document.querySelectorAll('[data-key]').forEach(function(el){
        el.hidden = el.getAttribute('data-key') !== pick.value;
      });
    }
    pick.addEventListener('change', only); only();
  }
})();
"""


def json_for_script(value: object) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no comment openers)."""
    return (json.dumps(value, separators=(",", ":"))
            .replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are escaped here; pass plain text."""
    attr = f' class="{cls}"' if cls else ""
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{attr}><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _colour(allowed: int, total: int) -> str:
    share = allowed / total if total else 0.0
    red, green = (242, 184, 184), (191, 230, 191)
    r, g, b = (round(a + (z - a) * share) for a, z in zip(red, green))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map_html(hm: HeatMap) -> str:
    parts = [f"<p>Grouped by {escape(hm.grouping)}. Each cell: allowed pairs / all pairs, from row to column; "
             f"click a cell for the explanation of a representative pair.</p>"]
    legend = "".join(f"<tr><th>{k + 1}</th><td>{escape(b.label)}</td><td>{len(b.members)}</td></tr>"
                     for k, b in enumerate(hm.buckets))
    for key, rows in hm.cells.items():
        head = "".join(f'<th title="{escape(b.label)}">{k + 1}</th>' for k, b in enumerate(hm.buckets))
        body = []
        for i, row in enumerate(rows):
            tds = "".join(
                f'<td class="cell" data-e="{c.explanation}" style="background:{_colour(c.allowed, c.total)}" '
                f'title="{escape(hm.buckets[i].label)} → {escape(hm.buckets[j].label)}">{c.allowed}/{c.total}</td>'
                for j, c in enumerate(row))
            body.append(f'<tr><th title="{escape(hm.buckets[i].label)}">{i + 1}</th>{tds}</tr>')
        parts.append(f'<div data-key="{escape(key)}"><h3>{escape(key)}</h3>'
                     f'<table class="heat"><thead><tr><th>from \\ to</th>{head}</tr></thead>'
                     f'<tbody>{"".join(body)}</tbody></table></div>')
    parts.append(f"<table><thead><tr><th>#</th><th>group</th><th>pods</th></tr></thead><tbody>{legend}</tbody></table>")
    return "".join(parts)


def pod_matrix_html(matrix: Matrix, explain_index: dict[tuple[str, int, int], int]) -> str:
    """The pod-level truth table (small clusters): ``.`` allowed, ``X`` denied, as ``podnet matrix``."""
    names = matrix.pods
    parts = []
    for key in matrix.rows:
        table = matrix.table(key)
        head = "".join(f'<th title="{escape(n)}">{j + 1}</th>' for j, n in enumerate(names))
        body = []
        for i, src in enumerate(names):
            tds = "".join(
                f'<td class="cell {"ok" if ok else "no"}" data-traffic="{escape(key)}" data-src="{escape(src)}" '
                f'data-dst="{escape(names[j])}" '
                f'data-allowed="{str(ok).lower()}" data-e="{explain_index[(key, i, j)]}">{"." if ok else "X"}</td>'
                for j, ok in enumerate(table[i]))
            body.append(f"<tr><th>{i + 1} {escape(src)}</th>{tds}</tr>")
        parts.append(f'<div data-key="{escape(key)}"><h3>{escape(key)}</h3>'
                     f'<table class="pods-matrix" data-key="{escape(key)}"><thead><tr><th>from \\ to</th>{head}</tr>'
                     f'</thead><tbody>{"".join(body)}</tbody></table></div>')
    return "".join(parts)


def _pods(eps: Sequence[Endpoint]) -> str:
    rows = [(str(e.namespace), str(e.name), e.ip or "", e.node or "",
             ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items()))) for e in eps]
    return _table(("namespace", "pod", "address", "node", "labels"), rows)


def _nodes(facts: ReportFacts, state: ClusterState) -> str:
    if facts.nodes:
        rows = [(n.name, ", ".join(n.addresses), ", ".join(n.pod_cidrs), "\n".join(n.routes) or "—")
                for n in facts.nodes]
        return _table(("node", "addresses", "pod CIDRs", "routes to other nodes' pods"), rows)
    if state.nodes:
        return _table(("node", "addresses"), [(n.name, ", ".join(n.addresses)) for n in state.nodes])
    return "<p class=\"muted\">No nodes in the input.</p>"


def _policies(state: ClusterState, selected: dict[str, int]) -> str:
    rows = [(p.ref, p.tier, ", ".join(sorted(p.isolates)), str(selected.get(p.ref, 0)), str(len(p.ingress)),
             str(len(p.egress)), p.source or "") for p in state.ordered]
    return _table(("policy", "tier", "isolates", "pods selected", "ingress rules", "egress rules", "source"), rows)


def _lint(warnings: Sequence[LintWarning]) -> str:
    if not warnings:
        return "<p>No findings.</p>"
    rows = [(w.location or "", w.policy, w.field_path, w.code, w.message, w.hint or "") for w in warnings]
    return _table(("where", "policy", "field", "code", "finding", "fix"), rows)


def _flows(facts: ReportFacts) -> str:
    if not facts.live:
        return "<p class=\"muted\">Flows are recorded by a live cluster; this report was made from files.</p>"
    if facts.flows is None:
        return "<p class=\"muted\">No flow log source is available on this cluster.</p>"
    if not facts.flows:
        return "<p>No denied flows recorded.</p>"
    rows = [(f.time, f.source, f.destination, f.port, f.verdict, f.policy, f.rule, str(f.packets)) for f in facts.flows]
    return _table(("time", "from", "to", "port", "verdict", "policy", "rule", "packets"), rows)


def page(*, state: ClusterState, matrix: Matrix, eps: Sequence[Endpoint], hm: HeatMap, pod_table: str,
         explanations: Sequence[str], warnings: Sequence[LintWarning], facts: ReportFacts,
         selected: dict[str, int], generated: str) -> str:
    keys = list(matrix.rows)
    options = "".join(f'<option value="{escape(k)}">{escape(k)}</option>' for k in keys)
    picker = f'<label>Traffic: <select id="key">{options}</select></label>' if len(keys) > 1 else ""
    notes = "".join(f"<p class=\"muted\">{escape(n)}</p>" for n in facts.notes)
    pod_section = (f'<section id="pod-matrix"><h2>Pod matrix</h2>{pod_table}</section>' if pod_table else
                   f'<section id="pod-matrix"><h2>Pod matrix</h2><p class="muted">{len(eps)} pods: too many to draw '
                   f'pod by pod; `podnet matrix -o csv` lists every pair.</p></section>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>podnet report</title><style>{STYLE}</style></head>
<body>
<h1>podnet report</h1>
<p>{escape(facts.source)} · generated {escape(generated)} · {len(eps)} pods · {len(state.policies)} policies ·
{len(warnings)} lint findings</p>{notes}
<nav><a href="#nodes">Nodes</a><a href="#pods">Pods</a><a href="#matrix">Heat map</a><a href="#pod-matrix">Pod matrix</a>
<a href="#graph">Graph</a><a href="#policies">Policies</a><a href="#lint">Lint</a><a href="#flows">Denied flows</a></nav>
<section id="nodes"><h2>Nodes</h2>{_nodes(facts, state)}</section>
<section id="pods"><h2>Pods</h2>{_pods(eps)}</section>
<section id="matrix"><h2>Connectivity</h2>{picker}
<h3>Explanation</h3><pre id="explain" aria-live="polite">Click a cell.</pre>
{heat_map_html(hm)}</section>
{pod_section}
<section id="graph"><h2>Who may talk to whom</h2>{policy_graph(hm)}</section>
<section id="policies"><h2>Policies</h2>{_policies(state, selected)}</section>
<section id="lint"><h2>Lint findings</h2>{_lint(warnings)}</section>
<section id="flows"><h2>Recent denied flows</h2>{_flows(facts)}</section>
<script type="application/json" id="explanations">{json_for_script(list(explanations))}</script>
<script type="application/json" id="matrix-json">{json_for_script(matrix.to_json() if pod_table else None)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
