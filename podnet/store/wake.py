"""Sleep until a file in a directory is written: how a SQLite watcher waits for other processes'
commits without polling.

A commit in WAL mode appends to ``<db>-wal`` (a ``write``, so inotify reports ``IN_MODIFY`` on
the directory). A watcher that slept a fixed 5 ms between ``PRAGMA data_version`` checks cost
200 queries a second each, and a lab runs about twenty of them; waiting on inotify, an idle
watcher costs nothing and wakes as soon as a commit lands. The directory is watched, not the
file, so a WAL file that SQLite removes and creates again is still seen. ``max_sleep`` bounds
each wait anyway: where inotify is missing (another OS, a network filesystem that reports
nothing, the per-user watch limit reached) the watcher still polls, only less often."""
from __future__ import annotations

import ctypes
import os
import select
import time

_IN_MODIFY = 0x00000002
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


def _libc() -> ctypes.CDLL | None:
    try:  # the C library the interpreter already has loaded (find_library would run ldconfig)
        lib = ctypes.CDLL(None, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return lib
    except (OSError, AttributeError):
        return None


class DirectoryWake:
    """Wakes ``wait`` when a file in ``directory`` is written, created or renamed into it."""

    def __init__(self, directory: str, max_sleep: float) -> None:
        self.max_sleep = max_sleep
        self._fd = -1
        lib = _libc()
        if lib is None:
            return
        fd = lib.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        if lib.inotify_add_watch(fd, os.fsencode(directory), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return
        self._fd = fd

    @property
    def active(self) -> bool:
        """False when inotify could not be used: ``wait`` then just sleeps ``max_sleep``."""
        return self._fd >= 0

    def wait(self, timeout: float | None = None) -> None:
        """Return after a write in the directory since the last ``wait`` (at once if one came
        meanwhile), or after ``timeout`` (at most ``max_sleep``)."""
        limit = self.max_sleep if timeout is None else max(0.0, min(timeout, self.max_sleep))
        if self._fd < 0:
            time.sleep(limit)
            return
        ready, _, _ = select.select([self._fd], [], [], limit)
        if ready:
            try:
                while os.read(self._fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
