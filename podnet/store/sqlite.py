"""SqliteStore: the embedded default backend, shared safely by many processes on one host.

Why SQLite: the CLI, every CNI plugin execution and the node agents (each in its own network
namespace, all on one filesystem) must see one consistent, revisioned state without a server
process. WAL mode lets readers run while one writer commits; every write is one
``BEGIN IMMEDIATE`` transaction that bumps one global revision, so revisions are assigned in
commit order and a reader can never see revision N+1 without N (no gaps for watchers).

Tables: ``kv`` (current values with create/mod revision and version, like etcd's keyspace),
``history`` (one row per change, read by watch; compacted automatically), ``meta`` (revision,
compaction point). Watchers in other processes check ``PRAGMA data_version`` — a counter that
moves only when another connection commits — each time inotify reports a write in the store's
directory (``wake.py``; every few milliseconds where inotify is missing), so an idle watch
costs nothing and delivery takes about a millisecond.

Durability: ``synchronous=NORMAL`` in WAL mode survives a crash of any process; a power cut
may lose the last transactions but never corrupts the file (etcd fsyncs every write; podnet's
embedded state is rebuilt by the agents' resync anyway).
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import Compacted, PodnetError
from . import codec
from .api import Compare, Delete, Event, Put, Record, TxnResult
from .wake import DirectoryWake

SCHEMA_VERSION = 1
#: Revisions of history kept before automatic compaction.
DEFAULT_HISTORY = 10_000
#: How often a watcher checks for commits by other processes where inotify is missing (seconds).
POLL_INTERVAL = 0.005
#: The longest a watcher sleeps on inotify between two checks (a safety net: a commit wakes it).
WAKE_MAX_SLEEP = 0.25
#: How long a writer waits for another process's write transaction before giving up (seconds).
LOCK_TIMEOUT = 30.0
_WATCH_BATCH = 2000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS history (revision INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " type INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, prev_value TEXT, version INTEGER NOT NULL,"
    " PRIMARY KEY (revision, seq)) WITHOUT ROWID",
    "INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_PUT, _DELETE = 0, 1
_T = TypeVar("_T")


class SqliteStore:
    """The Store protocol over one SQLite file; cheap to open (the CNI plugin opens it per call)."""

    def __init__(self, path: str, history: int = DEFAULT_HISTORY, poll_interval: float = POLL_INTERVAL) -> None:
        self.path = path
        self._history = history
        self._poll = poll_interval
        self._lock = threading.RLock()
        self._closed = False
        self._pid = os.getpid()
        self._conn = _connect(path)
        _ensure_schema(self._conn, path)

    # -- reads ---------------------------------------------------------------------------------
    def revision(self) -> int:
        with self._lock:
            return _meta(self._db(), "revision")

    def get(self, key: str) -> Record | None:
        codec.check_key(key)
        with self._lock:
            row = self._db().execute(
                "SELECT value, create_rev, mod_rev, version FROM kv WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else Record(key, codec.decode(row[0]), row[1], row[2], row[3])

    def list(self, prefix: str) -> tuple[list[Record], int]:
        end = codec.prefix_end(prefix)
        sql = "SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key >= ?"
        args: tuple[str, ...] = (prefix,)
        if end is not None:
            sql, args = sql + " AND key < ?", (prefix, end)
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN")  # one read snapshot for the rows and the revision
            try:
                rows = conn.execute(sql + " ORDER BY key", args).fetchall()
                revision = _meta(conn, "revision")
            finally:
                conn.execute("COMMIT")
        return [Record(k, codec.decode(v), c, m, n) for k, v, c, m, n in rows], revision

    # -- writes --------------------------------------------------------------------------------
    def create(self, key: str, value: dict[str, Any]) -> Record:
        text = codec.encode(codec.check_key(key), value)

        def run(conn: sqlite3.Connection, rev: int) -> Record:
            if conn.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone():
                raise codec.already_exists(key)
            create_rev, version = self._put(conn, rev, key, text)
            return Record(key, codec.decode(text), create_rev, rev, version)

        return self._write(run)

    def update(self, key: str, value: dict[str, Any], mod_revision: int | None = None) -> Record:
        text = codec.encode(codec.check_key(key), value)

        def run(conn: sqlite3.Connection, rev: int) -> Record:
            row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise codec.not_found(key)
            if mod_revision is not None and row[0] != mod_revision:
                raise codec.stale(key, mod_revision, row[0])
            create_rev, version = self._put(conn, rev, key, text)
            return Record(key, codec.decode(text), create_rev, rev, version)

        return self._write(run)

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        codec.check_key(key)

        def run(conn: sqlite3.Connection, rev: int) -> bool:
            row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                return False
            if mod_revision is not None and row[0] != mod_revision:
                raise codec.stale(key, mod_revision, row[0])
            return self._delete(conn, rev, key)

        return self._write(run)

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        codec.check_txn(compares, ops)
        encoded = [(op.key, codec.encode(op.key, op.value) if isinstance(op, Put) else None) for op in ops]

        def run(conn: sqlite3.Connection, rev: int) -> TxnResult:
            # One batched lookup serves the compares and the puts' version bookkeeping, so a
            # 10,000-object apply costs a few statements, not 30,000.
            known = _lookup(conn, {c.key for c in compares} | {key for key, _ in encoded})
            failed = tuple(c.key for c in compares if known.get(c.key, (0, 0, 0))[0] != c.mod_revision)
            if failed:
                return TxnResult(False, rev - 1, failed)
            rows = []
            for key, text in encoded:
                if text is None:
                    self._delete(conn, rev, key)
                    continue
                _, create_rev, version = known.get(key, (0, rev, 0))
                rows.append((key, text, create_rev, rev, version + 1))
                self._note(rev, _PUT, key, text, None, version + 1)
            conn.executemany("INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, version)"
                             " VALUES (?, ?, ?, ?, ?)", rows)
            return TxnResult(True, rev if self._pending else rev - 1)

        return self._write(run)

    def compact(self, revision: int) -> None:
        def run(conn: sqlite3.Connection, rev: int) -> None:
            _compact(conn, min(revision, rev))

        self._write(run, commit=True)

    # -- watch ---------------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int, timeout: float | None = None) -> Iterator[Event]:
        """Polls its own connection, so it sees commits from every process (see module doc)."""
        end = codec.prefix_end(prefix)
        sql = ("SELECT revision, seq, type, key, value, prev_value, version FROM history"
               " WHERE (revision, seq) > (?, ?) AND key >= ?" + ("" if end is None else " AND key < ?")
               + f" ORDER BY revision, seq LIMIT {_WATCH_BATCH}")
        conn = _connect(self.path)
        # registered before the first check, so a commit between a check and the wait wakes it
        wake = DirectoryWake(os.path.dirname(os.path.abspath(self.path)), max_sleep=WAKE_MAX_SLEEP)
        try:
            after = (max(start_revision, 1) - 1, 1 << 62)  # the last (revision, seq) delivered
            seen_version = None
            idle_since = time.monotonic()
            while not self._closed:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen_version:
                    seen_version = version
                    while True:  # drain in batches so a long history does not load at once
                        conn.execute("BEGIN")
                        try:
                            compacted = _meta(conn, "compacted")
                            if after[0] + 1 < compacted:
                                raise Compacted(after[0] + 1, compacted)
                            rows = conn.execute(sql, (*after, prefix) + (() if end is None else (end,))).fetchall()
                        finally:
                            conn.execute("COMMIT")
                        for rev, seq, typ, key, value, prev, ver in rows:
                            after = (rev, seq)
                            yield Event("PUT" if typ == _PUT else "DELETE", key, rev,
                                        codec.decode(value), codec.decode(prev), ver)
                        if rows:
                            idle_since = time.monotonic()
                        if len(rows) < _WATCH_BATCH:
                            break
                if timeout is not None and time.monotonic() - idle_since >= timeout:
                    return
                if wake.active:
                    wake.wait(None if timeout is None else timeout - (time.monotonic() - idle_since))
                else:
                    time.sleep(self._poll)
        finally:
            wake.close()
            conn.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    # -- internals -----------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """The connection, reopened in a forked child (SQLite connections must not cross fork)."""
        if self._closed:
            raise PodnetError(f"store {self.path} is closed")
        if self._pid != os.getpid():
            self._pid, self._conn = os.getpid(), _connect(self.path)
        return self._conn

    def _write(self, run: Callable[[sqlite3.Connection, int], _T], commit: bool = False) -> _T:
        """Run ``run(conn, next_revision)`` in one write transaction; commit only if it changed
        a key (``_put``/``_delete``/``txn`` queue history rows) or ``commit``; roll back on any error."""
        with self._lock:
            return self._transaction(self._db(), run, commit)

    def _transaction(self, conn: sqlite3.Connection, run: Callable[[sqlite3.Connection, int], _T], commit: bool) -> _T:
        _begin_immediate(conn, self.path)
        try:
            rev = _meta(conn, "revision") + 1
            self._pending: list[tuple[Any, ...]] = []
            result = run(conn, rev)
            if self._pending:
                conn.executemany("INSERT INTO history (revision, seq, type, key, value, prev_value, version)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending)
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (rev,))
                if self._history and rev - _meta(conn, "compacted") > 2 * self._history:
                    _compact(conn, rev - self._history)
                conn.execute("COMMIT")
            else:
                conn.execute("COMMIT" if commit else "ROLLBACK")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _put(self, conn: sqlite3.Connection, rev: int, key: str, text: str) -> tuple[int, int]:
        create_rev, version = conn.execute(
            "INSERT INTO kv (key, value, create_rev, mod_rev, version) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev,"
            " version = kv.version + 1 RETURNING create_rev, version",
            (key, text, rev, rev),
        ).fetchone()
        self._note(rev, _PUT, key, text, None, version)
        return create_rev, version

    def _delete(self, conn: sqlite3.Connection, rev: int, key: str) -> bool:
        row = conn.execute("DELETE FROM kv WHERE key = ? RETURNING value", (key,)).fetchone()
        if row is None:
            return False
        self._note(rev, _DELETE, key, None, row[0], 0)
        return True

    def _note(self, rev: int, typ: int, key: str, value: str | None, prev: str | None, version: int) -> None:
        """Queue a history row; ``_write`` inserts them all at commit, in op order."""
        self._pending.append((rev, len(self._pending) + 1, typ, key, value, prev, version))


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False)
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: only the first opener pays
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables once; later opens only read ``user_version`` (cheap, no write lock).
    The store holds every secret of the cluster's state: its files are the owner's only."""
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    for name in (path, path + "-wal", path + "-shm"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, SCHEMA_VERSION):
            raise PodnetError(f"store file has schema version {found}, this podnet knows {SCHEMA_VERSION}",
                              hint="use the podnet version that created it, or start from an empty state directory")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _begin_immediate(conn: sqlite3.Connection, path: str) -> None:
    """Take the write lock, retrying with short random sleeps.

    SQLite's own busy handler backs off to 100 ms sleeps, which wrecks tail latency when a few
    processes write at once; short jittered retries keep waits near one commit's duration.
    (A blocking flock queue in front of it was measured too: no better on a 2-CPU machine,
    where the tail is CPU scheduling, so the simpler retry stays.)
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        delay = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise PodnetError(
                        f"store {path} stayed locked by another process for {LOCK_TIMEOUT:.0f} s",
                        hint="a podnet process may be hung; check `podnet` processes and retry",
                    ) from exc
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 0.004)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT * 1000)}")


def _lookup(conn: sqlite3.Connection, keys: set[str]) -> dict[str, tuple[int, int, int]]:
    """key → (mod_rev, create_rev, version) for those of ``keys`` that exist."""
    found: dict[str, tuple[int, int, int]] = {}
    ordered = sorted(keys)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i:i + 500]
        found.update((k, (m, c, v)) for k, m, c, v in conn.execute(
            f"SELECT key, mod_rev, create_rev, version FROM kv WHERE key IN ({','.join('?' * len(chunk))})", chunk))
    return found


def _meta(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])


def _compact(conn: sqlite3.Connection, revision: int) -> None:
    if revision <= _meta(conn, "compacted"):
        return
    conn.execute("DELETE FROM history WHERE revision < ?", (revision,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
