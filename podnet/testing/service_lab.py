"""Servers that say who answered and clients that ask, inside lab namespaces: what the proxy's
kernel tests and benchmark check a Service with.

A ``NameServer`` listens in a pod's namespace (TCP and UDP on one port) and answers every
connection or datagram with the pod's name, recording the client address it saw (so a test
sees whether the source was kept or masqueraded). ``ask_tcp``/``ask_udp`` connect from a
namespace and return the answer, or the error (``refused`` within milliseconds, ``timeout``).
"""
from __future__ import annotations

import errno
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from podnet.kernel import netns


@dataclass
class NameServer:
    """Answers with ``name`` on TCP and UDP ``port`` of ``ip`` inside namespace ``ns``."""

    ns: str
    ip: str
    port: int
    name: str
    peers: list[str] = field(default_factory=list)
    _socks: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> NameServer:
        with netns.enter(self.ns):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((self.ip, self.port))
        tcp.listen(256)
        udp.bind((self.ip, self.port))
        for s in (tcp, udp):
            s.settimeout(0.2)
        self._socks = [tcp, udp]
        threading.Thread(target=self._tcp, args=(tcp,), daemon=True).start()
        threading.Thread(target=self._udp, args=(udp,), daemon=True).start()
        return self

    def _tcp(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = s.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append(addr[0])
            with conn:
                try:
                    conn.sendall(self.name.encode())
                except OSError:
                    pass

    def _udp(self, s: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                _, addr = s.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            self.peers.append(addr[0])
            try:
                s.sendto(self.name.encode(), addr)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        for s in self._socks:
            s.close()


def _exchange(ns: str, ip: str, port: int, request: bytes, timeout: float, source: str | None = None) -> bytes | str:
    """Connect from ``ns`` (from address ``source`` when given), send ``request``, read until
    the server closes: the bytes read, or ``refused``/``timeout``/``error: …``."""
    with netns.enter(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with s:
        s.settimeout(timeout)
        try:
            if source:
                s.bind((source, 0))
            s.connect((ip, port))
            if request:
                s.sendall(request)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return "refused" if exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET) else f"error: {exc}"


def ask_tcp(ns: str, ip: str, port: int, timeout: float = 1.0, source: str | None = None) -> str:
    """The name a ``NameServer`` answers with, or ``refused``/``timeout``/``error: …``."""
    got = _exchange(ns, ip, port, b"", timeout, source)
    return got if isinstance(got, str) else (got.decode() or "closed")


def http_get(ns: str, ip: str, port: int = 80, timeout: float = 1.0) -> str:
    """The body of ``GET /`` from a built-in nginx pod (its name), or ``refused``/``timeout``."""
    got = _exchange(ns, ip, port, f"GET / HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode(), timeout)
    return got if isinstance(got, str) else (got.partition(b"\r\n\r\n")[2].decode().strip() or "empty")


ECHO_SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4096)
def echo(c):
    try:
        while True:
            d = c.recv(64)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"""


class EchoServer:
    """An accept-and-echo TCP server process inside a namespace (its own interpreter, so a
    benchmark's threads do not share its lock)."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        self.proc = netns.popen_in(ns, ["/usr/bin/python3", "-IS", "-c", ECHO_SERVER, ip, str(port)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class UdpClient:
    """One UDP socket in ``ns`` with a fixed source port, as a long-lived UDP client has: its
    conntrack entry lives as long as it keeps sending."""

    def __init__(self, ns: str, port: int = 0) -> None:
        with netns.enter(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", port))

    def ask(self, ip: str, port: int, timeout: float = 0.5) -> str:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendto(b"?", (ip, port))
            data, _ = self.sock.recvfrom(256)
            return data.decode()
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"

    def close(self) -> None:
        self.sock.close()


def timed(fn: object, *args: object) -> tuple[str, float]:
    """An ``ask_*`` call and its duration in seconds."""
    t0 = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return str(out), time.perf_counter() - t0
