"""``net.ipv4.conf.all.route_localnet`` of a node: lets a packet to 127.0.0.1 that a host port
forward translated leave towards the pod (the kernel otherwise drops a loopback source on a
non-loopback device). portmap and kube-proxy set the same switch for the same reason."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import netns as _netns

KEY = "/proc/sys/net/ipv4/conf/all/route_localnet"


@contextlib.contextmanager
def _inside(netns: str | None) -> Iterator[None]:
    if netns is None:  # a node process already running inside its node's namespace
        yield
        return
    with _netns.enter(netns):
        yield


def route_localnet(netns: str | None) -> bool:
    """Whether the node routes loopback-sourced packets out (``netns``: None is the caller's)."""
    with _inside(netns), open(KEY) as f:
        return f.read().strip() == "1"


def enable_route_localnet(netns: str | None) -> bool:
    """Turn it on (never off: other forwards may rely on it); True if this call changed it."""
    with _inside(netns):
        with open(KEY) as f:
            if f.read().strip() == "1":
                return False
        with open(KEY, "w") as f:
            f.write("1")
    return True
