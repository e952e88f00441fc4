"""Served from a snapshot read ahead of the scrape, the policy table's rule series still equal
the kernel's counters exactly as `nft -j list table` shows them at the moment of the read, and a
snapshot is never served past max_age."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podnet.dataplane.nft.model import TableId
from podnet.kernel import netns
from podnet.kernel.nft.dump import TableReader
from podnet.telemetry.policy_table import PolicyTableCollector
from podnet.telemetry.snapshot import PrefetchedText

pytestmark = pytest.mark.kernel

TABLE = TableId("inet", "podnet")


def ping(ns: str, count: int) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.01", "-q", "127.0.0.1"],
                   check=True, capture_output=True)


def kernel_packets(ns: str) -> dict[str, int]:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "podnet"],
                         capture_output=True, text=True, check=True).stdout
    got = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        counter = next((e["counter"] for e in (rule or {}).get("expr", ()) if "counter" in e), None)
        if rule is not None and counter is not None:
            got[rule["comment"].split(" ", 1)[1]] = counter["packets"]
    return got


def served_packets(body: bytes) -> dict[str, float]:
    return {s.labels["rule"]: s.value for f in text_string_to_metric_families(body.decode())
            for s in f.samples if s.name == "podnet_policy_rule_packets_total"}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_read_ahead_values_equal_the_kernels(prefix: str) -> None:
    ns = f"{prefix}pref"
    netns.create(ns)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], text=True, check=True, input=(
            "table inet podnet {\n chain out { type filter hook output priority 0; policy accept;\n"
            "  icmp type echo-request counter accept comment \"00000001 ping out\"\n"
            "  meta l4proto tcp counter drop comment \"00000002 tcp\"\n }\n}\n"))
        reader = TableReader(TABLE, ns)
        clock, pending = Clock(), list[Callable[[], None]]()

        def schedule(delay: float, fn: Callable[[], None]) -> Callable[[], None]:
            pending.append(fn)
            return pending.clear

        served = PrefetchedText(PolicyTableCollector(reader.read, str(TABLE)), max_age=1.0, clock=clock,
                                schedule=schedule)
        try:
            ping(ns, 2)
            assert served_packets(served.expose()) == kernel_packets(ns) == {"ping out": 2, "tcp": 0}
            clock.now += 10.0
            served.expose()  # a second scrape: the next read is scheduled ahead of the third
            ping(ns, 3)
            clock.now += 9.9
            pending.pop()()  # the read ahead runs
            kernel = kernel_packets(ns)
            ping(ns, 1)  # after the read: not in the snapshot served next
            clock.now += 0.1
            assert served_packets(served.expose()) == kernel == {"ping out": 5, "tcp": 0}
            clock.now += 1.5  # past max_age: read again during the scrape
            assert served_packets(served.expose()) == kernel_packets(ns) == {"ping out": 6, "tcp": 0}
        finally:
            served.close()
            reader.close()
    finally:
        netns.remove(ns)
