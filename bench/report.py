"""HTML report generation at scale: 2,000 pods × 200 policies (goal ≤ 5 s) and the page's size,
with the parts it spends on (matrix, heat-map explanations, lint, page) measured side by side.

    .venv/bin/python bench/report.py [--pods 2000] [--policies 200] [--reps 3]

Clusters come from bench/policy_scale.py's generator (Zipf-sized namespaces, realistic labels and
policy mix); ports are the pods' declared ports, as `podnet report` picks them.
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_scale import generate  # noqa: E402

from podnet.policy.cluster import ClusterState  # noqa: E402
from podnet.policy.lint import lint  # noqa: E402
from podnet.policy.matrix import compute_matrix  # noqa: E402
from podnet.report.build import build_report  # noqa: E402
from podnet.report.heatmap import heat_map  # noqa: E402


def timed(fn: object, reps: int) -> tuple[float, object]:
    took, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()  # type: ignore[operator]
        took.append(time.perf_counter() - t0)
    return statistics.median(took), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--policies", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    namespaces, pods, policies = generate(args.pods, args.policies)
    state = ClusterState.build(namespaces, pods, policies)
    ports = sorted({n for ep in state.pods for n, proto in ep.container_ports if proto == "TCP"}) or [80]
    eps = sorted(state.pods, key=lambda e: e.key)
    print(f"== report at {len(state.pods):,} pods × {len(state.policies):,} policies, ports {ports} "
          f"(median of {args.reps}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, shared machine)")
    cold_state = ClusterState.build(namespaces, pods, policies)  # no memo warmed by an earlier run
    t_cold, _ = timed(lambda: build_report(cold_state, ports, ["TCP"], sorted(cold_state.pods, key=lambda e: e.key)), 1)
    t_matrix, matrix = timed(lambda: compute_matrix(state, ports, ["TCP"], eps), args.reps)
    t_heat, _ = timed(lambda: heat_map(state, matrix, eps, []), args.reps)  # type: ignore[arg-type]
    t_lint, _ = timed(lambda: lint(state), args.reps)
    t_total, page = timed(lambda: build_report(state, ports, ["TCP"], eps), args.reps)
    assert isinstance(page, str)
    size = len(page.encode())
    print(f"   matrix (compute_matrix)           {t_matrix * 1000:9.0f} ms")
    print(f"   heat map + explanations           {t_heat * 1000:9.0f} ms")
    print(f"   lint                              {t_lint * 1000:9.0f} ms")
    print(f"   whole report (build_report)       {t_total * 1000:9.0f} ms   goal ≤ 5000 ms: "
          f"{'met' if t_total <= 5 else 'NOT met'} ({t_total / 5:.2f}× the budget)")
    print(f"   whole report, first run (cold)    {t_cold * 1000:9.0f} ms   goal ≤ 5000 ms: "
          f"{'met' if t_cold <= 5 else 'NOT met'} ({t_cold / 5:.2f}× the budget)")
    print(f"   page size {size / 1e6:.2f} MB ({len(gzip.compress(page.encode())) / 1e6:.2f} MB gzipped)")


if __name__ == "__main__":
    main()
