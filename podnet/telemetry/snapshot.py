"""A text collector whose scrape serves the last complete snapshot, read just before it is due.

Listing a 5,000-rule table from the kernel costs tens of milliseconds of CPU, and on a loaded
machine hundreds of milliseconds of wall clock: read inside the scrape, that is the scrape's
latency. Prometheus scrapes a target at a fixed interval, so the read can happen before the
scrape arrives: each scrape measures the interval since the one before and schedules the next
read ``lead`` seconds ahead of the next scrape (``lead`` grows with how long reads take). The
scrape then returns bytes already encoded. Values stay exact kernel values, read at one moment;
that moment is at most ``max_age`` seconds before the scrape (default 1 s): an older snapshot
(the first scrape, an irregular scraper, a read that has not finished) is not served, the scrape
waits for a fresh read instead. Reads happen at most once per scrape, so a process nobody
scrapes reads nothing, as before. node_exporter's slow collectors and Felix cache the same way.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .api import TextCollector

log = logging.getLogger(__name__)

#: schedule(delay, fn): run fn once after delay seconds; returns a callable that cancels it
Schedule = Callable[[float, Callable[[], None]], Callable[[], None]]


def _timer(delay: float, fn: Callable[[], None]) -> Callable[[], None]:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
    return timer.cancel


@dataclass(frozen=True)
class Snapshot:
    body: bytes
    #: monotonic time the read started: the values are no older than this
    taken: float
    #: seconds the read took (wall clock)
    took: float


class PrefetchedText:
    """Serves ``collector.expose()`` encoded once per read; see the module's docstring."""

    def __init__(self, collector: TextCollector, max_age: float = 1.0, min_lead: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, schedule: Schedule = _timer) -> None:
        if max_age <= 0 or min_lead < 0:
            raise ValueError("max_age must be > 0 and min_lead >= 0")
        self.collector = collector
        self.max_age = max_age
        self.min_lead = min_lead
        self.clock = clock
        self.schedule = schedule
        self.snapshot: Snapshot | None = None
        self.reads = 0
        self._last_scrape: float | None = None
        self._cancel: Callable[[], None] | None = None
        self._read_lock = threading.Lock()  # one read at a time; a scrape waits for one in flight
        self._lock = threading.Lock()  # the scrape bookkeeping

    def _fresh(self, now: float) -> Snapshot | None:
        snap = self.snapshot
        return snap if snap is not None and now - snap.taken <= self.max_age else None

    def read(self) -> Snapshot:
        """Read the collector now (after any read in flight) and keep the result."""
        with self._read_lock:
            start = self.clock()
            body = self.collector.expose()
            done = self.clock()
            snap = self.snapshot = Snapshot(body.encode() if isinstance(body, str) else body, start, done - start)
            self.reads += 1
            return snap

    def _prefetch(self) -> None:
        try:
            self.read()
        except Exception:  # the scrape reads again and reports the failure itself
            log.warning("reading metrics ahead of the next scrape failed", exc_info=True)

    def lead(self) -> float:
        """How long before the next scrape to start reading: twice the last read, at least
        min_lead, at most 0.8 max_age (a snapshot read earlier would be too old when served)."""
        snap = self.snapshot
        return min(max(self.min_lead, 2 * snap.took if snap is not None else 0.0), 0.8 * self.max_age)

    def expose(self) -> bytes:
        now = self.clock()
        snap = self._fresh(now)
        if snap is None:
            with self._read_lock:  # a read in flight may finish with fresh values
                snap = self._fresh(self.clock())
            if snap is None:
                snap = self.read()
        with self._lock:
            previous, self._last_scrape = self._last_scrape, now
            if self._cancel is not None:
                self._cancel()
                self._cancel = None
            if previous is not None:
                interval = now - previous
                delay = interval - self.lead()
                if delay > 0 and interval <= 3600:
                    self._cancel = self.schedule(delay, self._prefetch)
        return snap.body

    def close(self) -> None:
        with self._lock:
            if self._cancel is not None:
                self._cancel()
                self._cancel = None
