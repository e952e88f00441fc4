"""Real connection attempts between a cluster's pods, as the engine's matrix.

The kernel side (``kernel.probe``) only sends packets and reports outcomes; this puts them in
the shape of ``policy.matrix`` (same pods, keys and JSON as ``compute_matrix``), so ``podnet
probe`` prints it and ``podnet verify`` compares it cell by cell.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from podnet.kernel.probe import ProbePod, ProbeResult, probe_all
from podnet.policy.matrix import Matrix, traffic_keys


def probe_matrix(pods: Sequence[ProbePod], ports: Sequence[int], protocols: Sequence[str], *,
                 timeout: float = 1.0, workers: int = 64,
                 progress: Callable[[int, int], None] | None = None) -> tuple[Matrix, list[ProbeResult]]:
    """Every pod to every pod for every (port, protocol): the observed matrix and each
    attempt's outcome."""
    pods = sorted(pods, key=lambda p: p.key)
    traffic = traffic_keys(ports, protocols)
    results = probe_all(pods, traffic, timeout=timeout, workers=workers, progress=progress)
    column = {p.key: j for j, p in enumerate(pods)}
    rows: dict[str, list[int]] = {key: [0] * len(pods) for key, _, _ in traffic}
    for res in results:
        if res.reached:
            rows[res.key][column[res.src]] |= 1 << column[res.dst]
    matrix = Matrix(tuple(p.key for p in pods), tuple(ports), tuple(p.upper() for p in protocols),
                    {key: tuple(row) for key, row in rows.items()})
    return matrix, results
