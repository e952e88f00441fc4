"""Real connection attempts between pods, in parallel, from inside each source pod's namespace.

A probe opens its socket with the calling thread switched into the source pod's network
namespace (the socket stays there), then connects from any thread: no fork, no exec, so a
full matrix of hundreds of cells takes about one timeout. podnet's policy drops silently, so
any answer means the packet went through: a TCP/SCTP accept or reset, a UDP reply or an ICMP
port-unreachable, an ICMP echo reply. Only silence until the timeout counts as blocked.
"""
from __future__ import annotations

import errno
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import netns as _netns

CONNECTED, REFUSED, TIMEOUT, UNSUPPORTED, ERROR = "connected", "refused", "timeout", "unsupported", "error"
REACHED = (CONNECTED, REFUSED)
ICMP = "ICMP"
#: what to try: (its key such as "80/TCP" or "ICMP", the port or None, the protocol)
Traffic = tuple[str, int | None, str]


@dataclass(frozen=True)
class ProbePod:
    """A pod to probe from and to: its ``ns/name``, network namespace (name or path) and IP."""

    key: str
    netns: str
    ip: str


@dataclass(frozen=True)
class ProbeResult:
    src: str
    dst: str
    key: str  # "80/TCP" or "ICMP"
    outcome: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def reached(self) -> bool:
        return self.outcome in REACHED

    def to_dict(self) -> dict[str, object]:
        return {"from": self.src, "to": self.dst, "traffic": self.key, "outcome": self.outcome,
                "detail": self.detail, "seconds": round(self.seconds, 4)}


def _socket_in(ns: str, family: int, kind: int, proto: int) -> socket.socket:
    with _netns.enter(ns):
        return socket.socket(family, kind, proto)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ping(ns: str, ip: str, timeout: float) -> tuple[str, str]:
    """One ICMP echo through a raw socket in the source namespace."""
    s = _socket_in(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with s:
        ident = random.getrandbits(16)  # a fresh conntrack tuple: an old echo flow must not count
        seq = int(time.monotonic() * 1000) & 0xFFFF
        payload = b"podnet-probe"
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
        s.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([s], [], [], left)
            if not ready:
                break
            data, addr = s.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident and rseq == seq and addr[0] == ip:
                return CONNECTED, "echo reply"
        return TIMEOUT, f"no echo reply within {timeout:g}s"


def probe(src_ns: str, dst_ip: str, port: int | None, protocol: str, timeout: float = 1.0) -> tuple[str, str]:
    """One attempt from inside ``src_ns``; (outcome, detail)."""
    protocol = protocol.upper()
    family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
    try:
        if protocol == ICMP:
            return _ping(src_ns, dst_ip, timeout)
        if protocol == "UDP":
            s = _socket_in(src_ns, family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        else:
            proto = socket.IPPROTO_SCTP if protocol == "SCTP" else socket.IPPROTO_TCP
            s = _socket_in(src_ns, family, socket.SOCK_STREAM, proto)
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
            return UNSUPPORTED, f"{protocol} sockets are not available in this kernel"
        return ERROR, str(exc)
    with s:
        s.settimeout(timeout)
        try:
            s.connect((dst_ip, port))
            if protocol == "UDP":
                s.send(b"podnet-probe\n")
                s.recv(2048)
            return CONNECTED, ""
        except ConnectionRefusedError:
            return REFUSED, "refused (the packet reached the destination)"
        except TimeoutError:
            return TIMEOUT, f"no answer within {timeout:g}s"
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return ERROR, f"unreachable: {exc.strerror}"
            return ERROR, str(exc)


class UdpResponders:
    """UDP echo sockets inside every destination pod for the probed ports, served by one thread.

    A UDP probe to a port nobody listens on relies on an ICMP port-unreachable, which the
    kernel rate-limits per destination (``icmp_ratelimit``): without an answerer, allowed cells
    would read as timeouts. A port a pod already serves (bind fails) is left to the pod.
    """

    def __init__(self, pods: Sequence[ProbePod], ports: Sequence[int]) -> None:
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        for pod in pods:
            family = socket.AF_INET6 if ":" in pod.ip else socket.AF_INET
            for port in ports:
                try:
                    s = _socket_in(pod.netns, family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
                except OSError:
                    continue
                try:
                    s.bind((pod.ip, port))
                except OSError:
                    s.close()
                    continue
                s.setblocking(False)
                self.sockets.append(s)

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self.sockets, [], [], 0.05)
            for s in ready:
                try:
                    data, peer = s.recvfrom(2048)
                    s.sendto(data, peer)
                except OSError:
                    pass

    def __enter__(self) -> UdpResponders:
        if self.sockets:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for s in self.sockets:
            s.close()


def probe_all(pods: Sequence[ProbePod], traffic: Sequence[Traffic], *, timeout: float = 1.0, workers: int = 64,
              progress: Callable[[int, int], None] | None = None) -> list[ProbeResult]:
    """Every pod to every pod (in the order given) for every kind of ``traffic``: each
    attempt's outcome, traffic by traffic, then source by source, then destination."""
    jobs = [(k, port, proto, i, j) for k, port, proto in traffic for i in range(len(pods)) for j in range(len(pods))]
    results: list[ProbeResult | None] = [None] * len(jobs)
    done = 0
    lock = threading.Lock()

    def run(n: int) -> None:
        nonlocal done
        key, port, proto, i, j = jobs[n]
        t0 = time.perf_counter()
        outcome, detail = probe(pods[i].netns, pods[j].ip, port, proto, timeout)
        results[n] = ProbeResult(pods[i].key, pods[j].key, key, outcome, detail, time.perf_counter() - t0)
        if progress:
            with lock:
                done += 1
                progress(done, len(jobs))

    udp_ports = sorted({port for _k, port, proto in traffic if proto == "UDP" and port is not None})
    with UdpResponders(pods if udp_ports else [], udp_ports), \
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        list(pool.map(run, range(len(jobs))))
    return [r for r in results if r is not None]
