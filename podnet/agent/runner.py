"""One loop shape for every long-running podnet process: the node agent, the policy and routing
loops, and the control plane.

A pass runs and returns the store revision it saw. The runner then waits for a change after
that revision (a store watch from revision + 1) or for the resync timer, whichever comes
first, and runs the next pass. Like kube-proxy's ``BoundedFrequencyRunner`` it keeps passes
between two bounds:

- ``min_interval``: the quiet time after a pass before a change may start the next one. The
  changes that arrive in it are taken together by one pass, so a burst costs one pass, not
  one per write. Zero (the default) runs the next pass as soon as the change is seen.
- ``max_interval``: the resync. A pass runs at the latest this long after the last one ended,
  changes or not; that is what notices crashed processes and repairs drift.

A pass that raises is logged and retried after an exponential back-off (``backoff_initial``,
doubling, at most ``backoff_max``), which a successful pass resets. The loop never ends on a
failure: it is its concern's only process on the node, and nothing would restart it. It ends
when ``stop`` is set, at the latest one short watch (``poll``) later.

Time is injected (``clock`` and ``sleep``), so the schedule is unit-tested without waiting.
Passes, failures, pass durations, what woke the loop and the current back-off are recorded in
``LoopMetrics`` (no-ops unless the process serves metrics). Every loop logs through
``logging.getLogger("podnet.<loop>")`` in one format, which
``configure_logging`` sets up once per process.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from podnet.errors import Compacted, PodnetError
from podnet.store.api import Event
from podnet.telemetry import NULL
from podnet.telemetry.loops import LoopMetrics

from .notify import Notifier

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def loop_logger(name: str) -> logging.Logger:
    """The logger of the loop called ``name`` (the name of its ``podnet`` command)."""
    return logging.getLogger(f"podnet.{name}")


def configure_logging(level: int = logging.INFO) -> None:
    """Every loop process logs to stderr in one format (the lab sends it to the process's log)."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: a loop stops after its current pass, cleanly."""
    stop = threading.Event()

    def handler(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


class PassFailed(Exception):
    """A pass failed for a reason it has already reported: logged in one line, no traceback."""


class Changes(Protocol):
    """Where a loop learns that its input moved on."""

    def wait(self, revision: int, timeout: float) -> bool:
        """True as soon as something changed after ``revision``; False after ``timeout`` seconds
        without such a change."""
        ...


class Watchable(Protocol):
    """The part of a ``Store`` a watch needs."""

    def watch(self, prefix: str, start_revision: int, timeout: float | None = None) -> Iterable[Event]: ...


class StoreChanges:
    """``Changes`` from a store watch, limited to keys under ``prefixes`` (all keys by default):
    a loop is not woken by writes it does not read. A compacted history counts as a change,
    since the next pass reads a fresh snapshot anyway."""

    def __init__(self, kv: Watchable, prefixes: Iterable[str] = ("",)) -> None:
        self.kv = kv
        self.prefixes = tuple(prefixes)
        self._watch_prefix = os.path.commonprefix(list(self.prefixes))
        self._seen = -1  # the last revision already looked at: skipped events are not read twice

    def wait(self, revision: int, timeout: float) -> bool:
        start = max(revision, self._seen)
        deadline = time.monotonic() + timeout
        try:
            for event in self.kv.watch(self._watch_prefix, start + 1, timeout=timeout):
                self._seen = event.revision
                if event.key.startswith(self.prefixes):
                    return True
                if time.monotonic() >= deadline:  # a stream of other keys does not end a watch
                    return False
        except Compacted:
            return True
        return False


@dataclass(frozen=True)
class Timing:
    """When a loop runs its passes (see the module's docstring)."""

    min_interval: float = 0.0
    max_interval: float = 1.0
    backoff_initial: float = 0.1
    backoff_max: float | None = None  # None: the resync interval

    def backoff(self, failures: int) -> float:
        """The wait before the next try after ``failures`` failed passes in a row."""
        cap = self.max_interval if self.backoff_max is None else self.backoff_max
        return float(min(cap, self.backoff_initial * 2 ** max(failures - 1, 0)))


class LoopRunner:
    """Runs ``run_pass`` (which returns the revision it saw) on changes from ``changes`` and on
    the resync timer, until ``stop`` is set."""

    def __init__(self, name: str, run_pass: Callable[[], int], changes: Changes, timing: Timing | None = None, *,
                 stop: threading.Event | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None, poll: float = 0.25,
                 metrics: LoopMetrics | None = None) -> None:
        self.name = name
        self.log = loop_logger(name)
        self.run_pass = run_pass
        self.changes = changes
        self.timing = timing if timing is not None else Timing()
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock
        self.sleep = sleep if sleep is not None else self.stop.wait  # returns early on stop
        self.poll = poll
        self.passes = 0  # successful ones
        self.failures = 0  # failed ones since the last success
        self.notify = Notifier()  # READY and WATCHDOG to a supervisor, if one listens
        self.metrics = metrics if metrics is not None else LoopMetrics(NULL, name)

    def run(self) -> None:
        m = self.metrics
        while not self.stop.is_set():
            self.notify.watchdog()
            started = self.clock()
            try:
                revision = self.run_pass()
            except Exception as exc:
                m.duration.observe(self.clock() - started)
                self._failed("pass", exc)
                continue
            self.passes += 1
            self.notify.ready()
            self.notify.watchdog()
            ended = self.clock()
            m.passes.inc()
            m.duration.observe(ended - started)
            m.last_success.set(time.time())
            m.backoff.set(0)
            try:
                changed = self._wait_for_change(revision, ended + self.timing.max_interval)
            except Exception as exc:  # the store's watch failed: it is likely down, so back off
                self._failed("store watch", exc)
                continue
            self.failures = 0
            if changed:
                m.woken_by_change.inc()
                self._sleep_until(ended + self.timing.min_interval)
            elif not self.stop.is_set():
                m.woken_by_resync.inc()

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        delay = self.timing.backoff(self.failures)
        self.metrics.failures.inc()
        self.metrics.backoff.set(delay)
        self.log.error("%s failed (%d in a row): %s: %s; next try in %.2f s", what, self.failures,
                       type(exc).__name__, exc, delay, exc_info=not isinstance(exc, (PodnetError, PassFailed)))
        if not self.stop.is_set():
            self.sleep(delay)

    def _wait_for_change(self, revision: int, deadline: float) -> bool:
        """True on a change after ``revision``; False at ``deadline`` or on stop. Waits in
        ``poll``-long watches so that a stop is noticed soon."""
        while not self.stop.is_set():
            left = deadline - self.clock()
            if left <= 0:
                return False
            self.notify.watchdog()
            if self.changes.wait(revision, min(left, self.poll)):
                return True
        return False

    def _sleep_until(self, when: float) -> None:
        left = when - self.clock()
        if left > 0 and not self.stop.is_set():
            self.sleep(left)
