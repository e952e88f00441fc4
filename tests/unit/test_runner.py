"""The loop runner every podnet process runs on: when passes happen (a change, the resync
timer, the min interval), the back-off after failures, and stopping. Time is a fake clock the
runner's sleeps and waits advance, so nothing here waits for real."""
from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from podnet.agent.runner import LoopRunner, PassFailed, StoreChanges, Timing
from podnet.errors import PodnetError
from podnet.store.api import Put
from podnet.store.memory import MemoryStore


class FakeTime:
    """A clock that moves only when the runner sleeps or waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedChanges:
    """Store changes at fixed times: revision N is the N-th of ``at``. ``wait`` returns at the
    first change after the revision it is given, or at its timeout, moving the clock to then."""

    def __init__(self, time: FakeTime, at: list[float]) -> None:
        self.time = time
        self.at = sorted(at)
        self.waits = 0

    def revision(self) -> int:
        return sum(1 for t in self.at if t <= self.time.now)

    def wait(self, revision: int, timeout: float) -> bool:
        self.waits += 1
        later = [t for t in self.at[revision:]]
        if later and later[0] <= self.time.now + timeout:
            self.time.now = max(self.time.now, later[0])
            return True
        self.time.now += timeout
        return False


class Passes:
    """A pass that records when it ran and which revision it saw, fails as told, and stops the
    runner after ``until`` passes."""

    def __init__(self, time: FakeTime, changes: ScriptedChanges, until: int,
                 fail: Callable[[int], bool] = lambda n: False, takes: float = 0.0) -> None:
        self.time, self.changes, self.until, self.fail, self.takes = time, changes, until, fail, takes
        self.ran: list[tuple[float, int]] = []
        self.runner: LoopRunner | None = None

    def __call__(self) -> int:
        assert self.runner is not None
        n = len(self.ran)
        self.ran.append((round(self.time.now, 6), self.changes.revision()))
        self.time.now += self.takes
        if len(self.ran) >= self.until:
            self.runner.stop.set()
        if self.fail(n):
            raise PodnetError(f"pass {n} failed")
        return self.changes.revision()


def make(at: list[float], until: int, timing: Timing, **kw: object) -> tuple[LoopRunner, Passes, FakeTime]:
    t = FakeTime()
    changes = ScriptedChanges(t, at)
    passes = Passes(t, changes, until, **kw)  # type: ignore[arg-type]
    runner = LoopRunner("test-loop", passes, changes, timing, clock=t.clock, sleep=t.sleep)
    passes.runner = runner
    return runner, passes, t


def test_resync_runs_passes_without_changes() -> None:
    runner, passes, _ = make([], 4, Timing(max_interval=2.0))
    runner.run()
    assert [when for when, _ in passes.ran] == [0.0, 2.0, 4.0, 6.0]
    assert runner.passes == 4


def test_resync_counts_from_the_end_of_a_pass() -> None:
    runner, passes, _ = make([], 3, Timing(max_interval=2.0), takes=0.5)
    runner.run()
    assert [when for when, _ in passes.ran] == [0.0, 2.5, 5.0]


def test_a_change_wakes_the_loop_at_once() -> None:
    """No polling delay: the pass starts the moment the watch reports the change."""
    runner, passes, t = make([0.3, 1.7], 3, Timing(max_interval=5.0))
    runner.run()
    assert passes.ran == [(0.0, 0), (0.3, 1), (1.7, 2)]
    assert t.sleeps == []


def test_waits_are_short_so_a_stop_is_seen_soon() -> None:
    runner, passes, _ = make([], 2, Timing(max_interval=1.0))
    runner.run()
    assert passes.changes.waits == 4  # 1 s of resync in 0.25 s watches


def test_min_interval_takes_a_burst_in_one_pass() -> None:
    """Five writes 10 ms apart right after a pass: one pass, min_interval after the last one
    ended, sees all five."""
    burst = [0.51, 0.52, 0.53, 0.54, 0.55]
    runner, passes, _ = make(burst, 2, Timing(min_interval=0.1, max_interval=5.0), takes=0.5)
    runner.run()
    assert passes.ran == [(0.0, 0), (0.6, 5)]


def test_min_interval_adds_no_delay_after_a_quiet_spell() -> None:
    runner, passes, _ = make([3.0], 2, Timing(min_interval=0.1, max_interval=5.0))
    runner.run()
    assert passes.ran == [(0.0, 0), (3.0, 1)]


def test_backoff_doubles_up_to_its_cap_and_resets_after_success(caplog: pytest.LogCaptureFixture) -> None:
    failing = {0, 1, 2, 3, 4, 6}
    timing = Timing(max_interval=10.0, backoff_initial=0.1, backoff_max=0.5)
    runner, passes, t = make([], 8, timing, fail=lambda n: n in failing)
    with caplog.at_level(logging.ERROR, logger="podnet.test-loop"):
        runner.run()
    assert t.sleeps[:6] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.1]  # five failures, a success, a failure again
    starts = [when for when, _ in passes.ran]
    assert starts[:6] == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.2, 1.7])
    assert starts[6] == pytest.approx(11.7)  # after the success: the resync, not the back-off
    assert runner.failures == 0 and runner.passes == 2
    assert [r.name for r in caplog.records] == ["podnet.test-loop"] * 6
    assert "pass failed (3 in a row): PodnetError: pass 2 failed; next try in 0.40 s" in caplog.text
    assert not any(r.exc_info for r in caplog.records)  # a user-facing error: one line each


def test_backoff_cap_defaults_to_the_resync() -> None:
    assert [Timing(max_interval=1.0).backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_reported_failure_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    runner: LoopRunner

    def failing() -> int:
        runner.stop.set()
        raise PassFailed("nft: transaction refused")

    runner = LoopRunner("test-loop", failing, ScriptedChanges(t, []), clock=t.clock, sleep=t.sleep)
    with caplog.at_level(logging.ERROR, logger="podnet.test-loop"):
        runner.run()
    [record] = caplog.records
    assert "PassFailed: nft: transaction refused" in record.getMessage() and not record.exc_info


def test_an_unexpected_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    changes = ScriptedChanges(t, [])
    calls = []

    def broken() -> int:
        calls.append(t.now)
        if len(calls) == 2:
            runner.stop.set()
        raise KeyError("spec")

    runner = LoopRunner("test-loop", broken, changes, Timing(max_interval=1.0), clock=t.clock, sleep=t.sleep)
    with caplog.at_level(logging.ERROR, logger="podnet.test-loop"):
        runner.run()
    assert calls == [0.0, 0.1]
    assert caplog.records[0].exc_info is not None


def test_a_failing_watch_backs_off_too(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()

    class DownStore:
        def wait(self, revision: int, timeout: float) -> bool:
            raise PodnetError("store unreachable")

    ran = []

    def ok() -> int:
        ran.append(t.now)
        if len(ran) == 3:
            runner.stop.set()
        return 0

    runner = LoopRunner("test-loop", ok, DownStore(), Timing(max_interval=1.0), clock=t.clock, sleep=t.sleep)
    with caplog.at_level(logging.ERROR, logger="podnet.test-loop"):
        runner.run()
    assert ran == pytest.approx([0.0, 0.1, 0.3])
    assert "store watch failed (2 in a row): PodnetError: store unreachable" in caplog.text


def test_stop_ends_the_loop_without_another_pass_or_sleep() -> None:
    runner, passes, t = make([], 1, Timing(max_interval=5.0))
    runner.run()
    assert len(passes.ran) == 1 and t.now == 0.0 and t.sleeps == []
    runner.run()  # already stopped: not even one pass
    assert len(passes.ran) == 1


def test_stop_during_a_wait_is_seen_after_one_short_watch() -> None:
    t = FakeTime()
    runner: LoopRunner

    class StopWhileWaiting:
        def wait(self, revision: int, timeout: float) -> bool:
            t.now += timeout
            runner.stop.set()  # as SIGTERM would, in the middle of the wait
            return False

    ran = []

    def one_pass() -> int:
        ran.append(t.now)
        return 0

    runner = LoopRunner("test-loop", one_pass, StopWhileWaiting(), Timing(max_interval=60.0), clock=t.clock, sleep=t.sleep)
    runner.run()
    assert ran == [0.0] and t.now == 0.25


def test_the_default_sleep_is_the_stop_event() -> None:
    """In production a back-off or min-interval sleep returns as soon as the loop is stopped."""
    runner = LoopRunner("test-loop", lambda: 0, ScriptedChanges(FakeTime(), []))
    runner.stop.set()
    assert runner.sleep(3600) is True


def test_store_changes_follow_a_real_watch() -> None:
    """Against a real store: a change after the revision wakes at once, one before it does not,
    keys outside the prefixes are skipped, and a compacted history counts as a change."""
    kv = MemoryStore()
    kv.txn([], [Put("/registry/nodes/n1", {"a": 1})])
    before = kv.revision()
    changes = StoreChanges(kv, ("/registry/nodes/",))
    assert changes.wait(before, 0.01) is False
    kv.txn([], [Put("/registry/pods/default/p", {"a": 1})])
    assert changes.wait(before, 0.01) is False
    kv.txn([], [Put("/registry/nodes/n2", {"a": 1})])
    assert changes.wait(before, 5) is True
    kv.compact(kv.revision())
    assert StoreChanges(kv).wait(before, 5) is True
