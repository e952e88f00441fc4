"""A table's chains, rules (with their counters and verdicts) and map sizes, listed over raw
netlink.

libnftables lists a table as JSON, rendering every expression: far too slow for a large table
on every metrics scrape (docs/observability.md has the figures). The kernel's own dump of the
same rules is cheap; this module reads from it only what the counters need (chain, comment,
counter, final verdict), so a scrape costs the table's size in a tight loop. The
socket is opened inside the namespace given and stays bound to it.
"""
from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

from podnet.dataplane.nft.counts import RuleCount, TableCounts
from podnet.dataplane.nft.model import TableId

from .. import netns as _netns
from .netlink import NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFPROTO, NLM_F_REQUEST, NLMSG_ERROR

NLM_F_DUMP = 0x300
NLMSG_DONE = 3
NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSETELEM = 4, 7, 13
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 1, 2, 4, 7
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 1, 2
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
NFTA_IMMEDIATE_DATA, NFTA_DATA_VERDICT, NFTA_VERDICT_CODE = 2, 2, 1
NFTNL_UDATA_RULE_COMMENT = 0
VERDICTS = {0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
_ATTR = struct.Struct("=HH")
_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")


def _attrs(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in ``buf[start:end]``."""
    while start + 4 <= end:
        length, kind = _ATTR.unpack_from(buf, start)
        if length < 4:
            return
        yield kind & 0x3FFF, start + 4, start + length
        start += (length + 3) & ~3


def _string(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].split(b"\0", 1)[0].decode(errors="replace")


def _comment(buf: bytes, start: int, end: int) -> str:
    """The comment in a rule's user data (type-length-value records of one byte each)."""
    while start + 2 <= end:
        kind, length = buf[start], buf[start + 1]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return buf[start + 2:start + 1 + length].decode(errors="replace")  # without its NUL
        start += 2 + length
    return ""


_COUNTER_NAME = _ATTR.pack(12, NFTA_EXPR_NAME) + b"counter\0"
_IMMEDIATE_NAME = _ATTR.pack(14, NFTA_EXPR_NAME) + b"immediate\0\0\0"


def _rule(buf: bytes, start: int, end: int, names: dict[bytes, str]) -> tuple[str, str, str, tuple[int, int] | None]:
    """(chain, comment, final verdict, (packets, bytes) or None) of one NEWRULE message.

    Written for speed (it runs once per rule per scrape): only each expression's name is
    looked at, and only a counter's and an immediate verdict's data are decoded. ``names``
    caches chain names (a table has far fewer chains than rules)."""
    chain = comment = verdict = ""
    counter: tuple[int, int] | None = None
    unpack, starts = _ATTR.unpack_from, buf.startswith
    while start + 4 <= end:
        length, kind = unpack(buf, start)
        if length < 4:
            break
        kind &= 0x3FFF
        if kind == NFTA_RULE_EXPRESSIONS:
            off, stop = start + 4, start + length
            while off + 4 <= stop:
                elen = unpack(buf, off)[0]
                if elen < 4:
                    break
                if starts(_COUNTER_NAME, off + 4):
                    counter = _counter(buf, off + 16, off + elen)
                elif starts(_IMMEDIATE_NAME, off + 4):
                    verdict = _immediate_verdict(buf, off + 20, off + elen) or verdict
                off += (elen + 3) & ~3
        elif kind == NFTA_RULE_CHAIN:
            raw = buf[start + 4:start + length]
            chain = names.get(raw) or names.setdefault(raw, _string(raw, 0, len(raw)))
        elif kind == NFTA_RULE_USERDATA:
            comment = _comment(buf, start + 4, start + length)
        start += (length + 3) & ~3
    return chain, comment, verdict, counter


_COUNTER_DATA = (_ATTR.pack(12, NFTA_COUNTER_BYTES), _ATTR.pack(12, NFTA_COUNTER_PACKETS))
_VERDICT_PATH = (NFTA_IMMEDIATE_DATA, NFTA_DATA_VERDICT, NFTA_VERDICT_CODE)


def _counter(buf: bytes, start: int, end: int) -> tuple[int, int]:
    """(packets, bytes) from a counter expression's data attribute at ``start``: the kernel
    puts bytes, then packets; anything else is walked attribute by attribute."""
    if buf.startswith(_COUNTER_DATA[0], start + 4) and buf.startswith(_COUNTER_DATA[1], start + 16):
        return _U64.unpack_from(buf, start + 20)[0], _U64.unpack_from(buf, start + 8)[0]
    got = {k: _U64.unpack_from(buf, a)[0] for k, a, _ in _attrs(buf, start + 4, end)}
    return got.get(NFTA_COUNTER_PACKETS, 0), got.get(NFTA_COUNTER_BYTES, 0)


_VERDICT_HEADERS = (_ATTR.pack(8, 1), NFTA_IMMEDIATE_DATA, NFTA_DATA_VERDICT, _ATTR.pack(8, NFTA_VERDICT_CODE))


def _immediate_verdict(buf: bytes, start: int, end: int) -> str:
    """The verdict of an immediate expression's data attribute at ``start`` ("" for a value).
    The kernel writes the register (8 bytes), then data → verdict → code: read the code where
    it then is, after checking each header on the way; anything else is walked."""
    dreg, data, verdict, code = _VERDICT_HEADERS
    if (buf.startswith(dreg, start + 4) and _ATTR.unpack_from(buf, start + 12)[1] & 0x3FFF == data
            and _ATTR.unpack_from(buf, start + 16)[1] & 0x3FFF == verdict and buf.startswith(code, start + 20)):
        return VERDICTS.get(_I32.unpack_from(buf, start + 24)[0], "other")
    outer = (start + 4, end)
    for kind in _VERDICT_PATH:
        inner = next(((a, b) for k, a, b in _attrs(buf, *outer) if k == kind), None)
        if inner is None:
            return ""
        outer = inner
    return VERDICTS.get(_I32.unpack_from(buf, outer[0])[0], "other")


class TableReader:
    """Lists one table of one namespace (None: the caller's) over a socket of its own."""

    def __init__(self, table: TableId, netns_name: str | None = None, memo: bool = True) -> None:
        self.table = table
        self.netns = netns_name
        #: a rule message without its counter's values → (chain, comment, verdict): between two
        #: scrapes only counters change, so each rule is decoded once, not on every scrape
        self.memo: dict[bytes, tuple[str, str, str]] | None = {} if memo else None
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            if self.netns is None:
                self._sock = _open()
            else:
                with _netns.enter(self.netns):
                    self._sock = _open()
        return self._sock

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _dump(self, msg: int, attrs: bytes) -> Iterator[tuple[bytes, int, int]]:
        """Each answer of one dump request: (buffer, attributes start, message end)."""
        sock = self._socket()
        self._seq += 1
        header = struct.pack("=IHHII", 20 + len(attrs), (NFNL_SUBSYS_NFTABLES << 8) | msg,
                             NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0)
        sock.send(header + struct.pack("=BBH", NFPROTO[self.table.family], 0, 0) + attrs)
        while True:
            data = sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if length < 16:
                    return
                if seq == self._seq:
                    if kind == NLMSG_DONE:
                        return
                    if kind == NLMSG_ERROR:
                        code, = struct.unpack_from("=i", data, off + 16)
                        if code:
                            raise OSError(-code, f"listing {self.table}: netlink error")
                    else:
                        yield data, off + 20, off + length  # after nlmsghdr (16) and nfgenmsg (4)
                off += (length + 3) & ~3

    def read(self, maps: tuple[str, ...] = ()) -> TableCounts:
        """The table's chains, rules and the sizes of ``maps`` (empty when there is no table)."""
        name = _attr(NFTA_RULE_TABLE, self.table.name.encode() + b"\0")
        with self._lock:
            chains = [c for c in self._chains() if c]
            rules, counted, names = 0, [], dict[bytes, str]()
            memo, seen, unpack = self.memo, dict[bytes, tuple[str, str, str]](), _U64.unpack_from
            for buf, s, e in self._dump(NFT_MSG_GETRULE, name):
                rules += 1
                static = _static_part(buf, s, e) if memo is not None else None
                if static is not None:
                    known = memo.get(static[0])  # type: ignore[union-attr]
                    if known is not None:
                        seen[static[0]] = known
                        data = static[1]
                        counted.append(RuleCount(known[0], known[1], known[2], unpack(buf, data + 20)[0],
                                                 unpack(buf, data + 8)[0]))
                        continue
                chain, comment, verdict, counter = _rule(buf, s, e, names)
                if counter is not None:
                    counted.append(RuleCount(chain, comment, verdict, counter[0], counter[1]))
                    if static is not None:
                        seen[static[0]] = (chain, comment, verdict)
            if memo is not None:
                self.memo = seen  # rules gone from the table leave the memo
            sizes = {m: self._elements(m) for m in maps}
        return TableCounts(chains, rules, counted, sizes)

    def _chains(self) -> Iterator[str]:
        for buf, s, e in self._dump(NFT_MSG_GETCHAIN, _attr(NFTA_CHAIN_TABLE, self.table.name.encode() + b"\0")):
            table = name = ""
            for kind, a, b in _attrs(buf, s, e):
                if kind == NFTA_CHAIN_TABLE:
                    table = _string(buf, a, b)
                elif kind == NFTA_CHAIN_NAME:
                    name = _string(buf, a, b)
            if table == self.table.name:
                yield name

    def _elements(self, set_name: str) -> int:
        attrs = (_attr(NFTA_SET_ELEM_LIST_TABLE, self.table.name.encode() + b"\0")
                 + _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"))
        count = 0
        try:
            for buf, s, e in self._dump(NFT_MSG_GETSETELEM, attrs):
                for kind, a, b in _attrs(buf, s, e):
                    if kind == NFTA_SET_ELEM_LIST_ELEMENTS:
                        count += sum(1 for k, _, _ in _attrs(buf, a, b) if k == NFTA_LIST_ELEM)
        except FileNotFoundError:  # no such set or map (or table)
            return 0
        return count


def _static_part(buf: bytes, start: int, end: int) -> tuple[bytes, int] | None:
    """The message without its one counter's values, and where the counter's data starts (None:
    no counter in the usual layout, or more than one: such a rule is decoded every time). After
    the counter's name (12 bytes) come the data header (4), bytes (header 4, value 8) and packets
    (header 4, value 8)."""
    pos = buf.find(_COUNTER_NAME, start, end)
    if pos < 0 or buf.find(_COUNTER_NAME, pos + 1, end) >= 0:
        return None
    data = pos + 12
    if not (buf.startswith(_COUNTER_DATA[0], data + 4) and buf.startswith(_COUNTER_DATA[1], data + 16)):
        return None
    return buf[start:data + 8] + buf[data + 16:data + 20] + buf[data + 28:end], data


def _attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _open() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    except OSError:
        pass
    sock.bind((0, 0))
    sock.settimeout(5.0)
    return sock
