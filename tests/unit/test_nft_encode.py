"""The raw netlink encoding of element commands (``kernel/nft_netlink.py``): key layouts as
nf_tables stores them, and the commands it declines (they go through libnftables)."""
from __future__ import annotations

import struct

from podnet.kernel.nft_netlink import (NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFT_MSG_DELSETELEM,
                                       NFT_MSG_NEWSETELEM, encode, encode_key)

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
    got = encode(cmds, "podnet", INFO.get, 100)
    assert got is not None
    batch, acked = got
    msgs = _messages(batch)
    assert [m[0] for m in msgs] == [NFNL_MSG_BATCH_BEGIN, (10 << 8) | NFT_MSG_DELSETELEM, (10 << 8) | NFT_MSG_NEWSETELEM,
                                    NFNL_MSG_BATCH_END]
    assert acked == [101, 102] and [m[2] for m in msgs] == [100, 101, 102, 103]
    assert b"egress-1\0" in batch and b"caliabc" in batch


def test_declines_what_it_cannot_encode() -> None:
    info = {**INFO, "net4-x": None}
    assert encode([{"add": {"element": {**T, "name": "net4-x", "elem": ["10.0.0.0/8"]}}}], "podnet", info.get, 1) is None
    assert encode([{"add": {"element": {**T, "name": "unknown", "elem": ["10.0.0.1"]}}}], "podnet", info.get, 1) is None
    assert encode([{"flush": {"chain": {**T, "name": "to-wl"}}}], "podnet", info.get, 1) is None
    assert encode([{"add": {"element": {**T, "name": "to-pod", "elem": ["x" * 16]}}}], "podnet", info.get, 1) is None
    # a map element to add needs its verdict
    assert encode([{"add": {"element": {**T, "name": "to-pod", "elem": ["cali1"]}}}], "podnet", info.get, 1) is None
