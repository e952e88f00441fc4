"""Running a command as a person at a terminal would: its standard streams on a pseudo-terminal."""
from __future__ import annotations

import os
import pty
import select
import subprocess


def in_terminal(argv: list[str], timeout: float = 60.0) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its standard streams; (exit code, all it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                raise AssertionError(f"{argv} wrote nothing for {timeout} s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        code = proc.wait(timeout=timeout)
    return code, out
