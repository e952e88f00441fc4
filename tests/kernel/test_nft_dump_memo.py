"""The table reader's memo (each rule decoded once, only its counter read on later scrapes) gives
exactly what a reader decoding every message gives, while counters move and rules change."""
from __future__ import annotations

import subprocess

import pytest

from podnet.dataplane.nft.model import TableId
from podnet.kernel import netns
from podnet.kernel.nft.dump import TableReader

pytestmark = pytest.mark.kernel

TABLE = TableId("inet", "memo")


def nft(ns: str, script: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True, check=True)


def ping(ns: str, count: int) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.01", "-q", "127.0.0.1"],
                   check=True, capture_output=True)


def test_memo_reads_equal_full_decoding(prefix: str) -> None:
    ns = f"{prefix}memo"
    netns.create(ns)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        nft(ns, "table inet memo {\n chain out { type filter hook output priority 0; policy accept;\n"
                "  icmp type echo-request counter accept comment \"ping out\"\n"
                "  meta l4proto tcp counter drop comment \"tcp\"\n"
                "  counter comment \"everything\"\n }\n}\n")
        memo, full = TableReader(TABLE, ns), TableReader(TABLE, ns, memo=False)
        try:
            first = memo.read()
            assert first == full.read() and len(first.counted) == 3
            ping(ns, 3)
            second = memo.read()
            assert second == full.read()
            moved = {r.comment: r.packets for r in second.counted}
            assert moved["ping out"] == 3 and moved["everything"] >= 3
            assert memo.memo is not None and len(memo.memo) == 3  # decoded once, then served from the memo
            nft(ns, "add rule inet memo out ip daddr 192.0.2.1 counter drop comment \"added\"\n")
            ping(ns, 2)
            third = memo.read()
            assert third == full.read()
            assert {r.comment for r in third.counted} == {"ping out", "tcp", "everything", "added"}
            nft(ns, "flush chain inet memo out\nadd rule inet memo out counter accept comment \"only\"\n")
            fourth = memo.read()
            assert fourth == full.read() and [r.comment for r in fourth.counted] == ["only"]
            assert len(memo.memo) == 1  # rules gone from the table left the memo
        finally:
            memo.close()
            full.close()
    finally:
        netns.remove(ns)
