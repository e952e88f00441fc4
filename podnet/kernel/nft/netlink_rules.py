"""Chains, rules and sets of a table as raw nf_tables netlink messages.

A policy change rewrites one chain (flush + its rules) and maybe adds or drops a few chains
and sets. Through libnftables that costs a listing of every chain of the table first (its
cache), which is what made a policy change grow with the cluster. The applier knows the table
already, so this module encodes exactly the shapes the renderer emits for policy and signature
chains, as libnftables itself encodes them (``nft --debug=netlink`` prints the same
expressions):

* ``ip|ip6 saddr|daddr @set`` (nfproto check, payload load, lookup) and ``== address`` (cmp);
* ``meta l4proto . th dport { tcp . 80, udp . 1000-2000 }``: an anonymous constant set created
  in the same batch (a concatenated interval set when a range is present, with the protocol
  byte put in network order as nft does for interval concatenations), looked up by its id;
* ``counter``, ``accept``, ``drop``, ``goto``/``jump`` chain; the comment as rule userdata;
* the flow-log statements: ``log prefix "…" group N`` and ``limit rate R/second burst B packets``;
* ``flush chain`` / ``add chain`` (not base chains) / ``delete chain``; ``add set`` of plain
  ``ipv4_addr`` sets with their elements; ``delete set``.

In ``ip`` tables, rules, base chains, maps, the table itself and sets with flags are encoded
by ``netlink_nat`` (the service table's shapes). Anything else raises ``Unsupported`` and the
caller sends the whole change through libnftables.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from podnet.dataplane.nft.model import TableId

NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE = 3, 5, 6, 8
NFT_MSG_NEWSET, NFT_MSG_DELSET, NFT_MSG_NEWSETELEM = 9, 11, 12
NLM_F_CREATE, NLM_F_APPEND = 0x400, 0x800
NLA_F_NESTED = 0x8000
# attributes (linux/netfilter/nf_tables.h)
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 1, 2, 4, 7
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN = 1, 2, 3, 4, 5
NFTA_SET_DESC, NFTA_SET_ID, NFTA_SET_USERDATA = 9, 10, 13
NFTA_SET_DESC_SIZE, NFTA_SET_DESC_CONCAT, NFTA_SET_FIELD_LEN = 1, 2, 1
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET_ID = 1, 2, 3, 4
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END = 1, 10
NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2, 1, 2
NFTA_META_DREG, NFTA_META_KEY = 1, 2
NFTA_CMP_SREG, NFTA_CMP_OP, NFTA_CMP_DATA = 1, 2, 3
NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_OFFSET, NFTA_PAYLOAD_LEN = 1, 2, 3, 4
NFTA_LOOKUP_SET, NFTA_LOOKUP_SREG, NFTA_LOOKUP_SET_ID = 1, 2, 4
NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA = 1, 2
NFTA_BYTEORDER_SREG, NFTA_BYTEORDER_DREG, NFTA_BYTEORDER_OP, NFTA_BYTEORDER_LEN, NFTA_BYTEORDER_SIZE = 1, 2, 3, 4, 5
NFT_META_NFPROTO, NFT_META_L4PROTO = 15, 16
NFT_PAYLOAD_NETWORK, NFT_PAYLOAD_TRANSPORT = 1, 2
NFT_CMP_EQ, NFT_BYTEORDER_HTON = 0, 1
NFT_REG_VERDICT, NFT_REG_1, NFT_REG32_01 = 0, 1, 9
NFT_SET_ANONYMOUS, NFT_SET_CONSTANT, NFT_SET_INTERVAL, NFT_SET_CONCAT = 0x1, 0x2, 0x4, 0x80
VERDICT_CODES = {"drop": 0, "accept": 1, "jump": -3, "goto": -4}
# nft's datatype ids: a concatenation's type is the ids shifted by 6 bits each
TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE = 7, 12, 13
_PORTS_KEY_TYPE = (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE
#: set userdata: key byte order = big endian (what libnftables stores for address sets)
_ADDR_SET_USERDATA = b"\x00\x04" + struct.pack("=I", 2)
TYPE_IFNAME = 41
#: the named sets this encoder creates, as libnftables creates them: nft type → (key type,
#: key length, flags, field lengths of a concatenation, userdata)
_NAMED_SETS: dict[tuple[tuple[str, ...], bool], tuple[int, int, int, tuple[int, ...], bytes]] = {
    (("ipv4_addr",), False): (TYPE_IPADDR, 4, 0, (), _ADDR_SET_USERDATA),
    (("ifname",), False): (TYPE_IFNAME, 16, 0, (), b"\x00\x04" + struct.pack("=I", 1)),
    (("ifname", "ipv4_addr"), False): ((TYPE_IFNAME << 6) | TYPE_IPADDR, 20, 0, (),
                                       bytes.fromhex("00040000000003080004" "0d0000000100")),
    (("inet_proto", "inet_service"), True): (_PORTS_KEY_TYPE, 8, NFT_SET_INTERVAL | NFT_SET_CONCAT, (1, 2),
                                             bytes.fromhex("00040000000003080004" "0d0000000100")),
}
NFT_META_IIFNAME, NFT_META_OIFNAME = 6, 7
_IFNAME_KEYS = {"iifname": NFT_META_IIFNAME, "oifname": NFT_META_OIFNAME}
NFT_REG_2 = 2
_ADDR = {("ip", "saddr"): (2, 12, 4), ("ip", "daddr"): (2, 16, 4),
         ("ip6", "saddr"): (10, 8, 16), ("ip6", "daddr"): (10, 24, 16)}


class Unsupported(ValueError):
    """A command or expression this encoder does not cover (send it through libnftables)."""


def attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def nest(kind: int, parts: Iterable[bytes]) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def strz(text: str) -> bytes:
    return text.encode() + b"\0"


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!I", value & 0xFFFFFFFF))


def _expr(name: str, parts: list[bytes]) -> bytes:
    return nest(NFTA_LIST_ELEM, [attr(NFTA_EXPR_NAME, strz(name)), nest(NFTA_EXPR_DATA, parts)])


def _meta(key: int, dreg: int) -> bytes:
    return _expr("meta", [u32(NFTA_META_KEY, key), u32(NFTA_META_DREG, dreg)])


def _cmp(sreg: int, value: bytes) -> bytes:
    return _expr("cmp", [u32(NFTA_CMP_SREG, sreg), u32(NFTA_CMP_OP, NFT_CMP_EQ),
                         nest(NFTA_CMP_DATA, [attr(NFTA_DATA_VALUE, value)])])


def _payload(dreg: int, base: int, offset: int, length: int) -> bytes:
    return _expr("payload", [u32(NFTA_PAYLOAD_DREG, dreg), u32(NFTA_PAYLOAD_BASE, base),
                             u32(NFTA_PAYLOAD_OFFSET, offset), u32(NFTA_PAYLOAD_LEN, length)])


def _lookup(sreg: int, name: str, set_id: int | None = None) -> bytes:
    parts = [u32(NFTA_LOOKUP_SREG, sreg), attr(NFTA_LOOKUP_SET, strz(name))]
    if set_id is not None:
        parts.append(u32(NFTA_LOOKUP_SET_ID, set_id))
    return _expr("lookup", parts)


def verdict_data(kind: str, target: str | None) -> bytes:
    parts = [attr(NFTA_VERDICT_CODE, struct.pack("!i", VERDICT_CODES[kind]))]
    if target is not None:
        parts.append(attr(NFTA_VERDICT_CHAIN, strz(target)))
    return nest(NFTA_DATA_VERDICT, parts)


def _immediate(kind: str, target: str | None = None) -> bytes:
    return _expr("immediate", [u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT),
                               nest(NFTA_IMMEDIATE_DATA, [verdict_data(kind, target)])])


class Batch:
    """Messages of one batch being built: ``add(kind, flags, payload)`` and fresh set ids."""

    def __init__(self, table: TableId, message: Callable[[int, int, bytes], None],
                 info_of: Callable[[str], Any] | None = None) -> None:
        self.table = table
        self._message = message
        self._set_id = 0
        #: sets added in this batch: name → (key types, is a map[, is an interval set])
        self.new_sets: dict[str, Any] = {}
        self._info_of = info_of

    def info(self, name: str) -> Any:
        """(key types, is a map[, is an interval set]) of a set, new in this batch or in the
        table; None when unknown."""
        if name in self.new_sets:
            return self.new_sets[name]
        return self._info_of(name) if self._info_of is not None else None

    def add(self, kind: int, flags: int, payload: bytes) -> None:
        self._message(kind, flags, payload)

    def set_id(self) -> int:
        self._set_id += 1
        return self._set_id


def _port_key(proto: Any, port: int) -> bytes:
    number = socket.getprotobyname(proto) if isinstance(proto, str) else int(proto)
    return struct.pack("B", number) + b"\0" * 3 + struct.pack("!H", int(port)) + b"\0" * 2


def _port_set(batch: Batch, elems: list[Any]) -> tuple[int, bool]:
    """An anonymous ``inet_proto . inet_service`` set (NEWSET + its elements); its id and
    whether it is an interval set."""
    spans = []
    for e in elems:
        if not isinstance(e, dict) or list(e) != ["concat"] or len(e["concat"]) != 2:
            raise Unsupported(f"port set element {e!r}")
        proto, port = e["concat"]
        lo, hi = (port["range"] if isinstance(port, dict) else (port, port))
        spans.append((proto, int(lo), int(hi)))
    interval = any(lo != hi for _, lo, hi in spans)
    set_id = batch.set_id()
    name = attr(NFTA_SET_TABLE, strz(batch.table.name)) + attr(NFTA_SET_NAME, strz("__set%d"))
    desc = [u32(NFTA_SET_DESC_SIZE, len(spans))]
    flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT
    if interval:
        flags |= NFT_SET_INTERVAL | NFT_SET_CONCAT
        desc.append(nest(NFTA_SET_DESC_CONCAT, [nest(NFTA_LIST_ELEM, [u32(NFTA_SET_FIELD_LEN, n)]) for n in (1, 2)]))
    batch.add(NFT_MSG_NEWSET, NLM_F_CREATE, name + b"".join([
        u32(NFTA_SET_FLAGS, flags), u32(NFTA_SET_KEY_TYPE, _PORTS_KEY_TYPE), u32(NFTA_SET_KEY_LEN, 8),
        u32(NFTA_SET_ID, set_id), nest(NFTA_SET_DESC, desc)]))
    items = []
    for proto, lo, hi in spans:
        body = [nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, _port_key(proto, lo))])]
        if interval:
            body.append(nest(NFTA_SET_ELEM_KEY_END, [attr(NFTA_DATA_VALUE, _port_key(proto, hi))]))
        items.append(nest(NFTA_LIST_ELEM, body))
    batch.add(NFT_MSG_NEWSETELEM, NLM_F_CREATE, attr(NFTA_SET_ELEM_LIST_TABLE, strz(batch.table.name))
              + attr(NFTA_SET_ELEM_LIST_SET, strz("__set%d")) + u32(NFTA_SET_ELEM_LIST_SET_ID, set_id)
              + nest(NFTA_SET_ELEM_LIST_ELEMENTS, items))
    return set_id, interval


def _match(batch: Batch, m: dict[str, Any]) -> list[bytes]:
    if m.get("op") != "==":
        raise Unsupported(f"match operator {m.get('op')!r}")
    left, right = m["left"], m["right"]
    if isinstance(left, dict) and "payload" in left:
        where = (left["payload"].get("protocol"), left["payload"].get("field"))
        if where not in _ADDR or not isinstance(right, str):
            raise Unsupported(f"match on {left!r}")
        nfproto, offset, length = _ADDR[where]
        out = [_meta(NFT_META_NFPROTO, NFT_REG_1), _cmp(NFT_REG_1, bytes([nfproto])),
               _payload(NFT_REG_1, NFT_PAYLOAD_NETWORK, offset, length)]
        if right.startswith("@"):
            return out + [_lookup(NFT_REG_1, right[1:])]
        addr = ipaddress.ip_address(right)
        if len(addr.packed) != length:
            raise Unsupported(f"address {right!r} for {where}")
        return out + [_cmp(NFT_REG_1, addr.packed)]
    if left == {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]} \
            and isinstance(right, dict) and list(right) == ["set"] and right["set"]:
        set_id, interval = _port_set(batch, right["set"])
        out = [_meta(NFT_META_L4PROTO, NFT_REG_1)]
        if interval:  # as nft does for interval concatenations
            out.append(_expr("byteorder", [u32(NFTA_BYTEORDER_SREG, NFT_REG_1), u32(NFTA_BYTEORDER_DREG, NFT_REG_1),
                                           u32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON), u32(NFTA_BYTEORDER_LEN, 1),
                                           u32(NFTA_BYTEORDER_SIZE, 2)]))
        return out + [_payload(NFT_REG32_01, NFT_PAYLOAD_TRANSPORT, 2, 2), _lookup(NFT_REG_1, "__set%d", set_id)]
    if left == {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]} \
            and isinstance(right, str) and right.startswith("@"):  # a rule's named port set
        info = batch.info(right[1:])
        if info is None or tuple(info[0]) != ("inet_proto", "inet_service") or info[1]:
            raise Unsupported(f"port set {right!r}")
        out = [_meta(NFT_META_L4PROTO, NFT_REG_1)]
        if len(info) > 2 and info[2]:
            out.append(_expr("byteorder", [u32(NFTA_BYTEORDER_SREG, NFT_REG_1), u32(NFTA_BYTEORDER_DREG, NFT_REG_1),
                                           u32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON), u32(NFTA_BYTEORDER_LEN, 1),
                                           u32(NFTA_BYTEORDER_SIZE, 2)]))
        return out + [_payload(NFT_REG32_01, NFT_PAYLOAD_TRANSPORT, 2, 2), _lookup(NFT_REG_1, right[1:])]
    if isinstance(right, str) and right.startswith("@"):  # the dispatch: a pod's interface (and address)
        if isinstance(left, dict) and "meta" in left and left["meta"].get("key") in _IFNAME_KEYS:
            return [_meta(_IFNAME_KEYS[left["meta"]["key"]], NFT_REG_1), _lookup(NFT_REG_1, right[1:])]
        if left == {"concat": [{"meta": {"key": "iifname"}}, {"payload": {"protocol": "ip", "field": "saddr"}}]}:
            return [_meta(NFT_META_NFPROTO, NFT_REG_1), _cmp(NFT_REG_1, bytes([2])),
                    _meta(NFT_META_IIFNAME, NFT_REG_1), _payload(NFT_REG_2, NFT_PAYLOAD_NETWORK, 12, 4),
                    _lookup(NFT_REG_1, right[1:])]
    raise Unsupported(f"match on {left!r}")


def _statement(batch: Batch, stmt: dict[str, Any]) -> list[bytes]:
    if len(stmt) != 1:
        raise Unsupported(f"statement {stmt!r}")
    (kind, arg), = stmt.items()
    if kind == "match":
        return _match(batch, arg)
    if kind == "counter" and arg is None:
        return [nest(NFTA_LIST_ELEM, [attr(NFTA_EXPR_NAME, strz("counter")), nest(NFTA_EXPR_DATA, [])])]
    if kind in ("accept", "drop") and arg is None:
        return [_immediate(kind)]
    if kind in ("log", "limit"):  # the flow-log statements (dataplane.nft.flowlog)
        return [_flow_log_statement(kind, arg)]
    if kind in ("goto", "jump") and isinstance(arg, dict) and isinstance(arg.get("target"), str):
        return [_immediate(kind, arg["target"])]
    raise Unsupported(f"statement {kind!r}")


NFTA_LOG_GROUP, NFTA_LOG_PREFIX = 1, 2
NFTA_LIMIT_RATE, NFTA_LIMIT_UNIT, NFTA_LIMIT_BURST, NFTA_LIMIT_TYPE = 1, 2, 3, 4
NFT_LIMIT_PKTS = 0


def _flow_log_statement(kind: str, arg: Any) -> bytes:
    """``log prefix "…" group N`` and ``limit rate R/second burst B packets``."""
    if kind == "log" and isinstance(arg, dict) and set(arg) == {"prefix", "group"}:
        return _expr("log", [attr(NFTA_LOG_GROUP, struct.pack("!H", int(arg["group"]))),
                             attr(NFTA_LOG_PREFIX, strz(str(arg["prefix"])))])
    if kind == "limit" and isinstance(arg, dict) and arg.get("per") == "second" \
            and set(arg) <= {"rate", "burst", "per"}:
        return _expr("limit", [attr(NFTA_LIMIT_RATE, struct.pack("!Q", int(arg["rate"]))),
                               attr(NFTA_LIMIT_UNIT, struct.pack("!Q", 1)),
                               u32(NFTA_LIMIT_BURST, int(arg.get("burst", 0))), u32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS)])
    raise Unsupported(f"statement {kind!r} {arg!r}")


def encode_command(batch: Batch, verb: str, kind: str, body: dict[str, Any]) -> None:
    """One chain, rule or set command into the batch (raises Unsupported)."""
    from . import netlink_nat

    nat = batch.table.family == "ip"  # the service table's objects (netlink_nat)
    if kind == "table" and nat:
        netlink_nat.table_command(batch, verb, body)
        return
    table = attr(1, strz(batch.table.name))  # NFTA_{CHAIN,RULE,SET}_TABLE are all 1
    if (body.get("family"), body.get("table")) != (batch.table.family, batch.table.name):
        raise Unsupported("another table")
    if kind == "chain":
        if verb == "add" and "hook" in body and nat:
            netlink_nat.base_chain(batch, body)
            return
        if set(body) - {"family", "table", "name"}:
            raise Unsupported("a base chain")
        name = attr(NFTA_CHAIN_NAME, strz(body["name"]))
        if verb == "flush":
            batch.add(NFT_MSG_DELRULE, 0, table + attr(NFTA_RULE_CHAIN, strz(body["name"])))
        elif verb == "add":
            batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, table + name)
        elif verb == "delete":
            batch.add(NFT_MSG_DELCHAIN, 0, table + name)
        else:
            raise Unsupported(f"{verb} chain")
        return
    if kind == "rule" and verb == "add":
        if batch.table.family not in ("inet", "ip"):
            raise Unsupported("rules of a table outside the inet and ip families")
        if set(body) - {"family", "table", "chain", "expr", "comment"}:
            raise Unsupported("rule options")
        encode = netlink_nat.statement if batch.table.family == "ip" else lambda s: _statement(batch, s)
        exprs = [e for stmt in body["expr"] for e in encode(stmt)]
        parts = [table, attr(NFTA_RULE_CHAIN, strz(body["chain"])), nest(NFTA_RULE_EXPRESSIONS, exprs)]
        comment = body.get("comment")
        if comment:
            raw = strz(comment)
            if len(raw) > 255:
                raise Unsupported("a long comment")
            parts.append(attr(NFTA_RULE_USERDATA, bytes([0, len(raw)]) + raw))
        batch.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, b"".join(parts))
        return
    if kind in ("set", "map") and verb == "delete":
        batch.add(NFT_MSG_DELSET, 0, table + attr(NFTA_SET_NAME, strz(body["name"])))
        return
    if nat and (kind == "map" or (kind == "set" and verb == "add" and ("flags" in body or "timeout" in body))):
        if verb != "add":
            raise Unsupported(f"{verb} {kind}")
        netlink_nat.set_command(batch, kind, body)
        return
    if kind == "set" and verb == "add":
        types = tuple(body["type"]) if isinstance(body.get("type"), list) else (body.get("type"),)
        interval = body.get("flags") == ["interval"]
        known = _NAMED_SETS.get((types, interval))
        if known is None or set(body) - {"family", "table", "name", "type", "elem", "flags"} \
                or ("flags" in body and not interval):
            raise Unsupported("a set other than the policy table's plain and port sets")
        key_type, key_len, flags, fields, userdata = known
        set_id = batch.set_id()
        parts = [attr(NFTA_SET_NAME, strz(body["name"])), u32(NFTA_SET_FLAGS, flags), u32(NFTA_SET_KEY_TYPE, key_type),
                 u32(NFTA_SET_KEY_LEN, key_len), u32(NFTA_SET_ID, set_id)]
        if fields:
            parts.append(nest(NFTA_SET_DESC, [nest(NFTA_SET_DESC_CONCAT, [
                nest(NFTA_LIST_ELEM, [u32(NFTA_SET_FIELD_LEN, n)]) for n in fields])]))
        parts.append(attr(NFTA_SET_USERDATA, userdata))
        batch.add(NFT_MSG_NEWSET, NLM_F_CREATE, table + b"".join(parts))
        batch.new_sets[body["name"]] = (types, False, True) if interval else (types, False)
        return
    raise Unsupported(f"{verb} {kind}")
