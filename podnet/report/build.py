"""From a cluster state to the page: one matrix (``compute_matrix``), explanations
(``evaluate``), lint (``lint``); this module only decides what to compute for which cells."""
from __future__ import annotations

import datetime
from collections.abc import Sequence

from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.lint import Locate, lint
from podnet.policy.matrix import compute_matrix, traffic_keys

from .facts import ReportFacts
from .heatmap import MAX_AXIS, explanation_text, heat_map
from .page import page, pod_matrix_html

#: up to this many pods the page also has the pod-by-pod table, every cell explained
POD_TABLE_LIMIT = 40


def selected_counts(state: ClusterState, eps: Sequence[Endpoint]) -> dict[str, int]:
    """Pods each policy applies to; ``applying`` is asked once per group of alike pods."""
    groups: dict[tuple[object, ...], list[Endpoint]] = {}
    for ep in eps:
        groups.setdefault((ep.namespace, frozenset(ep.labels.items()), ep.selectable, ep.service_account), []).append(ep)
    out: dict[str, int] = {}
    for members in groups.values():
        for pol in state.applying(members[0]):
            out[pol.ref] = out.get(pol.ref, 0) + len(members)
    return out


def build_report(state: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                 pods: Sequence[Endpoint] | None = None, facts: ReportFacts | None = None,
                 locate: Locate | None = None, pod_table_limit: int = POD_TABLE_LIMIT,
                 now: datetime.datetime | None = None) -> str:
    """The report as one HTML document (no external resources)."""
    facts = facts or ReportFacts()
    eps = sorted(state.pods if pods is None else pods, key=lambda e: e.key)
    matrix = compute_matrix(state, ports, protocols, eps)
    explanations: list[str] = []
    hm = heat_map(state, matrix, eps, explanations, MAX_AXIS)
    pod_table = ""
    if len(eps) <= pod_table_limit:
        index: dict[tuple[str, int, int], int] = {}
        for key, port, proto in traffic_keys(matrix.ports, matrix.protocols):
            for i, src in enumerate(eps):
                for j, dst in enumerate(eps):
                    explanations.append(explanation_text(state, src, dst, port, proto))
                    index[(key, i, j)] = len(explanations) - 1
        pod_table = pod_matrix_html(matrix, index)
    selected = selected_counts(state, eps)
    warnings = lint(state, locate)
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return page(state=state, matrix=matrix, eps=eps, hm=hm, pod_table=pod_table, explanations=explanations,
                warnings=warnings, facts=facts, selected=selected, generated=stamp)
