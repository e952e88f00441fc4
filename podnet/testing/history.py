"""A register workload and its checker, the way Jepsen checks etcd: writers compare-and-set one
key while faults happen, every operation is recorded with its outcome (``ok``, ``fail`` — it
certainly did not happen — or ``unknown``), and afterwards the store's own history (a watch
from revision 0) must contain every acknowledged write at the revision it was acknowledged
with, each once, in order, with no value skipped; an unknown write may appear or not, and is
counted either way, never as lost or done.

Used by tests/faults and bench/faults.py with any Store (the etcd cluster under a leader kill).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from podnet.errors import Conflict, OutcomeUnknown, PodnetError, Unavailable
from podnet.store.api import Event, Store

Outcome = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True)
class Op:
    writer: int
    value: int  # the register's value this write tried to set
    outcome: Outcome
    revision: int | None  # the revision it was acknowledged at (ok only)
    start: float
    end: float


@dataclass
class Report:
    ops: int = 0
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    unknown_applied: int = 0
    lost: list[Op] = field(default_factory=list)  # acknowledged, not in the history
    misplaced: list[Op] = field(default_factory=list)  # in the history at another revision
    duplicates: int = 0  # a value written twice
    skipped: int = 0  # values the register jumped over (a lost update)
    reversals: int = 0  # history revisions not increasing
    longest_gap: float = 0.0  # the longest time without an acknowledged write

    @property
    def clean(self) -> bool:
        return not (self.lost or self.misplaced or self.duplicates or self.skipped or self.reversals)


def run_register(open_store: Callable[[], Store], key: str, writers: int, seconds: float,
                 during: Callable[[], None] | None = None) -> list[Op]:
    """``writers`` threads, each with its own client, doing read → compare-and-set(value + 1)
    on ``key`` for ``seconds``; ``during`` runs in this thread meanwhile (the fault)."""
    setup = open_store()
    if setup.get(key) is None:
        setup.create(key, {"v": 0})
    setup.close()
    ops: list[Op] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def writer(i: int) -> None:
        store = open_store()
        try:
            while time.monotonic() < stop:
                t0 = time.monotonic()
                try:
                    cur = store.get(key)
                except PodnetError:
                    time.sleep(0.05)
                    continue
                assert cur is not None
                value = int(cur.value["v"]) + 1
                outcome: Outcome
                revision = None
                try:
                    revision = store.update(key, {"v": value, "by": i}, mod_revision=cur.mod_revision).mod_revision
                    outcome = "ok"
                except Conflict:
                    outcome = "fail"
                except Unavailable:
                    outcome = "fail"  # no member took it
                except OutcomeUnknown:
                    outcome = "unknown"
                with lock:
                    ops.append(Op(i, value, outcome, revision, t0, time.monotonic()))
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for t in threads:
        t.start()
    if during is not None:
        during()
    for t in threads:
        t.join(seconds + 60)
    return sorted(ops, key=lambda o: o.end)


def register_history(store: Store, key: str) -> list[Event]:
    """Every write of ``key`` the store remembers, from its watch history."""
    last = store.revision()
    out: list[Event] = []
    for ev in store.watch(key, 0, timeout=2.0):
        if ev.key == key:
            out.append(ev)
        if ev.revision >= last:
            break
    return out


def check_register(ops: list[Op], history: list[Event]) -> Report:
    report = Report(ops=len(ops))
    writes = [(int((ev.value or {}).get("v", -1)), (ev.value or {}).get("by")) for ev in history]
    at_revision = {ev.revision: w for ev, w in zip(history, writes)}
    values = [v for v, _ in writes]
    report.reversals = sum(1 for a, b in zip(history, history[1:]) if b.revision <= a.revision)
    report.duplicates = len(values) - len(set(values))
    report.skipped = sum(1 for a, b in zip(values, values[1:]) if b != a + 1)
    written = set(writes)
    acknowledged = []
    for op in ops:
        mine = (op.value, op.writer)
        if op.outcome == "ok":
            report.ok += 1
            acknowledged.append(op.end)
            if mine not in written:
                report.lost.append(op)
            elif at_revision.get(op.revision if op.revision is not None else -1) != mine:
                report.misplaced.append(op)
        elif op.outcome == "fail":
            report.failed += 1
        else:
            report.unknown += 1
            report.unknown_applied += mine in written
    acknowledged.sort()
    report.longest_gap = max((b - a for a, b in zip(acknowledged, acknowledged[1:])), default=0.0)
    return report
