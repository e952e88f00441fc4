"""A raw nfnetlink_log (NFLOG) reader: the packets nft ``log group N`` statements send up.

pyroute2 speaks no NFLOG, so this is the protocol itself: bind the group (``NFULNL_MSG_CONFIG``),
ask for the packet's first ``COPY_RANGE`` bytes (the IP and transport headers), and set a flush
timeout of 0 and a queue threshold of 1 so each log is delivered at once (the kernel's default
batching holds a log for about half a second). The socket is opened inside the node's
namespace: NFLOG groups are per network namespace.

When the reader falls behind, the kernel drops logs (``ENOBUFS`` here) and never the packet:
``lost`` counts those overruns.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

from . import netns as _netns

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH = 1, 2, 3, 4, 5
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2
NFULA_PACKET_HDR, NFULA_PAYLOAD, NFULA_PREFIX = 1, 9, 10
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
COPY_RANGE = 80  # an IPv4/IPv6 header and the ports
RCVBUF = 4 << 20
_PROTOS = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP", 58: "ICMPv6"}


@dataclass(frozen=True)
class LoggedPacket:
    """One logged packet: the rule's prefix and what its headers say."""

    prefix: str
    src: str
    dst: str
    protocol: str
    sport: int
    dport: int
    length: int  # the packet's full length, from its IP header


def _attr(kind: int, data: bytes) -> bytes:
    pad = (4 - len(data) % 4) % 4
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * pad


def _config(group: int, seq: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group)) + b"".join(attrs)
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def _attrs(data: bytes, off: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[off + 4:off + length]
        off += (length + 3) & ~3
    return out


def parse_headers(prefix: str, payload: bytes) -> LoggedPacket | None:
    """The addresses, protocol, ports and length of a logged IPv4 or IPv6 packet."""
    if not payload:
        return None
    version = payload[0] >> 4
    if version == 4 and len(payload) >= 20:
        ihl = (payload[0] & 0x0F) * 4
        length, proto = struct.unpack_from("!H", payload, 2)[0], payload[9]
        src, dst = str(ipaddress.IPv4Address(payload[12:16])), str(ipaddress.IPv4Address(payload[16:20]))
        l4 = ihl
    elif version == 6 and len(payload) >= 40:
        length, proto = 40 + struct.unpack_from("!H", payload, 4)[0], payload[6]
        src, dst = str(ipaddress.IPv6Address(payload[8:24])), str(ipaddress.IPv6Address(payload[24:40]))
        l4 = 40
    else:
        return None
    sport = dport = 0
    if proto in (6, 17, 132) and len(payload) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", payload, l4)
    return LoggedPacket(prefix, src, dst, _PROTOS.get(proto, str(proto)), sport, dport, length)


class NflogReader:
    """A bound NFLOG group in one namespace (None: this one). ``fileno()`` for select/poll."""

    def __init__(self, group: int, netns: str | None = None, *, timeout: int = 0, qthresh: int = 1,
                 nlbufsiz: int = 0) -> None:
        """``timeout`` (hundredths of a second) and ``qthresh`` (logs) say when the kernel sends a
        batch: 0 and 1, at once; ``nlbufsiz`` the batch's buffer (0: the kernel's 4 KiB)."""
        self.group = group
        self.lost = 0
        with _netns.enter(netns) if netns else nullcontext():
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, 0))
            self._request(_attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND)))
            self._request(_attr(NFULA_CFG_MODE, struct.pack("!IBB", COPY_RANGE, NFULNL_COPY_PACKET, 0)),
                          _attr(NFULA_CFG_TIMEOUT, struct.pack("!I", timeout)),
                          _attr(NFULA_CFG_QTHRESH, struct.pack("!I", qthresh)),
                          *([_attr(NFULA_CFG_NLBUFSIZ, struct.pack("!I", nlbufsiz))] if nlbufsiz else []))
        except BaseException:
            self.sock.close()
            raise
        self._seq = 2

    def _request(self, *attrs: bytes) -> None:
        """One config request and its acknowledgement (an error raises OSError)."""
        self.sock.sendto(_config(self.group, 1, *attrs), (0, 0))
        while True:  # logs may arrive before the acknowledgement: skip them
            data, off = self.sock.recv(1 << 18), 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, off + 16)[0]
                    if code:
                        raise OSError(code, f"NFLOG group {self.group}: {errno.errorcode.get(code, code)}")
                    return
                if length < 16:
                    break
                off += (length + 3) & ~3

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> Iterator[LoggedPacket]:
        """The packets in one receive (blocks unless the socket has a timeout)."""
        try:
            data = self.sock.recv(1 << 18)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped logs while we were behind
                self.lost += 1
                return
            raise
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                attrs = _attrs(data[off:off + length], 20)
                prefix = attrs.get(NFULA_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
                pkt = parse_headers(prefix, attrs.get(NFULA_PAYLOAD, b""))
                if pkt is not None:
                    yield pkt
            off += (length + 3) & ~3

    def close(self) -> None:
        try:
            self._request(_attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_UNBIND)))
        except OSError:
            pass
        self.sock.close()
