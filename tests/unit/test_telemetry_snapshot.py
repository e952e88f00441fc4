"""The scrape serves the last snapshot read ahead of it, never one older than max_age, and reads
at most once per scrape (a clock and a scheduler driven by hand: no sleeping, no timing)."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from podnet.dataplane.nft.counts import RuleCount, TableCounts
from podnet.telemetry.policy_table import PolicyTableCollector
from podnet.telemetry.snapshot import PrefetchedText


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Scheduler:
    """Keeps what was scheduled; ``run`` fires it as a timer would."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> Callable[[], None]:
        item = (delay, fn)
        self.pending.append(item)
        return lambda: self.pending.remove(item) if item in self.pending else None

    def run(self) -> None:
        (_, fn), = self.pending
        self.pending.clear()
        fn()


class Table:
    """A collector whose value is the number of reads so far (each read is a new kernel value)."""

    def __init__(self, clock: Clock, took: float = 0.0) -> None:
        self.reads = 0
        self.clock, self.took = clock, took

    def expose(self) -> str:
        self.reads += 1
        self.clock.now += self.took
        return f"podnet_x {self.reads}\n"


def setup(max_age: float = 1.0, took: float = 0.0) -> tuple[Clock, Scheduler, Table, PrefetchedText]:
    clock, sched = Clock(), Scheduler()
    table = Table(clock, took)
    return clock, sched, table, PrefetchedText(table, max_age=max_age, clock=clock, schedule=sched)


def test_first_scrape_reads_then_reads_happen_ahead_of_the_next() -> None:
    clock, sched, table, served = setup()
    assert served.expose() == b"podnet_x 1\n" and sched.pending == []  # no interval known yet
    clock.now += 1.5
    assert served.expose() == b"podnet_x 2\n"  # the last snapshot is 1.5 s old: read again
    (delay, _), = sched.pending
    assert delay == pytest.approx(1.5 - 0.1)  # the next read starts min_lead before the next scrape
    clock.now += delay
    sched.run()
    clock.now += 0.1
    assert served.expose() == b"podnet_x 3\n" and table.reads == 3  # served as read, not read again
    assert clock.now - served.snapshot.taken == pytest.approx(0.1)  # type: ignore[union-attr]


def test_a_snapshot_older_than_max_age_is_never_served() -> None:
    clock, sched, table, served = setup(max_age=1.0)
    served.expose()
    clock.now += 30.0
    served.expose()
    sched.pending.clear()  # the read ahead never happens (say the process was stalled)
    clock.now += 30.0
    assert served.expose() == b"podnet_x 3\n"  # read during the scrape instead
    assert table.reads == 3


def test_the_lead_follows_how_long_reads_take_within_max_age() -> None:
    clock, sched, table, served = setup(max_age=1.0, took=0.3)
    served.expose()
    clock.now += 15.0
    served.expose()
    (delay, _), = sched.pending
    assert delay == pytest.approx(15.3 - 0.6)  # the interval (from the first scrape) less twice the last read
    assert served.lead() == pytest.approx(0.6)
    table.took = 2.0
    served.read()
    assert served.lead() == pytest.approx(0.8)  # capped: an earlier read would be too old when served


def test_one_read_per_scrape_and_none_without_scrapes() -> None:
    clock, sched, table, served = setup()
    for _ in range(5):
        served.expose()
        clock.now += 0.9
        if sched.pending:
            sched.run()
        clock.now += 0.1
    assert table.reads == 5
    served.close()
    assert sched.pending == []


def test_scrapes_faster_than_reads_read_during_the_scrape() -> None:
    clock, sched, table, served = setup(took=0.05)
    served.expose()
    clock.now += 0.05  # every 0.1 s, and reads take 0.05 s (lead 0.1 s): no time to read ahead
    served.expose()
    assert sched.pending == [] and table.reads == 1  # the snapshot (0.1 s old) is fresh enough


def test_a_failed_read_ahead_leaves_the_scrape_to_read_and_fail() -> None:
    clock, sched, _, _ = setup()

    class Broken:
        def expose(self) -> str:
            raise OSError("no such table")

    served = PrefetchedText(Broken(), clock=clock, schedule=sched)
    with pytest.raises(OSError):
        served.expose()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        PrefetchedText(Table(Clock()), max_age=0)


def test_the_policy_table_text_is_served_encoded_as_written() -> None:
    counts = TableCounts(["pi-web"], 2, [RuleCount("pi-web", "web spec.ingress[0]", "accept", 3, 180)])
    collector = PolicyTableCollector(lambda maps: counts, "inet podnet")
    served = PrefetchedText(collector, clock=Clock(), schedule=Scheduler())
    assert served.expose() == collector.expose().encode()
