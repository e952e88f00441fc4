"""systemd's notify protocol from a loop: ``READY=1`` after the first pass, ``WATCHDOG=1`` while
the loop keeps turning.

A unit with ``Type=notify`` and ``WatchdogSec=`` (``podnet node install``) and the lab's
``podnet supervise`` both hand a process ``$NOTIFY_SOCKET``; a process that stops sending is
hung and gets restarted. The messages come from the loop itself, not a timer thread, so a pass
stuck on a lock or a dead socket stops them. Without ``$NOTIFY_SOCKET`` this does nothing.
"""
from __future__ import annotations

import os
import socket
import time

MIN_INTERVAL = 0.5  # seconds between two watchdog messages


class Notifier:
    def __init__(self, path: str | None = None) -> None:
        path = path if path is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path  # "@": Linux abstract socket
        self._sock: socket.socket | None = None
        self._ready = False
        self._last = -MIN_INTERVAL

    def send(self, message: str) -> None:
        if not self.address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self.address)
        except OSError:
            pass  # a supervisor that went away must not take the loop down

    def ready(self) -> None:
        if not self._ready:
            self._ready = True
            self.send("READY=1")

    def watchdog(self) -> None:
        now = time.monotonic()
        if now - self._last >= MIN_INTERVAL:
            self._last = now
            self.send("WATCHDOG=1")
