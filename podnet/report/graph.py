"""Who may talk to whom, drawn: heat-map buckets on a circle, an arrow from A to B when some pod
of A may reach some pod of B on any checked port (solid: every pair; dashed: some). Plain SVG
text made here, so the page needs no library."""
from __future__ import annotations

import math
from html import escape

from .heatmap import HeatMap

SIZE = 640


def policy_graph(hm: HeatMap) -> str:
    n = len(hm.buckets)
    if n == 0:
        return "<p>No pods.</p>"
    r = SIZE / 2 - 120
    c = SIZE / 2
    pos = [(c + r * math.cos(2 * math.pi * k / n - math.pi / 2), c + r * math.sin(2 * math.pi * k / n - math.pi / 2))
           for k in range(n)]
    edges: list[str] = []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            allowed = sum(hm.cells[key][i][j].allowed for key in hm.cells)
            total = sum(hm.cells[key][i][j].total for key in hm.cells)
            if not allowed:
                continue
            (x1, y1), (x2, y2) = pos[i], pos[j]
            dash = "" if allowed == total else ' stroke-dasharray="4 3"'
            title = escape(f"{hm.buckets[i].label} → {hm.buckets[j].label}: {allowed}/{total} pairs allowed")
            edges.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="edge"{dash} '
                         f'marker-end="url(#arrow)"><title>{title}</title></line>')
    nodes = []
    for k, (x, y) in enumerate(pos):
        label = hm.buckets[k].label
        short = label if len(label) <= 28 else label[:27] + "…"
        anchor = "start" if x >= c else "end"
        dx = 8 if x >= c else -8
        nodes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" class="node"><title>{escape(label)}</title></circle>'
                     f'<text x="{x + dx:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}">{escape(short)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" width="{SIZE}" height="{SIZE}" '
            f'role="img" aria-label="policy graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="14" refY="5" '
            f'markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
            + "".join(edges) + "".join(nodes) + "</svg>")
