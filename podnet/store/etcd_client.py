"""HTTP/1.1 to the JSON gateway of an etcd cluster: endpoint failover, TLS client
authentication, and the at-most-once rule for writes.

The gateway does not do what etcd's Go client does, so this does it (etcd's client/v3
retry rules): every request goes to the pinned member, and on a failure to the next. Reads
are retried on any member until the request's deadline. A write is retried only when it never
left this machine (the connection could not be made, or the member said it has no leader);
once sent, a lost answer makes its outcome unknown (``OutcomeUnknown``), which the store
resolves by reading back.

Connections are kept per thread and member (``http.client``, so the code knows exactly whether
a request was sent) with TCP keepalive, so a member that vanished without a reset (a cut
cable, a blackholed route) is noticed within seconds even on an idle stream.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import OutcomeUnknown, PodnetError, Unavailable
from .config import TlsFiles

CONNECT_TIMEOUT = 1.0
REQUEST_TIMEOUT = 5.0
#: TCP keepalive: idle seconds, probe interval, probes — a dead peer is noticed in ≈ 11 s
KEEPALIVE = (5, 2, 3)
#: gateway errors after which a write certainly did not happen: safe on another member
NOT_APPLIED = ("no leader", "too many requests", "not capable", "stopped", "unhealthy cluster")


class GatewayError(PodnetError):
    """The member answered with an error (``code`` is the gRPC status code)."""

    def __init__(self, endpoint: str, path: str, status: int, message: str, code: int) -> None:
        super().__init__(f"etcd {path} at {endpoint} failed ({status}): {message}")
        self.endpoint = endpoint
        self.code = code
        self.reason = message


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if sock.family != socket.AF_UNIX:
        idle, interval, count = KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Endpoint:
    """One member's client URL: ``http(s)://host:port`` or ``unix(s):///path``."""

    def __init__(self, url: str, tls: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.secure = parts.scheme in ("https", "unixs")
        self.unix_path = parts.path if parts.scheme.startswith("unix") else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 2379
        self.tls = tls if self.secure else None
        if self.secure and tls is None:
            raise PodnetError(f"etcd endpoint {url} needs TLS files", hint="give --etcd-ca, --etcd-cert and --etcd-key")

    def connect(self, timeout: float) -> socket.socket:
        """A connected socket (TLS-wrapped for https/unixs); raises OSError if none could be made."""
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.unix_path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        _keepalive(sock)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        return sock


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose socket comes from ``Endpoint.connect``."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=connect_timeout)
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout

    def connect(self) -> None:
        self.sock = self.endpoint.connect(self.connect_timeout)


def tls_context(files: TlsFiles | None) -> ssl.SSLContext | None:
    if files is None:
        return None
    try:
        ctx = ssl.create_default_context(cafile=files.ca)
        ctx.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise PodnetError(f"cannot load the etcd TLS files ({files.ca}, {files.cert}, {files.key}): {exc}",
                          hint="check the paths and that the key matches the certificate") from exc
    return ctx


class EtcdClient:
    """Requests to the first member that answers, pinned to it until it fails."""

    def __init__(self, endpoints: Sequence[str], tls: TlsFiles | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT, request_timeout: float = REQUEST_TIMEOUT) -> None:
        if not endpoints:
            raise PodnetError("no etcd endpoints given")
        context = tls_context(tls)
        self.endpoints = [Endpoint(url, context) for url in endpoints]
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._pinned = 0
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        self.closed = False

    def describe(self) -> str:
        return ",".join(e.url for e in self.endpoints)

    # -- connections -----------------------------------------------------------------------
    def _conn(self, index: int) -> _Connection:
        conns: dict[int, _Connection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(index)
        if conn is None:
            conn = conns[index] = _Connection(self.endpoints[index], self.connect_timeout)
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self, index: int) -> None:
        conns: dict[int, _Connection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.pop(index, None)
        if conn is not None:
            conn.close()

    def order(self) -> list[int]:
        """Member indexes to try, the pinned one first."""
        n = len(self.endpoints)
        return [(self._pinned + i) % n for i in range(n)]

    def pin(self, index: int) -> None:
        self._pinned = index

    def open(self, index: int, timeout: float) -> _Connection:
        """A new, connected, unshared connection to member ``index`` (for a watch stream)."""
        conn = _Connection(self.endpoints[index], min(self.connect_timeout, timeout))
        conn.connect()
        with self._lock:
            self._all.append(conn)
        return conn

    # -- requests --------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any], *, write: bool = False) -> dict[str, Any]:
        """POST ``/v3/<path>``; reads go to any member until the deadline, a write raises
        ``OutcomeUnknown`` once it was sent and its answer lost."""
        if self.closed:
            raise PodnetError(f"etcd client for {self.describe()} is closed")
        payload = json.dumps(body).encode()
        deadline = time.monotonic() + self.request_timeout
        failures: dict[str, str] = {}
        while True:
            order = self.order()
            for tried, index in enumerate(order):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # a slow member gets its share of the time, not all of it: the others are tried too
                share = max(left / (len(order) - tried), min(left, 1.0))
                endpoint = self.endpoints[index]
                conn = self._conn(index)
                try:
                    if conn.sock is None:
                        conn.timeout = min(self.connect_timeout, left)
                        conn.connect()
                except OSError as exc:
                    failures[endpoint.url] = _reason(exc)
                    self._drop(index)
                    continue
                try:
                    conn.sock.settimeout(share)
                    conn.request("POST", "/v3/" + path, payload, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(index)
                    if write:
                        raise OutcomeUnknown(f"etcd {path} sent to {endpoint.url} got no answer ({_reason(exc)})",
                                             hint="the write may or may not have happened; read it back") from exc
                    failures[endpoint.url] = _reason(exc)
                    continue
                answer = _decode(data)
                if resp.status == 200:
                    self._pinned = index
                    return answer
                err = GatewayError(endpoint.url, path, resp.status, str(answer.get("error") or answer.get("message")
                                                                          or data[:200].decode(errors="replace")),
                                   int(answer.get("code", 0)))
                if _member_trouble(err.reason):
                    failures[endpoint.url] = err.reason
                    if write and not any(s in err.reason for s in NOT_APPLIED):
                        raise OutcomeUnknown(f"etcd {path} at {endpoint.url}: {err.reason}",
                                             hint="the write may or may not have happened; read it back") from err
                    continue
                raise err
            if time.monotonic() >= deadline:
                raise Unavailable(self.describe(), failures, self.request_timeout)
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self.closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def _decode(data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _member_trouble(reason: str) -> bool:
    """An error of the member or the cluster's state, not of the request: try another member."""
    return any(s in reason for s in ("leader", "timed out", "timeout", "too many requests", "not capable",
                                     "stopped", "unhealthy", "server is stopping", "Unavailable",
                                     "context deadline exceeded"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
