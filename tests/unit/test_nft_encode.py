"""The raw netlink encoding (``kernel/nft/netlink.py``, ``kernel/nft/netlink_rules.py``): key
layouts as nf_tables stores them, a chain rewrite with its anonymous port sets, a rule's named
port set and the dispatch's membership sets, and the commands it declines (they go through libnftables)."""
from __future__ import annotations

import struct

from podnet.dataplane.nft.model import POLICY_TABLE
from podnet.kernel.nft.netlink import (
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFT_MSG_DELSETELEM,
    NFT_MSG_NEWSETELEM,
    encode,
    encode_key,
)

T = {"family": "inet", "table": "podnet"}
INFO = {"pods-x": (("ipv4_addr",), False), "from-pod": (("ifname", "ipv4_addr"), True),
        "to-pod": (("ifname",), True), "ports": (("inet_proto", "inet_service"), False)}


def _messages(batch: bytes) -> list[tuple[int, int, int]]:
    out, off = [], 0
    while off < len(batch):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", batch, off)
        out.append((kind, flags, seq))
        off += length
    return out


def test_key_layouts() -> None:
    assert encode_key("10.0.0.1", ("ipv4_addr",)) == bytes([10, 0, 0, 1])
    assert encode_key("cali0123456789a", ("ifname",)) == b"cali0123456789a\0"
    # concatenations pad each field to 32 bits
    assert encode_key({"concat": ["eth0", "10.0.0.1"]}, ("ifname", "ipv4_addr")) == b"eth0" + b"\0" * 12 + bytes([10, 0, 0, 1])
    assert encode_key({"concat": ["tcp", 80]}, ("inet_proto", "inet_service")) == bytes([6, 0, 0, 0, 0, 80, 0, 0])


def test_batch_is_one_transaction_with_an_ack_per_command() -> None:
    cmds = [{"delete": {"element": {**T, "name": "pods-x", "elem": ["10.0.0.1"]}}},
            {"add": {"element": {**T, "name": "from-pod",
                                 "elem": [[{"concat": ["caliabc", "10.0.0.2"]}, {"goto": {"target": "egress-1"}}]]}}}]
    got = encode(cmds, POLICY_TABLE, INFO.get, 100)
    assert got is not None
    batch, acked = got
    msgs = _messages(batch)
    assert [m[0] for m in msgs] == [NFNL_MSG_BATCH_BEGIN, (10 << 8) | NFT_MSG_DELSETELEM, (10 << 8) | NFT_MSG_NEWSETELEM,
                                    NFNL_MSG_BATCH_END]
    assert acked == [101, 102] and [m[2] for m in msgs] == [100, 101, 102, 103]
    assert b"egress-1\0" in batch and b"caliabc" in batch


def test_declines_what_it_cannot_encode() -> None:
    info = {**INFO, "net4-x": None}
    assert encode([{"add": {"element": {**T, "name": "net4-x", "elem": ["10.0.0.0/8"]}}}], POLICY_TABLE, info.get, 1) is None
    assert encode([{"add": {"element": {**T, "name": "unknown", "elem": ["10.0.0.1"]}}}], POLICY_TABLE, info.get, 1) is None
    assert encode([{"flush": {"table": {"family": "inet", "name": "podnet"}}}], POLICY_TABLE, info.get, 1) is None
    assert encode([{"flush": {"chain": {"family": "inet", "table": "other", "name": "x"}}}], POLICY_TABLE, info.get, 1) is None
    assert encode([{"add": {"element": {**T, "name": "to-pod", "elem": ["x" * 16]}}}], POLICY_TABLE, info.get, 1) is None
    # a map element to add needs its verdict
    assert encode([{"add": {"element": {**T, "name": "to-pod", "elem": ["cali1"]}}}], POLICY_TABLE, info.get, 1) is None


def test_a_chain_rewrite_is_one_batch_with_its_anonymous_port_sets() -> None:
    """flush + rules with ports: DELRULE, then for each rule its anonymous set (NEWSET, its
    elements by set id) before the NEWRULE that looks it up; a range makes it an interval
    concatenation (key and key end per element)."""
    from podnet.kernel.nft import netlink_rules as r

    ports = {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}
    rule = {**T, "chain": "pi-x", "comment": "ab12cd34 ns/pol spec.ingress[0]",
            "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@pods-x"}},
                     {"match": {"op": "==", "left": ports,
                                "right": {"set": [{"concat": ["tcp", 80]}, {"concat": ["udp", {"range": [1000, 2000]}]}]}}},
                     {"counter": None}, {"accept": None}]}
    got = encode([{"flush": {"chain": {**T, "name": "pi-x"}}}, {"add": {"rule": rule}}], POLICY_TABLE, INFO.get, 10)
    assert got is not None
    batch, acked = got
    kinds = [m[0] & 0xFF for m in _messages(batch)[1:-1]]
    assert kinds == [r.NFT_MSG_DELRULE, r.NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, r.NFT_MSG_NEWRULE] and len(acked) == 4
    assert b"ab12cd34 ns/pol spec.ingress[0]\0" in batch and b"pods-x\0" in batch and b"__set%d\0" in batch
    flags = struct.pack("!I", r.NFT_SET_ANONYMOUS | r.NFT_SET_CONSTANT | r.NFT_SET_INTERVAL | r.NFT_SET_CONCAT)
    assert flags in batch and bytes([17, 0, 0, 0, 0x07, 0xD0, 0, 0]) in batch  # udp . 2000 (the key end)
    # Without a range: a plain anonymous set, no byteorder step.
    rule["expr"][1]["match"]["right"] = {"set": [{"concat": ["tcp", 80]}]}
    plain, _ = encode([{"add": {"rule": rule}}], POLICY_TABLE, INFO.get, 10)  # type: ignore[misc]
    assert b"byteorder" not in plain and b"byteorder" in batch


def test_declines_what_libnftables_must_send() -> None:
    named = {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": "l4proto"}},
                        {"payload": {"protocol": "th", "field": "dport"}}]}
    cases = [
        {"add": {"chain": {**T, "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {**T, "chain": "po-x", "expr": [{"match": {"op": "==", "left": named, "right": "@nport-x"}},
                                                           {"accept": None}]}}},
        {"add": {"rule": {**T, "chain": "po-x", "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                                                     "right": ["established"]}}, {"accept": None}]}}},
        {"add": {"set": {**T, "name": "net4-x", "type": "ipv4_addr", "flags": ["interval"], "elem": ["10.0.0.0/8"]}}},
        {"add": {"table": {"family": "inet", "name": "podnet"}}},
    ]
    for cmd in cases:
        assert encode([cmd], POLICY_TABLE, INFO.get, 1) is None, cmd
    # A new plain address set and its elements are encoded (the elements find the new set).
    new = {"add": {"set": {**T, "name": "pods-new", "type": "ipv4_addr", "elem": ["10.0.0.1", "10.0.0.2"]}}}
    got = encode([new, {"delete": {"set": {**T, "name": "pods-old"}}}], POLICY_TABLE, INFO.get, 1)
    assert got is not None and bytes([10, 0, 0, 2]) in got[0]


def test_a_rules_port_set_is_edited_by_its_first_and_last_keys() -> None:
    """A concatenated interval set's elements go with their last key (KEY_END): one port and a
    range, deleted and added in one batch; the rule looking it up puts the protocol byte in
    network order first, as nft does for interval concatenations."""
    info = {"ports-1": (("inet_proto", "inet_service"), False, True)}
    cmds = [{"delete": {"element": {**T, "name": "ports-1", "elem": [{"concat": ["tcp", 80]}]}}},
            {"add": {"element": {**T, "name": "ports-1", "elem": [{"concat": ["udp", {"range": [1000, 2000]}]}]}}}]
    encoded = encode(cmds, POLICY_TABLE, info.get, 1)
    assert encoded is not None
    batch, _ = encoded
    tcp80 = bytes([6, 0, 0, 0, 0, 80, 0, 0])
    assert batch.count(tcp80) == 2  # key and key end of the single port
    assert bytes([17, 0, 0, 0]) + struct.pack("!H", 1000) in batch and bytes([17, 0, 0, 0]) + struct.pack("!H", 2000) in batch
    rule = [{"add": {"rule": {**T, "chain": "pi-x", "comment": "c", "expr": [
        {"match": {"op": "==", "left": {"concat": [{"meta": {"key": "l4proto"}},
                                                   {"payload": {"protocol": "th", "field": "dport"}}]},
                   "right": "@ports-1"}}, {"accept": None}]}}}]
    encoded = encode(rule, POLICY_TABLE, info.get, 10)
    assert encoded is not None and b"byteorder\0" in encoded[0] and b"ports-1\0" in encoded[0]
    # an unknown port set: declined (libnftables sends it)
    assert encode(rule, POLICY_TABLE, lambda name: None, 20) is None


def test_dispatch_rules_and_membership_sets_are_encoded() -> None:
    """The dispatch chains' lookups (interface and address, interface) and the membership sets
    they read, created in the same batch."""
    cmds = [{"add": {"set": {**T, "name": "from-1", "type": ["ifname", "ipv4_addr"],
                             "elem": [{"concat": ["cali0123456789a", "10.244.1.2"]}]}}},
            {"add": {"set": {**T, "name": "to-1", "type": "ifname", "elem": ["cali0123456789a"]}}},
            {"add": {"rule": {**T, "chain": "from-wl", "comment": "c", "expr": [
                {"match": {"op": "==", "left": {"concat": [{"meta": {"key": "iifname"}},
                                                           {"payload": {"protocol": "ip", "field": "saddr"}}]},
                           "right": "@from-1"}}, {"goto": {"target": "egress-1"}}]}}},
            {"add": {"rule": {**T, "chain": "to-wl", "comment": "c", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "@to-1"}}, {"accept": None}]}}}]
    encoded = encode(cmds, POLICY_TABLE, lambda name: None, 1)
    assert encoded is not None
    batch, acked = encoded
    assert len(acked) == 6  # two sets, their elements, two rules
    assert b"cali0123456789a\0" + bytes([10, 244, 1, 2]) in batch and b"egress-1\0" in batch
