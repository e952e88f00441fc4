"""What holding tracked flows to a new policy costs the policy loop, side by side in one run.

After a commit that changed some pods' rules, the loop reads the node's conntrack entries of
those pods over ctnetlink, asks the policy engine about each distinct flow and marks the denied
ones (``kernel/conntrack.py``, ``dataplane/nft/recheck.py``). This fills a node namespace of a
policy lab with N UDP entries of one pod (created over ctnetlink, as if N peers talked to it)
and times, per N, medians of 5: reading them and judging them all allowed (nothing to write),
and (median of 3) judging them all denied (one mark write each; "marked" counts them), next to
a dump of the same table decoded by pyroute2 (what reading them cost before ``conntrack -L``).

Run as root: .venv/bin/python bench/flow_hold.py [--entries 1000,10000]
"""
from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.dataplane.nft.flows import FlowVerdicts  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.kernel.conntrack import enforce_pod_flows  # noqa: E402
from podnet.testing.policy_lab import PolicyLab  # noqa: E402


def _fill(ns: str, pod_ip: str, count: int) -> None:
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    # pyroute2 opens its socket on first use: every call stays inside the namespace
    with netns.enter(ns):
        ct = Conntrack()
        try:
            ct.flush()
            for i in range(count):
                peer = f"10.244.2.{2 + i % 250}"
                sport = 10000 + i // 250
                ct.entry("add", timeout=600,
                         tuple_orig=NFCTAttrTuple(saddr=peer, daddr=pod_ip, proto=socket.IPPROTO_UDP,
                                                  sport=sport, dport=53),
                         tuple_reply=NFCTAttrTuple(saddr=pod_ip, daddr=peer, proto=socket.IPPROTO_UDP,
                                                   sport=53, dport=sport))
        finally:
            ct.close()


def _dump(ns: str) -> int:
    from pyroute2 import Conntrack

    with netns.enter(ns):
        ct = Conntrack()
        try:
            return sum(1 for _ in ct.dump_entries())
        finally:
            ct.close()


def _median_ms(fn: object, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", default="1000,10000")
    args = ap.parse_args()
    lab = PolicyLab.build(f"pnfh{secrets.token_hex(2)}")
    try:
        pod = lab.add_pod("default", "dns", "n1", {"app": "dns"})
        ns = lab.nodes["n1"].netns
        lab.apply(lab.state([]))  # the table (and so conntrack) in the node namespace
        print(f"{'entries':>8} {'dump ms':>9} {'hold, all allowed ms':>21} {'hold, all denied ms':>20} "
              f"{'us/entry (allowed)':>19} {'marked':>7}")
        for count in (int(n) for n in args.entries.split(",")):
            _fill(ns, pod.ip, count)
            listed = _dump(ns)
            dump = _median_ms(lambda: _dump(ns))
            allowed = _median_ms(lambda: enforce_pod_flows(ns, [pod.ip], lambda flows: FlowVerdicts()))

            denied_times: list[float] = []
            for _ in range(3):
                _fill(ns, pod.ip, count)  # unmarked again (not timed)
                t0 = time.perf_counter()
                marked = enforce_pod_flows(ns, [pod.ip], lambda flows: FlowVerdicts(deny=tuple(flows)))["denied"]
                denied_times.append((time.perf_counter() - t0) * 1000)
            denied = statistics.median(denied_times)
            print(f"{listed:>8} {dump:>9.1f} {allowed:>21.1f} {denied:>20.1f} {allowed * 1000 / max(listed, 1):>19.1f} {marked:>7}")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
