"""Processes the lab starts (node agents, routing loops, controllers): started detached with
their PID recorded, stopped by that PID only after checking it is still the same process."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from podnet.kernel import netns


@dataclass(frozen=True)
class ProcessRecord:
    name: str  # "routing/k8s-master01"
    pid: int
    argv: tuple[str, ...]
    log: str
    netns: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcessRecord:
        return cls(name=d["name"], pid=d["pid"], argv=tuple(d["argv"]), log=d["log"], netns=d.get("netns"))


def start(name: str, argv: Sequence[str], log: str, ns: str | None = None,
          env: dict[str, str] | None = None, cwd: str | None = None) -> ProcessRecord:
    """Start ``argv`` (inside ``ns`` if given) in its own session, output appended to ``log``."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    full = netns.nsenter_argv(ns, argv) if ns else list(argv)
    with open(log, "ab") as out:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})}, cwd=cwd)
    return ProcessRecord(name=name, pid=proc.pid, argv=tuple(argv), log=log, netns=ns)


def alive(rec: ProcessRecord) -> bool:
    """Still running, not a zombie, and still the process we started (PIDs get reused)."""
    try:
        with open(f"/proc/{rec.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        cmd = _cmdline(rec.pid)
    except (OSError, IndexError):
        return False
    want = [a.encode() for a in rec.argv]
    if cmd[: len(want)] == want:
        return True
    # Just started: nsenter has not exec'd the command yet.
    wrapped = [a.encode() for a in netns.nsenter_argv(rec.netns, rec.argv)] if rec.netns else []
    return bool(wrapped) and cmd[: len(wrapped)] == wrapped


def _cmdline(pid: int) -> list[bytes]:
    """The process's argv. Popen returns as soon as exec is under way, a moment before the
    kernel sets up the new command line (it reads empty then): wait that moment out."""
    for _ in range(200):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        if raw:
            return raw.split(b"\0")
        time.sleep(0.001)
    return [b""]  # a kernel thread, or an exec that never finished: not a command we started


def stop(rec: ProcessRecord, timeout: float = 5.0) -> bool:
    """SIGTERM, wait, then SIGKILL. False if it was not running (idempotent)."""
    return bool(stop_all([rec], timeout))


def _reap(pid: int) -> None:
    """Collect our own child's exit status, if it is ours (so it does not linger as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_all(recs: Sequence[ProcessRecord], timeout: float = 10.0) -> list[ProcessRecord]:
    """Stop many at once: SIGTERM to all, one shared grace period, then SIGKILL the rest.
    Returns those that were running."""
    running = [r for r in recs if alive(r)]
    for r in running:
        try:
            os.kill(r.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = list(running)
    while left and time.monotonic() < deadline:
        for r in left:
            _reap(r.pid)
        left = [r for r in left if alive(r)]
        time.sleep(0.02)
    for r in left:
        try:
            os.kill(r.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(r.pid)
    return running
