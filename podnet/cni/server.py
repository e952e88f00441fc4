"""The node agent's CNI socket: the fast path behind the thin ``podnet-cni`` executable.

The plugin process sends ``[4-byte length][KEY=VALUE\\0 …][\\0][stdin]`` plus its network
namespace as a file descriptor (SCM_RIGHTS); the answer is ``[4-byte exit code][stdout]``
(no JSON on the plugin side: importing ``json`` alone would double its start-up time). The
handler then runs in this long-lived process, where pyroute2, the store connection and IPAM
are already loaded, so an ADD costs the kernel work plus one interpreter start, not a full
import of podnet.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from podnet.telemetry import NULL
from podnet.telemetry.cni import CniMetrics

from .handler import Handler

MAX_REQUEST = 4 << 20


class _Conn(socketserver.BaseRequestHandler):
    server: CniServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        fds: list[int] = []
        metrics = self.server.metrics
        metrics.in_flight.inc()
        started, command = time.perf_counter(), ""
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
            if len(data) < 4:
                raise ValueError("short request")
            size = int.from_bytes(data[:4], "big")
            if size > MAX_REQUEST:
                raise ValueError(f"request of {size} bytes is too large")
            body = data[4:]
            while len(body) < size:
                more = sock.recv(min(65536, size - len(body)))
                if not more:
                    raise ValueError("truncated request")
                body += more
            head, sep, stdin = body.partition(b"\0\0")
            if not sep:
                raise ValueError("no end of environment")
            env = dict(item.decode().partition("=")[::2] for item in head.split(b"\0") if item)
            command = env.get("CNI_COMMAND", "")
            if len(fds) != 1:
                raise ValueError("expected the caller's network namespace as one file descriptor")
            code, out = self.server.handler.run(env, stdin, f"/proc/self/fd/{fds[0]}")
        except (ValueError, UnicodeDecodeError) as exc:
            code, out = 1, json.dumps({"cniVersion": "1.1.0", "code": 6, "msg": f"bad request from the plugin: {exc}"})
        finally:
            for fd in fds:
                os.close(fd)
            metrics.in_flight.inc(-1)
        elapsed = time.perf_counter() - started
        sock.sendall(code.to_bytes(4, "big", signed=True) + out.encode())
        sock.shutdown(socket.SHUT_WR)  # the plugin reads to the end: let it go before the bookkeeping
        metrics.answered(command, elapsed, _error_code(out) if code else None)  # in memory: nothing to lose


def _error_code(out: str) -> int:
    """The CNI error code of an error answer (999 when it carries none)."""
    try:
        return int(json.loads(out).get("code", 999))
    except (ValueError, AttributeError, TypeError):
        return 999


class CniServer(socketserver.UnixStreamServer):
    """Serves CNI requests on ``path`` (created 0600, removed on ``close``).

    Each connection is handed to a pool of long-lived worker threads rather than a thread
    started for it (``socketserver.ThreadingMixIn``): starting a thread was ~0.2 ms of every
    ADD between accept and the handler. ``WORKERS`` calls run at once; more queue (a burst of
    pod starts on a 2-CPU node gains nothing from more threads)."""

    WORKERS = 16
    allow_reuse_address = False
    request_queue_size = 1024  # a burst of pod starts must queue, not be refused

    def __init__(self, path: str, handler: Handler, metrics: CniMetrics | None = None) -> None:
        self.path = path
        self.handler = handler
        self.metrics = metrics if metrics is not None else CniMetrics(NULL)
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        if os.path.exists(path):  # a stale socket of a previous run (connect would be refused)
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
                probe.close()
                raise OSError(f"another agent is serving CNI on {path}")
            except ConnectionRefusedError:
                os.unlink(path)
            finally:
                probe.close()
        old = os.umask(0o177)
        try:
            super().__init__(path, _Conn)
        finally:
            os.umask(old)
        self._thread: threading.Thread | None = None
        self._workers = ThreadPoolExecutor(max_workers=self.WORKERS, thread_name_prefix="cni-call")

    def process_request(self, request: Any, client_address: Any) -> None:
        self._workers.submit(self._serve_one, request, client_address)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        """``ThreadingMixIn.process_request_thread``, on a pooled thread."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def start(self) -> CniServer:
        self._thread = threading.Thread(target=self.serve_forever, name="cni-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
