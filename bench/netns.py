"""Network namespace create + remove: podnet's kernel.netns (unshare + bind mount in the calling
thread, no fork) against ``ip netns add`` / ``ip netns del``, interleaved in one run.

Run as root: .venv/bin/python bench/netns.py [--runs 200]
Every namespace is named ``pb-<random>-…`` and removed in the same iteration.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.kernel import netns  # noqa: E402


def podnet_cycle(name: str) -> float:
    t = time.perf_counter()
    netns.create(name)
    netns.remove(name)
    return time.perf_counter() - t


def iproute2_cycle(name: str) -> float:
    t = time.perf_counter()
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "del", name], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    runs = ap.parse_args().runs
    prefix = f"pb-{secrets.token_hex(3)}-"
    ours, ref = [], []
    for i in range(runs):
        pair = [(ours, podnet_cycle), (ref, iproute2_cycle)]
        for acc, cycle in (pair if i % 2 == 0 else pair[::-1]):
            acc.append(cycle(f"{prefix}{i}"))
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"netns create+remove, median of {runs}: podnet {a * 1e3:.2f} ms, ip netns {b * 1e3:.2f} ms "
          f"= {b / a:.1f}x faster")


if __name__ == "__main__":
    main()
