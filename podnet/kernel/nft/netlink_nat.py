"""The service table's objects as raw nf_tables netlink messages (``ip`` family tables).

libnftables fills its cache before every commit: a listing of every chain of the table, which
at ten thousand Services (sixty thousand chains) costs most of a second per change, and its
JSON front end needs about a minute to load such a table at all. The applier knows the table
already, so this module encodes what the service renderer emits, as libnftables itself does
(``nft --debug=netlink`` prints the same expressions):

* matches: ``ip saddr|daddr`` against an address, a prefix or a set (``!=`` too), ``meta
  l4proto``, ``ct state``, ``fib saddr|daddr type``, ``numgen random mod N``, ``meta mark &
  M``; the ``ip daddr . meta l4proto . th dport`` and ``meta l4proto . th dport`` verdict map
  lookups;
* statements: ``dnat to addr:port``, ``masquerade``, ``reject``, ``meta mark set meta mark |
  ^ M``, ``update @set { ip saddr }``, ``return``;
* objects: the table, base chains (type, hook, priority, policy), plain, interval and timeout
  ``ipv4_addr`` sets with their elements, verdict maps on concatenated keys.

``netlink_rules`` calls in here for what it does not cover itself; anything neither knows
raises ``Unsupported`` and the whole change goes through libnftables.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

from .netlink_rules import (
    NFT_CMP_EQ,
    NFT_REG_1,
    NFT_REG_VERDICT,
    NFTA_DATA_VALUE,
    NFTA_LIST_ELEM,
    NFTA_SET_ELEM_LIST_ELEMENTS,
    NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE,
    Batch,
    Unsupported,
    _cmp,
    _expr,
    _immediate,
    _meta,
    _payload,
    attr,
    nest,
    strz,
    u32,
)

NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN = 0, 2, 3
NFT_MSG_NEWSET, NFT_MSG_DELSET, NFT_MSG_NEWSETELEM = 9, 11, 12
NLM_F_CREATE = 0x400
NFT_CMP_NEQ = 1
NFT_REG_2, NFT_REG32_01, NFT_REG32_02 = 2, 9, 10
NFT_META_MARK, NFT_META_L4PROTO = 3, 16
NFTA_META_SREG = 3
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE = 1, 3, 4, 5, 7
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NFTA_TABLE_NAME = 1
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN = 1, 2, 3, 4, 5
NFTA_SET_DATA_TYPE, NFTA_SET_DATA_LEN, NFTA_SET_ID, NFTA_SET_TIMEOUT, NFTA_SET_USERDATA = 6, 7, 10, 11, 13
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_LIST_SET_ID = 1, 3, 4
NFT_SET_INTERVAL, NFT_SET_MAP, NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x4, 0x8, 0x10, 0x20
NFT_SET_ELEM_INTERVAL_END = 0x1
NFT_DATA_VERDICT = 0xFFFFFF00
NFTA_LOOKUP_SET, NFTA_LOOKUP_SREG, NFTA_LOOKUP_DREG, NFTA_LOOKUP_FLAGS = 1, 2, 3, 5
NFT_LOOKUP_F_INV = 1
NFTA_BITWISE_SREG, NFTA_BITWISE_DREG, NFTA_BITWISE_LEN, NFTA_BITWISE_MASK, NFTA_BITWISE_XOR = 1, 2, 3, 4, 5
NFTA_CT_DREG, NFTA_CT_KEY = 1, 2
NFT_CT_STATE = 0
NFTA_FIB_DREG, NFTA_FIB_RESULT, NFTA_FIB_FLAGS = 1, 2, 3
NFT_FIB_RESULT_ADDRTYPE, NFTA_FIB_F_SADDR, NFTA_FIB_F_DADDR = 3, 1, 2
NFTA_NG_DREG, NFTA_NG_MODULUS, NFTA_NG_TYPE, NFTA_NG_OFFSET = 1, 2, 3, 4
NFT_NG_RANDOM = 1
NFTA_NAT_TYPE, NFTA_NAT_FAMILY, NFTA_NAT_REG_ADDR_MIN, NFTA_NAT_REG_PROTO_MIN, NFTA_NAT_FLAGS = 1, 2, 3, 5, 7
NFT_NAT_DNAT, NFPROTO_IPV4 = 1, 2
NF_NAT_RANGE_PROTO_SPECIFIED, NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x2, 0x10
NFTA_MASQ_FLAGS = 1
NFTA_REJECT_TYPE, NFTA_REJECT_ICMP_CODE = 1, 2
NFT_REJECT_ICMP_UNREACH, NFT_REJECT_TCP_RST, ICMP_PORT_UNREACH = 0, 1, 3
NFTA_DYNSET_SET_NAME, NFTA_DYNSET_OP, NFTA_DYNSET_SREG_KEY = 1, 3, 4
NFT_DYNSET_OP_UPDATE = 1
NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA = 1, 2
RTN_LOCAL = 2
#: nft's datatype ids (a concatenation's type is the ids shifted by 6 bits each)
TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE = 7, 12, 13
_TYPE_IDS = {"ipv4_addr": (TYPE_IPADDR, 4), "inet_proto": (TYPE_INET_PROTOCOL, 1),
             "inet_service": (TYPE_INET_SERVICE, 2)}
_HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
_POLICIES = {"drop": 0, "accept": 1}
_IP_FIELDS = {"saddr": 12, "daddr": 16}
_BIG_ENDIAN_KEY = b"\x00\x04" + struct.pack("=I", 2)  # set userdata: the key is big endian
_DADDR_L4_DPORT = [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": "l4proto"}},
                   {"payload": {"protocol": "th", "field": "dport"}}]
_L4_DPORT = [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]


def _table(batch: Batch) -> bytes:
    return attr(1, strz(batch.table.name))  # NFTA_{CHAIN,RULE,SET}_TABLE are all 1


def _host32(value: int) -> bytes:
    return struct.pack("=I", value & 0xFFFFFFFF)


def _bitwise(mask: bytes, xor: bytes) -> bytes:
    return _expr("bitwise", [u32(NFTA_BITWISE_SREG, NFT_REG_1), u32(NFTA_BITWISE_DREG, NFT_REG_1),
                             u32(NFTA_BITWISE_LEN, len(mask)),
                             nest(NFTA_BITWISE_MASK, [attr(NFTA_DATA_VALUE, mask)]),
                             nest(NFTA_BITWISE_XOR, [attr(NFTA_DATA_VALUE, xor)])])


def _cmp_op(op: int, value: bytes) -> bytes:
    return _expr("cmp", [u32(1, NFT_REG_1), u32(2, op), nest(3, [attr(NFTA_DATA_VALUE, value)])])


def _vmap_lookup(name: str) -> bytes:
    return _expr("lookup", [u32(NFTA_LOOKUP_SREG, NFT_REG_1), attr(NFTA_LOOKUP_SET, strz(name)),
                            u32(NFTA_LOOKUP_DREG, NFT_REG_VERDICT)])


def _ip_field(left: Any) -> int | None:
    if isinstance(left, dict) and "payload" in left and left["payload"].get("protocol") == "ip":
        return _IP_FIELDS.get(left["payload"].get("field", ""))
    return None


def _match(m: dict[str, Any]) -> list[bytes]:
    op, left, right = m.get("op"), m["left"], m["right"]
    offset = _ip_field(left)
    if offset is not None and op in ("==", "!="):
        load = _payload(NFT_REG_1, 1, offset, 4)
        if isinstance(right, str) and right.startswith("@"):
            parts = [u32(NFTA_LOOKUP_SREG, NFT_REG_1), attr(NFTA_LOOKUP_SET, strz(right[1:]))]
            if op == "!=":
                parts.append(u32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV))
            return [load, _expr("lookup", parts)]
        cmp_op = NFT_CMP_EQ if op == "==" else NFT_CMP_NEQ
        if isinstance(right, str):
            return [load, _cmp_op(cmp_op, ipaddress.IPv4Address(right).packed)]
        if isinstance(right, dict) and "prefix" in right:
            net = ipaddress.IPv4Network(f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
            return [load, _bitwise(net.netmask.packed, b"\0" * 4), _cmp_op(cmp_op, net.network_address.packed)]
        raise Unsupported(f"ip match on {right!r}")
    if left == {"meta": {"key": "l4proto"}} and op == "==" and isinstance(right, str):
        return [_meta(NFT_META_L4PROTO, NFT_REG_1), _cmp(NFT_REG_1, bytes([socket.getprotobyname(right)]))]
    if left == {"ct": {"key": "state"}} and op == "in" and right == "new":
        return [_expr("ct", [u32(NFTA_CT_KEY, NFT_CT_STATE), u32(NFTA_CT_DREG, NFT_REG_1)]),
                _bitwise(_host32(0x8), _host32(0)), _cmp_op(NFT_CMP_NEQ, _host32(0))]
    if isinstance(left, dict) and "fib" in left and op == "==" and right == "local":
        fib = left["fib"]
        flags = {("saddr",): NFTA_FIB_F_SADDR, ("daddr",): NFTA_FIB_F_DADDR}.get(tuple(fib.get("flags", ())))
        if fib.get("result") != "type" or flags is None:
            raise Unsupported(f"fib {fib!r}")
        return [_expr("fib", [u32(NFTA_FIB_DREG, NFT_REG_1), u32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
                              u32(NFTA_FIB_FLAGS, flags)]), _cmp_op(NFT_CMP_EQ, _host32(RTN_LOCAL))]
    if isinstance(left, dict) and "numgen" in left and op == "==" and isinstance(right, int):
        return [_numgen(left["numgen"]), _cmp_op(NFT_CMP_EQ, _host32(right))]
    if isinstance(left, dict) and list(left) == ["&"] and op == "==" and isinstance(right, int):
        what, mask = left["&"]
        if what != {"meta": {"key": "mark"}} or not isinstance(mask, int):
            raise Unsupported(f"& on {what!r}")
        return [_meta(NFT_META_MARK, NFT_REG_1), _bitwise(_host32(mask), _host32(0)), _cmp_op(NFT_CMP_EQ, _host32(right))]
    raise Unsupported(f"match {m!r}")


def _numgen(ng: dict[str, Any]) -> bytes:
    if ng.get("mode") != "random" or ng.get("offset", 0) != 0:
        raise Unsupported(f"numgen {ng!r}")
    return _expr("numgen", [u32(NFTA_NG_DREG, NFT_REG_1), u32(NFTA_NG_MODULUS, int(ng["mod"])),
                            u32(NFTA_NG_TYPE, NFT_NG_RANDOM), u32(NFTA_NG_OFFSET, 0)])


def _vmap(arg: dict[str, Any]) -> list[bytes]:
    key, data = arg["key"], arg["data"]
    if not isinstance(data, str) or not data.startswith("@"):
        raise Unsupported("an anonymous verdict map")
    parts = key.get("concat") if isinstance(key, dict) else None
    if parts == _DADDR_L4_DPORT:
        loads = [_payload(NFT_REG_1, 1, 16, 4), _meta(NFT_META_L4PROTO, NFT_REG32_01), _payload(NFT_REG32_02, 2, 2, 2)]
    elif parts == _L4_DPORT:
        loads = [_meta(NFT_META_L4PROTO, NFT_REG_1), _payload(NFT_REG32_01, 2, 2, 2)]
    else:
        raise Unsupported(f"vmap key {key!r}")
    return [*loads, _vmap_lookup(data[1:])]


def _mangle(arg: dict[str, Any]) -> list[bytes]:
    mark = {"meta": {"key": "mark"}}
    value = arg.get("value")
    if arg.get("key") != mark or not isinstance(value, dict) or len(value) != 1:
        raise Unsupported(f"mangle {arg!r}")
    (op, (what, bits)), = value.items()
    if what != mark or op not in ("|", "^") or not isinstance(bits, int):
        raise Unsupported(f"mangle {arg!r}")
    mask = ~bits if op == "|" else 0xFFFFFFFF
    return [_meta(NFT_META_MARK, NFT_REG_1), _bitwise(_host32(mask), _host32(bits)),
            _expr("meta", [u32(2, NFT_META_MARK), u32(NFTA_META_SREG, NFT_REG_1)])]


def _dnat(arg: dict[str, Any]) -> list[bytes]:
    if set(arg) - {"addr", "port"}:
        raise Unsupported(f"dnat {arg!r}")
    out = [_expr("immediate", [u32(NFTA_IMMEDIATE_DREG, NFT_REG_1),
                               nest(NFTA_IMMEDIATE_DATA, [attr(NFTA_DATA_VALUE, ipaddress.IPv4Address(arg["addr"]).packed)])])]
    nat = [u32(NFTA_NAT_TYPE, NFT_NAT_DNAT), u32(NFTA_NAT_FAMILY, NFPROTO_IPV4), u32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1)]
    if "port" in arg:
        out.append(_expr("immediate", [u32(NFTA_IMMEDIATE_DREG, NFT_REG_2),
                                       nest(NFTA_IMMEDIATE_DATA, [attr(NFTA_DATA_VALUE, struct.pack("!H", int(arg["port"])))])]))
        nat += [u32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2), u32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED)]
    return [*out, _expr("nat", nat)]


def statement(stmt: dict[str, Any]) -> list[bytes]:
    """One statement of an ``ip`` table's rule (raises Unsupported)."""
    if len(stmt) != 1:
        raise Unsupported(f"statement {stmt!r}")
    (kind, arg), = stmt.items()
    if kind == "match":
        return _match(arg)
    if kind == "vmap":
        return _vmap(arg)
    if kind == "counter" and arg is None:
        return [nest(NFTA_LIST_ELEM, [attr(1, strz("counter")), nest(2, [])])]
    if kind in ("accept", "drop") and arg is None:
        return [_immediate(kind)]
    if kind == "return" and arg is None:
        return [_expr("immediate", [u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT),
                                    nest(NFTA_IMMEDIATE_DATA, [nest(2, [attr(1, struct.pack("!i", -5))])])])]
    if kind in ("goto", "jump") and isinstance(arg, dict) and isinstance(arg.get("target"), str):
        return [_immediate(kind, arg["target"])]
    if kind == "mangle":
        return _mangle(arg)
    if kind == "dnat":
        return _dnat(arg)
    if kind == "masquerade":
        flags = NF_NAT_RANGE_PROTO_RANDOM_FULLY if arg == {"flags": "fully-random"} else 0
        if arg not in (None, {"flags": "fully-random"}):
            raise Unsupported(f"masquerade {arg!r}")
        return [_expr("masq", [u32(NFTA_MASQ_FLAGS, flags)] if flags else [])]
    if kind == "reject":
        if arg == {"type": "tcp reset"}:
            return [_expr("reject", [u32(NFTA_REJECT_TYPE, NFT_REJECT_TCP_RST), attr(NFTA_REJECT_ICMP_CODE, b"\0")])]
        if arg == {"type": "icmp", "expr": "port-unreachable"}:
            return [_expr("reject", [u32(NFTA_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH),
                                     attr(NFTA_REJECT_ICMP_CODE, bytes([ICMP_PORT_UNREACH]))])]
        raise Unsupported(f"reject {arg!r}")
    if kind == "set" and isinstance(arg, dict) and arg.get("op") == "update":
        offset = _ip_field(arg.get("elem"))
        target = arg.get("set", "")
        if offset is None or not target.startswith("@"):
            raise Unsupported(f"set update {arg!r}")
        return [_payload(NFT_REG_1, 1, offset, 4),
                _expr("dynset", [attr(NFTA_DYNSET_SET_NAME, strz(target[1:])), u32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE),
                                 u32(NFTA_DYNSET_SREG_KEY, NFT_REG_1)])]
    raise Unsupported(f"statement {kind!r}")


# --- objects ---------------------------------------------------------------------------------


def table_command(batch: Batch, verb: str, body: dict[str, Any]) -> None:
    if (body.get("family"), body.get("name")) != (batch.table.family, batch.table.name):
        raise Unsupported("another table")
    name = attr(NFTA_TABLE_NAME, strz(batch.table.name))
    if verb == "add":
        batch.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, name)
    elif verb == "delete":
        batch.add(NFT_MSG_DELTABLE, 0, name)
    else:
        raise Unsupported(f"{verb} table")


def base_chain(batch: Batch, body: dict[str, Any]) -> None:
    """``add chain`` of a base chain (type, hook, priority, policy)."""
    if set(body) - {"family", "table", "name", "type", "hook", "prio", "policy"} or body["hook"] not in _HOOKS:
        raise Unsupported("a base chain of another kind")
    hook = nest(NFTA_CHAIN_HOOK, [u32(NFTA_HOOK_HOOKNUM, _HOOKS[body["hook"]]),
                                  attr(NFTA_HOOK_PRIORITY, struct.pack("!i", int(body["prio"])))])
    batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, _table(batch) + b"".join([
        attr(NFTA_CHAIN_NAME, strz(body["name"])), hook,
        u32(NFTA_CHAIN_POLICY, _POLICIES[body.get("policy", "accept")]),
        attr(NFTA_CHAIN_TYPE, strz(body.get("type", "filter")))]))


def _key_type(types: tuple[str, ...]) -> tuple[int, int]:
    """(nft's type id, key length) of a key, each field padded to 32 bits."""
    ident, length = 0, 0
    for t in types:
        if t not in _TYPE_IDS:
            raise Unsupported(f"key type {t}")
        tid, size = _TYPE_IDS[t]
        ident = (ident << 6) | tid
        length += (size + 3) // 4 * 4
    return ident, length


def set_command(batch: Batch, kind: str, body: dict[str, Any]) -> list[Any] | None:
    """``add set`` (plain, interval or timeout ``ipv4_addr``) or ``add map`` (verdicts on a
    key of known types); returns the elements to add after it (a plain set's or a map's:
    the caller encodes those), having encoded an interval set's itself."""
    types = tuple(body["type"]) if isinstance(body["type"], list) else (body["type"],)
    flags = set(body.get("flags", ()))
    allowed = {"family", "table", "name", "type", "flags", "elem", "timeout", "map"}
    if set(body) - allowed or flags - {"interval", "timeout"}:
        raise Unsupported("set options")
    ident, key_len = _key_type(types)
    set_flags = (NFT_SET_INTERVAL if "interval" in flags else 0) | (
        NFT_SET_TIMEOUT | NFT_SET_EVAL if "timeout" in flags else 0)
    is_map = kind == "map"
    if is_map:
        if body.get("map") != "verdict" or flags:
            raise Unsupported("a map other than a verdict map")
        set_flags |= NFT_SET_MAP
    elif types != ("ipv4_addr",):
        raise Unsupported("a set other than an ipv4_addr set")
    set_id = batch.set_id()
    parts = [attr(NFTA_SET_NAME, strz(body["name"])), u32(NFTA_SET_FLAGS, set_flags), u32(NFTA_SET_KEY_TYPE, ident),
             u32(NFTA_SET_KEY_LEN, key_len), u32(NFTA_SET_ID, set_id)]
    if is_map:
        parts += [u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT), u32(NFTA_SET_DATA_LEN, 0)]
    if "timeout" in flags:
        parts.append(attr(NFTA_SET_TIMEOUT, struct.pack("!Q", int(body["timeout"]) * 1000)))
    if types == ("ipv4_addr",):
        parts.append(attr(NFTA_SET_USERDATA, _BIG_ENDIAN_KEY))
    batch.add(NFT_MSG_NEWSET, NLM_F_CREATE, _table(batch) + b"".join(parts))
    elems = list(body.get("elem", ()))
    if "interval" in flags:
        if elems:
            _interval_elements(batch, body["name"], set_id, elems)
        return None
    batch.new_sets[body["name"]] = (types, is_map)
    return elems


def _span(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        n = int(ipaddress.IPv4Address(value))
        return n, n
    if "prefix" in value:
        net = ipaddress.IPv4Network(f"{value['prefix']['addr']}/{value['prefix']['len']}", strict=False)
        return int(net.network_address), int(net.broadcast_address)
    lo, hi = value["range"]
    return int(ipaddress.IPv4Address(lo)), int(ipaddress.IPv4Address(hi))


def _interval_elements(batch: Batch, name: str, set_id: int, elems: list[Any]) -> None:
    """An interval set's elements as the kernel keeps them: each range's start, and the
    address after its end flagged as an interval end (the first one from 0.0.0.0 when the
    ranges do not start there)."""
    spans = sorted(_span(e) for e in elems)
    keys: list[tuple[int, bool]] = []
    if spans and spans[0][0] > 0:
        keys.append((0, True))
    for lo, hi in spans:
        keys.append((lo, False))
        if hi < 0xFFFFFFFF:
            keys.append((hi + 1, True))
    items = [nest(NFTA_LIST_ELEM, [nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, struct.pack("!I", k))])]
                  + ([u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END)] if end else []))
             for k, end in keys]
    batch.add(NFT_MSG_NEWSETELEM, NLM_F_CREATE, attr(NFTA_SET_ELEM_LIST_TABLE, strz(batch.table.name))
              + attr(NFTA_SET_ELEM_LIST_SET, strz(name)) + u32(NFTA_SET_ELEM_LIST_SET_ID, set_id)
              + nest(NFTA_SET_ELEM_LIST_ELEMENTS, items))


def delete_map(batch: Batch, body: dict[str, Any]) -> None:
    batch.add(NFT_MSG_DELSET, 0, _table(batch) + attr(NFTA_SET_NAME, strz(body["name"])))
