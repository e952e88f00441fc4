"""Changes to a table sent to nf_tables as one raw netlink batch.

libnftables resolves every command against a cache it fills first: before committing even one
element it lists every set and chain definition of the table (milliseconds at a thousand
policies). An element change needs none of that: the applier already knows each set's key
types from its model of the table. This module encodes ``add``/``delete element`` commands
(the nftables JSON the planners emit) as NEWSETELEM/DELSETELEM messages between a batch
begin and end, so the kernel applies them as ONE transaction (all or nothing), at a cost that
depends on the change, not on the table.

Only plain (non-interval) sets and maps of fixed-size key types are encoded here; a policy
change's chain, rule and set commands are encoded by ``netlink_rules``; anything else
(``encode`` returns None) goes through libnftables. The socket is opened inside the target
namespace and stays bound to it, so later commits need no namespace switch.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from podnet.dataplane.nft.model import TableId

from . import netlink_rules as _rules
from .netlink_rules import NLA_F_NESTED, attr, nest, strz

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 0x2
SOL_NETLINK, NETLINK_CAP_ACK, SO_SNDBUFFORCE, SO_RCVBUFFORCE = 270, 10, 32, 33
#: nfgen families (linux/netfilter.h) by nft's family names
NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
# attributes (linux/netfilter/nf_tables.h)
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY_END = 1, 2, 10
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
VERDICT_CODES = {"drop": 0, "accept": 1, "jump": -3, "goto": -4}
IFNAMSIZ = 16

#: (key types, is a verdict map[, is a concatenated interval set]) of a named set or map, or
#: None when it cannot be encoded here
SetInfo = tuple[Any, ...]


class NetlinkRejected(OSError):
    """The kernel refused the batch (nothing was applied)."""


def _component(value: Any, typ: str) -> bytes:
    if typ == "ipv4_addr":
        return ipaddress.IPv4Address(value).packed
    if typ == "ipv6_addr":
        return ipaddress.IPv6Address(value).packed
    if typ == "ifname":
        raw = str(value).encode()
        if len(raw) >= IFNAMSIZ:
            raise ValueError(f"interface name {value!r} is longer than {IFNAMSIZ - 1} bytes")
        return raw.ljust(IFNAMSIZ, b"\0")
    if typ == "inet_service":
        return struct.pack("!H", int(value))
    if typ == "inet_proto":
        return struct.pack("B", socket.getprotobyname(value) if isinstance(value, str) else int(value))
    raise ValueError(f"no netlink encoding for {typ}")


SUPPORTED_TYPES = frozenset({"ipv4_addr", "ipv6_addr", "ifname", "inet_service", "inet_proto"})


def encode_key(value: Any, types: tuple[str, ...]) -> bytes:
    """A key as nf_tables stores it: one field, or each field of a concatenation padded to a
    32-bit register boundary."""
    if len(types) == 1:
        return _component(value, types[0])
    parts = value["concat"] if isinstance(value, dict) else value
    out = b""
    for part, typ in zip(parts, types, strict=True):
        raw = _component(part, typ)
        out += raw + b"\0" * (-len(raw) % 4)
    return out


def _verdict(value: dict[str, Any]) -> bytes:
    (kind, arg), = value.items()
    parts = [attr(NFTA_VERDICT_CODE, struct.pack("!i", VERDICT_CODES[kind]))]
    if kind in ("jump", "goto"):
        parts.append(attr(NFTA_VERDICT_CHAIN, strz(arg["target"])))
    return nest(NFTA_SET_ELEM_DATA, [nest(NFTA_DATA_VERDICT, parts)])


def _span(value: Any, typ: str) -> tuple[Any, Any]:
    """One component of an interval element as (first, last): a value, a range or a prefix."""
    if isinstance(value, dict) and "range" in value:
        lo, hi = value["range"]
        return lo, hi
    if isinstance(value, dict) and "prefix" in value and typ == "ipv4_addr":
        net = ipaddress.IPv4Network(f"{value['prefix']['addr']}/{value['prefix']['len']}", strict=False)
        return str(net.network_address), str(net.broadcast_address)
    return value, value


def _interval_element(value: Any, types: tuple[str, ...]) -> bytes:
    """An element of a concatenated interval set: its first key and its last (``KEY_END``)."""
    parts = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
    spans = [_span(p, t) for p, t in zip(parts, types, strict=True)]
    first, last = encode_key([lo for lo, _ in spans], types), encode_key([hi for _, hi in spans], types)
    body = (nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, first)])
            + nest(NFTA_SET_ELEM_KEY_END, [attr(NFTA_DATA_VALUE, last)]))
    return attr(NFTA_LIST_ELEM | NLA_F_NESTED, body)


def _element(value: Any, info: SetInfo, with_data: bool) -> bytes:
    types, is_map = tuple(info[0]), bool(info[1])
    if len(info) > 2 and info[2]:
        if is_map or len(types) < 2:
            raise ValueError("only concatenated interval sets are encoded here")
        return _interval_element(value, types)
    data = b""
    if is_map:
        key, verdict = value if isinstance(value, (list, tuple)) else (value, None)
        if with_data:
            if verdict is None:
                raise ValueError("a map element to add needs a verdict")
            data = _verdict(verdict)
    else:
        key = value
    body = nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, encode_key(key, types))]) + data
    return attr(NFTA_LIST_ELEM | NLA_F_NESTED, body)


def _chunks(parts: list[bytes], limit: int = 60000) -> Iterable[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for part in parts:
        if chunk and size + len(part) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(part)
        size += len(part)
    if chunk:
        yield chunk


def _message(kind: int, flags: int, seq: int, family: int, res_id: int, payload: bytes) -> bytes:
    head = struct.pack("=IHHII", 16 + 4 + len(payload), kind, flags, seq, 0)
    return head + struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload


def encode(cmds: list[dict[str, Any]], table: TableId, info_of: Callable[[str], SetInfo | None],
           seq: int) -> tuple[bytes, list[int]] | None:
    """The batch for the commands on ``table`` and the sequence numbers the kernel will
    acknowledge; None when some command cannot be encoded here. Element commands ({"add"|
    "delete": {"element": {...}}}) are encoded here; chain, rule and set commands by
    ``netlink_rules``."""
    family = NFPROTO.get(table.family)
    if family is None:
        return None
    msgs: list[bytes] = []
    acked: list[int] = []
    msgs.append(_message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""))

    def message(kind: int, flags: int, payload: bytes) -> None:
        nonlocal seq
        seq += 1
        msgs.append(_message((NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq,
                             family, 0, payload))
        acked.append(seq)

    batch = _rules.Batch(table, message, info_of)

    def elements(name: str, values: list[Any], adding: bool) -> None:
        info = batch.new_sets.get(name) or info_of(name)
        if info is None or not set(info[0]) <= SUPPORTED_TYPES:
            raise _rules.Unsupported(f"elements of {name}")
        head = attr(NFTA_SET_ELEM_LIST_TABLE, strz(table.name)) + attr(NFTA_SET_ELEM_LIST_SET, strz(name))
        # An attribute's length is 16 bits: many elements go in several messages (still one
        # batch, so still one transaction).
        for chunk in _chunks([_element(v, info, adding) for v in values]):
            message(NFT_MSG_NEWSETELEM if adding else NFT_MSG_DELSETELEM, NLM_F_CREATE if adding else 0,
                    head + nest(NFTA_SET_ELEM_LIST_ELEMENTS, chunk))

    try:
        for cmd in cmds:
            if len(cmd) != 1:
                return None
            (verb, body), = cmd.items()
            if not isinstance(body, dict) or len(body) != 1:
                return None
            (kind, obj), = body.items()
            if kind == "element":
                if verb not in ("add", "delete") or (obj.get("family"), obj.get("table")) != (table.family, table.name):
                    return None
                elements(obj["name"], obj["elem"], verb == "add")
                continue
            _rules.encode_command(batch, verb, kind, obj)
            if kind in ("set", "map") and verb == "add" and obj.get("elem") and obj["name"] in batch.new_sets:
                elements(obj["name"], obj["elem"], True)
    except (ValueError, KeyError, TypeError, AttributeError, struct.error, OSError):
        return None
    seq += 1
    msgs.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""))
    return b"".join(msgs), acked


class ElementSocket:
    """An nfnetlink socket in the namespace it was opened in; ``commit`` sends one batch."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        for level, option, value in ((SOL_NETLINK, NETLINK_CAP_ACK, 1),  # errors without our payload echoed
                                     (socket.SOL_SOCKET, SO_SNDBUFFORCE, 1 << 22)):  # room for a burst of changes
            try:
                self.sock.setsockopt(level, option, value)
            except OSError:
                pass  # older kernels / no CAP_NET_ADMIN: the defaults still work for small batches
        self.sock.bind((0, 0))
        self.sock.settimeout(5.0)
        self.seq = int.from_bytes(os.urandom(2), "big") << 12

    def close(self) -> None:
        self.sock.close()

    def commit(self, batch: bytes, acked: list[int]) -> None:
        """Send the batch and wait for every acknowledgement; raises NetlinkRejected with the
        first error (the kernel then applied none of it)."""
        if not acked:
            return
        first, last = acked[0] - 1, acked[-1] + 1  # the batch's begin and end messages
        self.seq = last
        if len(batch) > 1 << 21:  # a whole table: room for the batch and for every answer to it
            for option, size in ((SO_SNDBUFFORCE, len(batch) + (1 << 20)), (SO_RCVBUFFORCE, len(acked) * 1024)):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError:
                    pass
        self.sock.send(batch)
        waiting = set(acked)
        errors: list[tuple[int, int]] = []
        while waiting:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 20 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    break
                if kind == NLMSG_ERROR and first <= seq <= last:
                    code, = struct.unpack_from("=i", data, off + 16)
                    if code:
                        errors.append((seq, -code))
                        if seq not in waiting:  # the batch itself was refused: no more answers
                            waiting.clear()
                    waiting.discard(seq)
                off += (length + 3) & ~3
        if errors:
            seq, errno = min(errors)
            raise NetlinkRejected(errno, f"{os.strerror(errno)} (command {acked.index(seq) + 1} of {len(acked)})"
                                  if seq in acked else os.strerror(errno))
