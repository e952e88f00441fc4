"""Network faults without netem (this kernel has none), as nftables tables of their own in a
namespace the lab made: a partition (drop, no reset: a blackhole, as in Calico's etcd restart
test) and random loss (``meta random``); each removed again by deleting its table."""
from __future__ import annotations

import subprocess
from collections.abc import Sequence

from podnet.kernel import netns

TABLE = "podnet-fault"


def _nft(ns: str, script: str) -> None:
    subprocess.run(netns.nsenter_argv(ns, ["nft", "-f", "-"]), input=script.encode(), check=True,
                   capture_output=True, timeout=30)


def blackhole(ns: str, addresses: Sequence[str], port: int | None = None) -> None:
    """Packets from ``ns`` to ``addresses`` (optionally one TCP port) vanish, both ways."""
    match = f"tcp dport {port} " if port else ""
    back = f"tcp sport {port} " if port else ""
    addrs = ", ".join(addresses)
    _nft(ns, f"table inet {TABLE} {{\n"
             f"  chain out {{ type filter hook output priority -10; ip daddr {{ {addrs} }} {match}drop; }}\n"
             f"  chain in {{ type filter hook input priority -10; ip saddr {{ {addrs} }} {back}drop; }}\n"
             "}\n")


def random_loss(ns: str, percent: int) -> None:
    """``percent`` % of the packets leaving ``ns`` are dropped (no netem: ``meta random``)."""
    _nft(ns, f"table inet {TABLE} {{\n"
             f"  chain out {{ type filter hook output priority -10; meta random % 100 < {percent} drop; }}\n"
             "}\n")


def heal(ns: str) -> None:
    """Remove every fault of this kit from ``ns`` (idempotent)."""
    subprocess.run(netns.nsenter_argv(ns, ["nft", "delete", "table", "inet", TABLE]), capture_output=True, timeout=30)
