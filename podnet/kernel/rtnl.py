"""A minimal synchronous rtnetlink client for the CNI hot path (veth, address, routes).

pyroute2 is the general netlink layer of podnet (dumps, read-back and diffing in the
appliers, CHECK). Its 0.9 synchronous API runs every request through an asyncio loop, and for
the few requests of a pod ADD that overhead alone was more than the kernel's own work (the
figures are in docs/cni.md). These few fixed-shape messages are packed with ``struct`` and sent
on a plain ``AF_NETLINK`` socket instead. The socket is opened inside the target
namespace (``netns.enter``) and stays bound to it.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator, Sequence

from . import netns

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_SETNEIGHTBL = 67
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x8, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 5, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_AF_SPEC, IFLA_INET_CONF = 26, 1
IPV4_DEVCONF_PROXY_ARP = 3  # the attribute type is the devconf index + 1, as in /proc/sys/net/ipv4/conf
IPV4_DEVCONF_RP_FILTER = 8
NDTA_NAME, NDTA_PARMS = 1, 6
NDTPA_IFINDEX, NDTPA_PROXY_DELAY = 1, 13
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTN_UNICAST = 254, 1
RTPROT_BOOT, RTPROT_STATIC = 3, 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDTMSG = struct.Struct("=BxH")

Message = tuple[int, int, bytes]  # (type, flags, body) of one request, for ``Rtnl.batch``


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _family(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


class Rtnl:
    """One rtnetlink socket in one namespace (None = the calling thread's current one)."""

    def __init__(self, ns: str | None = None) -> None:
        if ns is None or _is_current(ns):
            self.sock = self._open()
        else:
            with netns.enter(ns):
                self.sock = self._open()
        self.seq = 0

    @staticmethod
    def _open() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        s.bind((0, 0))
        return s

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -----------------------------------------------------------------------------

    def _request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request with ACK; return the non-error messages received before the ACK."""
        self.seq += 1
        seq = self.seq
        self.sock.sendto(_NLMSGHDR.pack(16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body,
                         (0, 0))
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _f, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
                payload = data[off + 16: off + length]
                off += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return out
                out.append((mtype, payload))

    def batch(self, messages: Sequence[Message], exist_ok: Sequence[bool] = ()) -> None:
        """Send several requests in one datagram and wait for all their ACKs.

        The kernel handles the messages of one datagram in order, each to the end, and ACKs
        each (an error does not stop the ones after it), so a pod's side of the wiring is one
        system call and one wake-up instead of one per request. ``exist_ok[i]``: EEXIST for
        message i is not a failure (a route a second interface of the pod already added); the
        first other error is raised once every ACK is in."""
        first = self.seq + 1
        packed = []
        for msg_type, flags, body in messages:
            self.seq += 1
            packed.append(_NLMSGHDR.pack(16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
                          + body)
        self.sock.sendto(b"".join(packed), (0, 0))
        pending = set(range(first, self.seq + 1))
        error = 0
        while pending:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _f, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
                if mtype == NLMSG_ERROR and mseq in pending:
                    pending.discard(mseq)
                    (code,) = struct.unpack_from("=i", data, off + 16)
                    i = mseq - first
                    if code and not (code == -errno.EEXIST and i < len(exist_ok) and exist_ok[i]) and not error:
                        error = -code
                off += (length + 3) & ~3
        if error:
            raise OSError(error, os.strerror(error))

    # ---- links ---------------------------------------------------------------------------------

    def link_index(self, ifname: str) -> int | None:
        """The index of a link by name (one RTM_GETLINK), None if there is no such link."""
        try:
            msgs = self._request(RTM_GETLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, ifname.encode() + b"\0"))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for mtype, payload in msgs:
            if mtype == RTM_NEWLINK:
                return int(_IFINFOMSG.unpack_from(payload)[2])
        return None

    def add_veth(self, ifname: str, peer: str, peer_ns_fd: int, *, mtu: int, mac: str, peer_mac: str,
                 up: bool = True) -> tuple[int, int] | None:
        """Create a veth pair here (up if ``up``), its peer straight in another namespace (down:
        the kernel cannot open a veth end before both exist, so bring it up with ``set_up``).

        Returns (index here, peer's index) from the kernel's echo of the new link (NLM_F_ECHO,
        Linux ≥ 6.1; IFLA_LINK of a veth is its peer), which saves two lookups; None when the
        kernel does not echo."""
        flags = IFF_UP if up else 0
        peer_msg = (_ifinfo() + _attr(IFLA_IFNAME, peer.encode() + b"\0")
                    + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_ns_fd)) + _attr(IFLA_MTU, struct.pack("=I", mtu))
                    + _attr(IFLA_ADDRESS, _mac(peer_mac)))
        linkinfo = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        body = (_ifinfo(flags=flags, change=flags) + _attr(IFLA_IFNAME, ifname.encode() + b"\0")
                + _attr(IFLA_MTU, struct.pack("=I", mtu)) + _attr(IFLA_ADDRESS, _mac(mac))
                + _attr(IFLA_LINKINFO, linkinfo))
        for mtype, payload in self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO, body):
            if mtype != RTM_NEWLINK:
                continue
            index = _IFINFOMSG.unpack_from(payload)[2]
            link = [v for k, v in attrs(payload, _IFINFOMSG.size) if k == IFLA_LINK]
            peer_index = struct.unpack("=I", link[0])[0] if link and len(link[0]) == 4 else 0
            if index > 0 and peer_index > 0:
                return index, peer_index
        return None

    def set_up(self, index: int, *, proxy_arp: bool = False, strict_rpf: bool = False) -> None:
        """Bring a link up; with ``proxy_arp`` / ``strict_rpf`` also set its ipv4 ``proxy_arp`` /
        ``rp_filter=1`` in the same request (IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF: the
        per-interface sysctls, without entering the link's namespace to write /proc/sys)."""
        self._request(*set_up_msg(index, proxy_arp=proxy_arp, strict_rpf=strict_rpf))

    def set_proxy_delay(self, index: int, msecs: int) -> None:
        """The link's ARP ``proxy_delay`` (net.ipv4.neigh.<if>.proxy_delay) via RTM_SETNEIGHTBL."""
        self._request(*proxy_delay_msg(index, msecs))

    def del_link(self, index: int) -> bool:
        """Delete a link; False if it was already gone."""
        try:
            self._request(RTM_DELLINK, 0, _ifinfo(index=index))
            return True
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    # ---- addresses and routes ------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        self._request(*add_address_msg(index, address, prefixlen))

    def add_route(self, dst: str, oif: int, *, gateway: str | None = None, scope: int = RT_SCOPE_UNIVERSE,
                  proto: int = RTPROT_STATIC) -> None:
        """Add ``dst`` (a CIDR; 0.0.0.0/0 = default) out of ``oif``; EEXIST if already there."""
        self._request(*add_route_msg(dst, oif, gateway=gateway, scope=scope, proto=proto))


# ---- messages (each method above sends one; ``Rtnl.batch`` sends several at once) --------------

def set_up_msg(index: int, *, proxy_arp: bool = False, strict_rpf: bool = False) -> Message:
    body = _ifinfo(index=index, flags=IFF_UP, change=IFF_UP)
    conf = (_attr(IPV4_DEVCONF_PROXY_ARP, struct.pack("=I", 1)) if proxy_arp else b"") + (
        _attr(IPV4_DEVCONF_RP_FILTER, struct.pack("=I", 1)) if strict_rpf else b"")
    if conf:
        body += _attr(IFLA_AF_SPEC, _attr(socket.AF_INET, _attr(IFLA_INET_CONF, conf)))
    return RTM_NEWLINK, 0, body


def proxy_delay_msg(index: int, msecs: int) -> Message:
    parms = _attr(NDTPA_IFINDEX, struct.pack("=I", index)) + _attr(NDTPA_PROXY_DELAY, struct.pack("=Q", msecs))
    return RTM_SETNEIGHTBL, 0, _NDTMSG.pack(socket.AF_INET, 0) + _attr(NDTA_NAME, b"arp_cache\0") + _attr(NDTA_PARMS, parms)


def add_address_msg(index: int, address: str, prefixlen: int) -> Message:
    ip = ipaddress.ip_address(address)
    raw = ip.packed
    body = _IFADDRMSG.pack(_family(ip), prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)


def add_route_msg(dst: str, oif: int, *, gateway: str | None = None, scope: int = RT_SCOPE_UNIVERSE,
                  proto: int = RTPROT_STATIC) -> Message:
    net = ipaddress.ip_network(dst)
    body = _RTMSG.pack(_family(net.network_address), net.prefixlen, 0, 0, RT_TABLE_MAIN, proto, scope,
                       RTN_UNICAST, 0)
    if net.prefixlen:
        body += _attr(RTA_DST, net.network_address.packed)
    if gateway:
        body += _attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body + _attr(RTA_OIF, struct.pack("=I", oif))


def _is_current(ns: str) -> bool:
    """True if ``ns`` (a path) is the calling thread's namespace: two stats instead of two
    setns calls (the node agent is usually called from its own namespace)."""
    if not ns.startswith("/"):
        return False
    try:
        a, b = os.stat(ns), os.stat("/proc/thread-self/ns/net")
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def attrs(payload: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """The rtattrs of a message payload after its fixed header (for tests and read-back)."""
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        yield kind, payload[offset + 4: offset + length]
        offset += (length + 3) & ~3
