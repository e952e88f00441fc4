"""MemoryStore: the Store protocol in one process's memory.

The fake at the seam for tests of everything above the store; it passes the same contract
suite as SQLite, so what works against it works against the real backends. Thread-safe: one
lock guards state and a condition wakes watchers.
"""
from __future__ import annotations

import bisect
import builtins
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Compacted
from . import codec
from .api import Compare, Delete, Event, EventType, Put, Record, TxnResult

#: Revisions of history kept before automatic compaction (etcd's API server compacts too).
DEFAULT_HISTORY = 10_000


@dataclass(frozen=True)
class _Entry:
    text: str
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True)
class _Change:
    type: EventType
    key: str
    revision: int
    text: str | None
    prev_text: str | None
    version: int


class MemoryStore:
    """In-process backend; ``history`` = revisions of watch history kept (0 = never compact)."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._data: dict[str, _Entry] = {}
        self._keys: list[str] = []  # sorted, for prefix scans
        self._log: list[_Change] = []  # ordered by revision
        self._revision = 0
        self._compacted = 0  # history before this revision is gone
        self._history = history
        self._closed = False

    # -- reads ---------------------------------------------------------------------------------
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def get(self, key: str) -> Record | None:
        with self._lock:
            entry = self._data.get(codec.check_key(key))
            return _record(key, entry) if entry else None

    def list(self, prefix: str) -> tuple[list[Record], int]:
        with self._lock:
            lo = bisect.bisect_left(self._keys, prefix)
            end = codec.prefix_end(prefix)
            hi = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
            return [_record(k, self._data[k]) for k in self._keys[lo:hi]], self._revision

    # -- writes --------------------------------------------------------------------------------
    def create(self, key: str, value: dict[str, Any]) -> Record:
        text = codec.encode(key, value)
        with self._lock:
            if codec.check_key(key) in self._data:
                raise codec.already_exists(key)
            self._apply([(key, text)])
            return _record(key, self._data[key])

    def update(self, key: str, value: dict[str, Any], mod_revision: int | None = None) -> Record:
        text = codec.encode(key, value)
        with self._lock:
            entry = self._data.get(codec.check_key(key))
            if entry is None:
                raise codec.not_found(key)
            if mod_revision is not None and entry.mod_revision != mod_revision:
                raise codec.stale(key, mod_revision, entry.mod_revision)
            self._apply([(key, text)])
            return _record(key, self._data[key])

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        with self._lock:
            entry = self._data.get(codec.check_key(key))
            if entry is None:
                return False
            if mod_revision is not None and entry.mod_revision != mod_revision:
                raise codec.stale(key, mod_revision, entry.mod_revision)
            self._apply([(key, None)])
            return True

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        codec.check_txn(compares, ops)
        encoded = [(op.key, codec.encode(op.key, op.value) if isinstance(op, Put) else None) for op in ops]
        with self._lock:
            failed = tuple(c.key for c in compares if _mod_revision(self._data.get(c.key)) != c.mod_revision)
            if failed:
                return TxnResult(False, self._revision, failed)
            self._apply(encoded)
            return TxnResult(True, self._revision)

    def compact(self, revision: int) -> None:
        with self._lock:
            self._compact(min(revision, self._revision + 1))

    # -- watch ---------------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int, timeout: float | None = None) -> Iterator[Event]:
        end = codec.prefix_end(prefix)
        next_rev = max(start_revision, 1)
        while True:
            with self._lock:
                if next_rev < self._compacted:
                    raise Compacted(next_rev, self._compacted)
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._revision < next_rev and not self._closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    self._lock.wait(left)
                if self._closed:
                    return
                if next_rev < self._compacted:
                    raise Compacted(next_rev, self._compacted)
                lo = bisect.bisect_left(self._log, next_rev, key=lambda c: c.revision)
                batch = [c for c in self._log[lo:] if c.key >= prefix and (end is None or c.key < end)]
                next_rev = self._revision + 1
            for change in batch:  # yield outside the lock: the consumer may write
                yield Event(
                    change.type, change.key, change.revision, codec.decode(change.text),
                    codec.decode(change.prev_text), change.version,
                )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # -- internals (lock held) -----------------------------------------------------------------
    def _apply(self, ops: builtins.list[tuple[str, str | None]]) -> None:
        """Write ops (key, text) / (key, None = delete), in order, at one new revision; no
        revision at all if nothing changes (only deletes of absent keys)."""
        if all(text is None and key not in self._data for key, text in ops):
            return
        rev = self._revision + 1
        for key, text in ops:
            old = self._data.get(key)
            if text is None:
                if old is not None:
                    del self._data[key]
                    self._keys.pop(bisect.bisect_left(self._keys, key))
                    self._log.append(_Change("DELETE", key, rev, None, old.text, 0))
                continue
            if old is None:
                bisect.insort(self._keys, key)
                entry = _Entry(text, rev, rev, 1)
            else:
                entry = _Entry(text, old.create_revision, rev, old.version + 1)
            self._data[key] = entry
            self._log.append(_Change("PUT", key, rev, text, None, entry.version))
        self._revision = rev
        if self._history and rev - self._compacted > 2 * self._history:
            self._compact(rev - self._history)
        self._lock.notify_all()

    def _compact(self, revision: int) -> None:
        if revision <= self._compacted:
            return
        cut = bisect.bisect_left(self._log, revision, key=lambda c: c.revision)
        del self._log[:cut]
        self._compacted = revision


def _record(key: str, entry: _Entry) -> Record:
    return Record(key, codec.decode(entry.text), entry.create_revision, entry.mod_revision, entry.version)


def _mod_revision(entry: _Entry | None) -> int:
    return 0 if entry is None else entry.mod_revision
