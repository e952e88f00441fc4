"""A SQLite watcher sleeps on inotify: a write in the store's directory wakes it long before its
safety-net sleep would, another process's commit reaches a watcher that way, and a directory
nothing writes to lets the wait run out."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from podnet.store.sqlite import SqliteStore
from podnet.store.wake import DirectoryWake

LONG = 30.0  # the safety net's sleep in these tests: a wake that waited for it would be a failure


def test_a_write_in_the_directory_wakes_the_wait(tmp_path: Path) -> None:
    wake = DirectoryWake(str(tmp_path), max_sleep=LONG)
    try:
        assert wake.active
        writer = threading.Timer(0.05, lambda: (tmp_path / "db-wal").write_bytes(b"frame"))
        writer.start()
        t0 = time.monotonic()
        wake.wait()
        assert time.monotonic() - t0 < LONG / 2
        writer.join()
    finally:
        wake.close()


def test_a_write_before_the_wait_is_not_missed(tmp_path: Path) -> None:
    wake = DirectoryWake(str(tmp_path), max_sleep=LONG)
    try:
        (tmp_path / "db-wal").write_bytes(b"frame")  # between a check and the wait
        t0 = time.monotonic()
        wake.wait()
        assert time.monotonic() - t0 < LONG / 2
    finally:
        wake.close()


def test_nothing_written_lets_the_wait_run_out(tmp_path: Path) -> None:
    wake = DirectoryWake(str(tmp_path), max_sleep=LONG)
    try:
        t0 = time.monotonic()
        wake.wait(timeout=0.2)
        assert 0.15 <= time.monotonic() - t0 < LONG / 2
    finally:
        wake.close()


def test_a_missing_directory_falls_back_to_sleeping(tmp_path: Path) -> None:
    wake = DirectoryWake(str(tmp_path / "absent"), max_sleep=0.01)
    assert not wake.active
    wake.wait()  # a plain sleep of max_sleep
    wake.close()


def test_another_process_commit_reaches_a_watcher(tmp_path: Path, monkeypatch) -> None:
    import podnet.store.sqlite as sqlite_mod

    monkeypatch.setattr(sqlite_mod, "WAKE_MAX_SLEEP", LONG)  # only inotify can deliver in time
    path = str(tmp_path / "store.db")
    store = SqliteStore(path)
    try:
        store.create("/k/0", {"n": 0})
        events = store.watch("/k/", store.revision() + 1, timeout=LONG)
        code = (f"from podnet.store.sqlite import SqliteStore; s = SqliteStore({path!r}); "
                "s.create('/k/1', {'n': 1}); s.close()")
        t0 = time.monotonic()
        writer = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
        event = next(events)
        assert (event.type, event.key, event.value) == ("PUT", "/k/1", {"n": 1})
        assert time.monotonic() - t0 < LONG / 2
        assert writer.wait(timeout=30) == 0
    finally:
        store.close()
