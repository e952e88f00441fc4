"""Differential property test: random operation sequences give identical results on the
memory and SQLite backends — return values, errors, revisions, contents and watch history."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.errors import PodnetError
from podnet.store.api import Compare, Delete, Put, Store
from podnet.store.memory import MemoryStore
from podnet.store.sqlite import SqliteStore

KEYS = ["/a/1", "/a/2", "/a/3", "/b/1", "/ab"]
keys = st.sampled_from(KEYS)
values = st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 3), max_size=2)
revisions = st.integers(0, 12)  # small, so compares sometimes hold

ops = st.one_of(
    st.tuples(st.just("create"), keys, values),
    st.tuples(st.just("update"), keys, values, st.none() | revisions),
    st.tuples(st.just("delete"), keys, st.none() | revisions),
    st.tuples(st.just("txn"),
              st.lists(st.builds(Compare, keys, revisions), max_size=2),
              st.lists(st.one_of(st.builds(Put, keys, values), st.builds(Delete, keys)), max_size=3)),
    st.tuples(st.just("compact"), revisions),
)


def run(store: Store, op: tuple[Any, ...]) -> Any:
    """One op → a comparable outcome (the result, or the error's type)."""
    try:
        if op[0] == "create":
            return store.create(op[1], op[2])
        if op[0] == "update":
            return store.update(op[1], op[2], op[3])
        if op[0] == "delete":
            return store.delete(op[1], op[2])
        if op[0] == "txn":
            result = store.txn(op[1], op[2])
            return (result.succeeded, result.revision, sorted(set(result.failed_keys)))
        store.compact(op[1])
        return None
    except PodnetError as exc:
        return type(exc).__name__


def history(store: Store) -> Any:
    try:
        return list(store.watch("", 1, timeout=0.0))
    except PodnetError as exc:
        return type(exc).__name__, getattr(exc, "compacted", None)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=25))
def test_memory_and_sqlite_agree(sequence: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        memory, sqlite = MemoryStore(), SqliteStore(str(Path(tmp) / "s.db"))
        try:
            for op in sequence:
                assert run(memory, op) == run(sqlite, op), op
                assert memory.revision() == sqlite.revision()
            assert memory.list("") == sqlite.list("")
            assert memory.list("/a/") == sqlite.list("/a/")
            assert history(memory) == history(sqlite)
            for start in (1, 3, memory.revision()):
                try:
                    m = [(e.revision, e.key) for e in memory.watch("/a/", start, timeout=0.0)]
                except PodnetError:
                    m = None
                try:
                    s = [(e.revision, e.key) for e in sqlite.watch("/a/", start, timeout=0.0)]
                except PodnetError:
                    s = None
                assert m == s
        finally:
            memory.close()
            sqlite.close()
