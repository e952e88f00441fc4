"""``podnet supervise``: what systemd does for a node's services, for the lab, where systemd is
not PID 1.

It starts each service (``agent/units.py``) once the file it requires exists, restarts it when
it exits — after a back-off that starts at 0.1 s and doubles up to 10 s while the service keeps
dying within 10 s of its start, like ``RestartSec`` with a start limit — and kills a service
that speaks the notify protocol but sent no ``WATCHDOG=1`` for its ``watchdog_sec``
(``WatchdogSec=``): a hung loop is restarted like a crashed one. As in systemd, the watchdog
runs once the service said ``READY=1`` (its first pass); before that it has
``START_TIMEOUT_SEC`` to start (``TimeoutStartSec=``), since a first pass over many pods on a
busy machine is slow, not hung.

Each service gets a notify socket of its own (an abstract socket: no file, no path-length
limit, private to the node's network namespace), so a message needs no sender credentials to
be attributed. What happened is written to ``supervisor.json`` (PIDs, restarts, the last exit
reason), which ``podnet status`` shows. Children die with the supervisor (``PR_SET_PDEATHSIG``)
and are stopped with SIGTERM, then SIGKILL, when it stops.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from podnet.agent.units import START_TIMEOUT_SEC, Service

STATUS_FILE = "supervisor.json"
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 10.0
STABLE_AFTER = 10.0  # a run this long resets the back-off
TICK = 0.05
STOP_GRACE = 10.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    service: Service
    log: str
    notify_path: str
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # monotonic
    started_wall: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    last_exit_wall: float | None = None
    backoff: float = BACKOFF_INITIAL
    next_start: float = 0.0
    last_ping: float = 0.0
    pings: int = 0
    ready: bool = False  # READY=1 received from this run
    sock: socket.socket | None = field(default=None, repr=False)

    def status(self) -> dict[str, Any]:
        running = self.proc is not None and self.proc.poll() is None
        return {"pid": self.proc.pid if running and self.proc else None, "running": running,
                "started": self.started_wall if running else None, "restarts": self.restarts,
                "last_exit": self.last_exit, "last_exit_time": self.last_exit_wall}


class Supervisor:
    """Runs ``services`` until ``stop`` is set; state in ``run_dir``, output in ``log_dir``."""

    def __init__(self, services: list[Service], run_dir: str, log_dir: str, log_prefix: str = "",
                 stop: threading.Event | None = None) -> None:
        self.run_dir = run_dir
        self.stop = stop or threading.Event()
        os.makedirs(run_dir, exist_ok=True)
        os.makedirs(log_dir, exist_ok=True)
        self.children = [Child(s, os.path.join(log_dir, f"{log_prefix}{s.name}.log"),
                               f"@podnet-supervise-{os.getpid()}-{s.name}") for s in services]
        self._written: str | None = None

    # -- one child -------------------------------------------------------------------------
    def _open_notify(self, child: Child) -> None:
        if child.sock is not None:
            return
        child.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        child.sock.bind("\0" + child.notify_path[1:])

    def _start(self, child: Child, now: float) -> None:
        self._open_notify(child)
        env = {**os.environ, "NOTIFY_SOCKET": child.notify_path}
        with open(child.log, "ab") as out:
            child.proc = subprocess.Popen(list(child.service.argv), stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        child.started, child.started_wall = now, time.time()
        child.last_ping, child.pings, child.ready = now, 0, False

    def _drain(self, child: Child, now: float) -> None:
        while child.sock is not None:
            try:
                data = child.sock.recv(4096)
            except BlockingIOError:
                return
            if b"WATCHDOG=1" in data or b"READY=1" in data:
                child.last_ping = now
                child.pings += 1
            if b"READY=1" in data:
                child.ready = True

    def _exited(self, child: Child, reason: str, now: float) -> None:
        child.last_exit, child.last_exit_wall = reason, time.time()
        child.restarts += 1
        child.proc = None
        ran = now - child.started
        child.backoff = BACKOFF_INITIAL if ran >= STABLE_AFTER else min(BACKOFF_MAX, child.backoff * 2)
        child.next_start = now + (BACKOFF_INITIAL if ran >= STABLE_AFTER else child.backoff)

    def _kill(self, child: Child, reason: str, now: float) -> None:
        assert child.proc is not None
        child.proc.kill()
        child.proc.wait()
        self._exited(child, reason, now)

    def step(self, now: float) -> None:
        """One look at every child: reap, watchdog, (re)start."""
        for child in self.children:
            if child.proc is not None:
                self._drain(child, now)
                code = child.proc.poll()
                if code is not None:
                    self._exited(child, exit_reason(code), now)
                elif child.service.watchdog_sec and child.ready and now - child.last_ping > child.service.watchdog_sec:
                    self._kill(child, f"watchdog: no WATCHDOG=1 for {child.service.watchdog_sec:g} s, killed", now)
                elif child.service.watchdog_sec and not child.ready and now - child.started > START_TIMEOUT_SEC:
                    self._kill(child, f"start timeout: no READY=1 within {START_TIMEOUT_SEC:g} s, killed", now)
            if child.proc is None and now >= child.next_start:
                need = child.service.requires_file
                if need is None or os.path.exists(need):
                    self._start(child, now)
        self.write_status()

    def write_status(self) -> None:
        status = {"pid": os.getpid(), "services": {c.service.name: c.status() for c in self.children}}
        text = json.dumps(status, indent=1, sort_keys=True)
        if text == self._written:
            return
        path = os.path.join(self.run_dir, STATUS_FILE)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        self._written = text

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step(time.monotonic())
                self.stop.wait(TICK)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for c in running:
            assert c.proc is not None
            c.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for c in running:
            assert c.proc is not None
            try:
                c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
        for c in self.children:
            if c.sock is not None:
                c.sock.close()
        try:
            os.unlink(os.path.join(self.run_dir, STATUS_FILE))
        except FileNotFoundError:
            pass


def read_status(run_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(run_dir, STATUS_FILE)) as f:
            status: dict[str, Any] = json.load(f)
            return status
    except (OSError, ValueError):
        return None


def write_spec(path: str, services: list[Service]) -> None:
    with open(path, "w") as f:
        json.dump([s.to_dict() for s in services], f, indent=1)


def read_spec(path: str) -> list[Service]:
    with open(path) as f:
        return [Service.from_dict(d) for d in json.load(f)]
