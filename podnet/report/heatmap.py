"""The connectivity matrix folded into a heat map: pods grouped by namespace and labels (or by
namespace alone when there are too many groups), each cell the share of allowed pairs, and one
explanation per cell, of a representative pair, from ``podnet.policy.evaluate``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import Matrix, traffic_keys
from podnet.policy.render import render_verdict

#: more rows than this is no longer a picture: fall back to namespaces, then to the largest ones
MAX_AXIS = 30


@dataclass(frozen=True)
class Bucket:
    """One heat-map row/column: a label and the pods (indexes into ``Matrix.pods``) it holds."""

    label: str
    members: tuple[int, ...]

    @property
    def mask(self) -> int:
        out = 0
        for i in self.members:
            out |= 1 << i
        return out


@dataclass(frozen=True)
class Cell:
    allowed: int
    total: int
    #: index into the explanations, -1 when none was computed
    explanation: int


@dataclass(frozen=True)
class HeatMap:
    grouping: str
    buckets: tuple[Bucket, ...]
    #: per traffic key, rows of cells (source bucket × destination bucket)
    cells: dict[str, tuple[tuple[Cell, ...], ...]]


def _labels_text(ep: Endpoint) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(ep.labels.items()))


def buckets(eps: Sequence[Endpoint], limit: int = MAX_AXIS) -> tuple[str, tuple[Bucket, ...]]:
    """Group by namespace and labels; if that is more than ``limit``, by namespace; if still more,
    the ``limit - 1`` largest namespaces and one bucket for the rest."""
    by_group: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        by_group.setdefault(f"{ep.namespace} {{{_labels_text(ep)}}}", []).append(i)
    if len(by_group) <= limit:
        return "namespace and labels", tuple(Bucket(k, tuple(v)) for k, v in sorted(by_group.items()))
    by_ns: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        by_ns.setdefault(str(ep.namespace), []).append(i)
    if len(by_ns) <= limit:
        return "namespace", tuple(Bucket(k, tuple(v)) for k, v in sorted(by_ns.items()))
    largest = sorted(by_ns.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    kept = sorted(largest[:limit - 1])
    rest = sorted(i for _, members in largest[limit - 1:] for i in members)
    label = f"(the other {len(largest) - limit + 1} namespaces)"
    return "namespace (largest)", tuple(Bucket(k, tuple(v)) for k, v in kept) + (Bucket(label, tuple(rest)),)


def _pair(src: Bucket, dst: Bucket) -> tuple[int, int]:
    """A representative pair: the first pods, distinct when the bucket has two."""
    s = src.members[0]
    d = next((j for j in dst.members if j != s), dst.members[0])
    return s, d


def explanation_text(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> str:
    """Exactly what ``podnet explain --from SRC --to DST:PORT/PROTO`` prints."""
    return render_verdict(evaluate(state, src, dst, port, protocol))


def heat_map(state: ClusterState, matrix: Matrix, eps: Sequence[Endpoint], explanations: list[str],
             limit: int = MAX_AXIS) -> HeatMap:
    """Counts from the matrix rows (popcounts of bitsets); explanations appended to ``explanations``."""
    grouping, bs = buckets(eps, limit)
    masks = [b.mask for b in bs]
    cells: dict[str, tuple[tuple[Cell, ...], ...]] = {}
    for key, port, proto in traffic_keys(matrix.ports, matrix.protocols):
        rows = matrix.rows[key]
        table = []
        for src in bs:
            counts = [0] * len(bs)
            for i in src.members:
                row = rows[i]
                for j, mask in enumerate(masks):
                    counts[j] += (row & mask).bit_count()
            line = []
            for j, dst in enumerate(bs):
                s, d = _pair(src, dst)
                explanations.append(f"{key} — {len(src.members)} × {len(dst.members)} pods; "
                                    f"a representative pair:\n" + explanation_text(state, eps[s], eps[d], port, proto))
                line.append(Cell(counts[j], len(src.members) * len(dst.members), len(explanations) - 1))
            table.append(tuple(line))
        cells[key] = tuple(table)
    return HeatMap(grouping, bs, cells)
