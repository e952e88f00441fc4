"""LoadBalancer addresses a node answers ARP for (routing/l2.py decides which).

Each is a /32 on the underlay device with the label ``<dev>:lb``, as kube-vip holds its VIPs:
the kernel then answers ARP for it and the service table's DNAT (prerouting) takes the traffic
to an endpoint. The label is how podnet knows the address is its own: nothing else on the
device is ever touched. A newly taken address is announced with one gratuitous ARP (iputils
``arping -U``) so the router's neighbour cache moves at once when the address changes node."""
from __future__ import annotations

import shutil
import subprocess
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import netns as netns_mod

ARPING = "arping"


def label(dev: str) -> str:
    return f"{dev}:lb"


def read(ipr: IPRoute, dev: str) -> set[str]:
    """The podnet-held LoadBalancer addresses on ``dev``."""
    links = ipr.link_lookup(ifname=dev)
    if not links:
        return set()
    return {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=links[0], family=2)
            if a.get_attr("IFA_LABEL") == label(dev) and a["prefixlen"] == 32}


def apply(ipr: IPRoute, dev: str, want: frozenset[str]) -> tuple[list[str], list[str], list[str]]:
    """Make ``dev``'s LoadBalancer addresses equal ``want``: (added, removed, errors)."""
    links = ipr.link_lookup(ifname=dev)
    if not links:
        return [], [], [f"lb addresses: no device {dev}"] if want else []
    index = links[0]
    have = read(ipr, dev)
    added, removed, errors = [], [], []
    for ip in sorted(have - want):
        try:
            ipr.addr("del", index=index, address=ip, prefixlen=32)
            removed.append(ip)
        except NetlinkError as exc:
            errors.append(f"lb address -{ip} on {dev}: {exc}")
    for ip in sorted(want - have):
        try:
            ipr.addr("add", index=index, address=ip, prefixlen=32, label=label(dev))
            added.append(ip)
        except NetlinkError as exc:
            errors.append(f"lb address +{ip} on {dev}: {exc}")
    return added, removed, errors


def announce(dev: str, address: str, netns: str | None = None) -> None:
    """One gratuitous ARP for ``address`` from ``dev``, in the background (arping waits a
    second for replies that never come; the routing pass does not)."""
    if shutil.which(ARPING) is None:
        return
    argv = [ARPING, "-q", "-U", "-c", "1", "-I", dev, address]
    argv = netns_mod.nsenter_argv(netns, argv) if netns else argv
    threading.Thread(target=subprocess.run, args=(argv,), kwargs={"capture_output": True, "timeout": 5},
                     daemon=True, name=f"garp-{address}").start()
