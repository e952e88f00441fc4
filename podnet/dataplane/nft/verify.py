"""The engine's matrix vs what probes saw in the kernel: every disagreeing cell, explained.

Pure: both matrices and the per-cell outcomes come in as values; ``evaluate`` supplies the
explanation of what the engine expected, so a mismatch reads as "the engine says DENIED by
ingress (default/web is isolated … no rule allows …) but the connection succeeded".
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podnet.policy.cluster import ICMP, ClusterState
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import Matrix
from podnet.policy.walk import direction_walk

SKIPPED_OUTCOMES = ("unsupported", "error")


@dataclass(frozen=True)
class Disagreement:
    src: str
    dst: str
    traffic: str
    expected: bool
    observed: str
    explanation: str

    def describe(self) -> str:
        want = "allowed" if self.expected else "denied"
        return (f"{self.src} → {self.dst} {self.traffic}: engine says {want}, probe saw {self.observed}\n"
                f"    {self.explanation}")

    def to_dict(self) -> dict[str, object]:
        return {"from": self.src, "to": self.dst, "traffic": self.traffic,
                "expected": "allowed" if self.expected else "denied", "observed": self.observed,
                "explanation": self.explanation}


@dataclass(frozen=True)
class VerifyReport:
    cells: int
    agreed: int
    skipped: int
    disagreements: tuple[Disagreement, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def to_dict(self) -> dict[str, object]:
        return {"cells": self.cells, "agreed": self.agreed, "skipped": self.skipped, "ok": self.ok,
                "disagreements": [d.to_dict() for d in self.disagreements]}


def _split_key(key: str) -> tuple[int | None, str]:
    if key == ICMP:
        return None, ICMP
    port, _, proto = key.partition("/")
    return int(port), proto


def compare(state: ClusterState, expected: Matrix, observed: Matrix,
            outcomes: Mapping[tuple[str, str, str], str]) -> VerifyReport:
    """Cell by cell; ``outcomes`` maps (src, dst, key) to the probe outcome (for skips and text)."""
    if expected.pods != observed.pods or set(expected.rows) != set(observed.rows):
        raise ValueError("the two matrices cover different pods or traffic")
    cells = agreed = skipped = 0
    out: list[Disagreement] = []
    for key in expected.rows:
        for i, src in enumerate(expected.pods):
            for j, dst in enumerate(expected.pods):
                cells += 1
                outcome = outcomes.get((src, dst, key), "")
                if outcome in SKIPPED_OUTCOMES:
                    skipped += 1
                    continue
                want, got = expected.allowed(key, i, j), observed.allowed(key, i, j)
                if want == got:
                    agreed += 1
                    continue
                port, proto = _split_key(key)
                verdict = evaluate(state, state.endpoint(src), state.endpoint(dst), port, proto)
                text = verdict.summary
                misses = [m.describe() for m in verdict.nearest_misses]
                if misses:
                    text += "; nearest miss: " + misses[0]
                if state.tiered:  # where each direction's walk through the tiers decided
                    text += "".join(_tier_step(state, src, dst, port, proto))
                out.append(Disagreement(src, dst, key, want, outcome or ("reached" if got else "blocked"), text))
    return VerifyReport(cells, agreed, skipped, tuple(out))


def _tier_step(state: ClusterState, src: str, dst: str, port: int | None, proto: str) -> list[str]:
    out = []
    for direction in ("egress", "ingress"):
        walk = direction_walk(state, state.endpoint(src), state.endpoint(dst), port, proto, direction)
        if walk.isolated and walk.decided_by is not None:
            out.append(f"; {direction}: {walk.decided_by.describe()}")
    return out
