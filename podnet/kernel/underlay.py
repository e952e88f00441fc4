"""Building blocks of the emulated underlay, all inside namespaces podnet created: bridges,
veth wires between namespaces, addresses, plain routes and sysctls.

Everything goes through netlink sockets opened inside the target namespace (no ``ip`` exec,
no fork), so building a 10-node lab takes well under a second."""
from __future__ import annotations

import os
from typing import Any

from pyroute2 import IPRoute

from podnet.errors import PodnetError

from . import netns
from .netns import ipr_in


def index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise PodnetError(f"link {ifname} not found")
    return int(found[0])


def sysctl(ns: str, key: str, value: str | int) -> None:
    """Write a net.* sysctl inside a namespace (/proc/sys/net follows the calling thread's
    netns). There is deliberately no "current namespace" form: that would be the host's."""
    with netns.enter(ns):
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))


def add_bridge(ns: str, name: str, address: str | None = None) -> None:
    with ipr_in(ns) as ipr:
        ipr.link("add", ifname=name, kind="bridge")
        idx = index(ipr, name)
        if address:
            _add_cidr(ipr, idx, address)
        ipr.link("set", index=idx, state="up")


def _add_cidr(ipr: IPRoute, idx: int, cidr: str) -> None:
    addr, _, plen = cidr.partition("/")
    ipr.addr("add", index=idx, address=addr, prefixlen=int(plen or 32))


def wire(a_ns: str, a_if: str, b_ns: str, b_if: str, *, a_addr: str | None = None,
         b_addr: str | None = None, b_master: str | None = None, mtu: int | None = None) -> None:
    """A veth pair from ``a_ns``/``a_if`` to ``b_ns``/``b_if``, both ends up; optional addresses
    and a bridge on the ``b`` side."""
    b_fd = os.open(netns.path(b_ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with ipr_in(a_ns) as ipr:
            kw = {"mtu": mtu} if mtu else {}
            ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if, "net_ns_fd": b_fd, **kw}, **kw)
            idx = index(ipr, a_if)
            if a_addr:
                _add_cidr(ipr, idx, a_addr)
            ipr.link("set", index=idx, state="up")
    finally:
        os.close(b_fd)
    with ipr_in(b_ns) as ipr:
        idx = index(ipr, b_if)
        if b_master:
            ipr.link("set", index=idx, master=index(ipr, b_master))
        if b_addr:
            _add_cidr(ipr, idx, b_addr)
        ipr.link("set", index=idx, state="up")


def add_route(ns: str, dst: str, gateway: str | None = None, dev: str | None = None, scope: int | None = None) -> None:
    """A topology route (default routes of nodes and hosts) in a namespace podnet built."""
    with ipr_in(ns) as ipr:
        kw: dict[str, Any] = {"dst": dst}
        if gateway:
            kw["gateway"] = gateway
        if dev:
            kw["oif"] = index(ipr, dev)
        if scope is not None:
            kw["scope"] = scope
        ipr.route("replace", **kw)


def wire_pod(node_ns: str, pod_ns: str, host_if: str, ip: str, mtu: int = 1500) -> None:
    """A pod namespace wired exactly as the CNI plugin wires one (``podwire.wire``), for the lab
    and benchmarks when no agent runs. Removes the namespace again if wiring fails."""
    from .podwire import wire

    netns.create(pod_ns)
    try:
        wire(node_ns, pod_ns, "eth0", host_if, f"{ip}/32", mtu)
    except BaseException:
        netns.remove(pod_ns)
        raise


def wait_carrier(namespaces: list[str], timeout: float = 5.0) -> list[str]:
    """Wait until every veth/bridge-port in ``namespaces`` has carrier (operstate UP).

    The kernel rate-limits carrier events (linkwatch, up to ~1 s when many links change at
    once), and a bridge forwards through a port only after it saw the carrier. Returns the
    links still down at the timeout (empty: all up)."""
    import time

    deadline = time.monotonic() + timeout
    pending = list(namespaces)  # a namespace whose links all have carrier is not read again
    while True:
        down = []
        for ns in pending:
            with ipr_in(ns) as ipr:
                for link in ipr.get_links():
                    info = link.get_attr("IFLA_LINKINFO")
                    kind = info.get_attr("IFLA_INFO_KIND") if info else None
                    if kind == "veth" and link.get_attr("IFLA_OPERSTATE") != "UP":
                        down.append(f"{ns}/{link.get_attr('IFLA_IFNAME')}")
        if not down or time.monotonic() > deadline:
            return down
        pending = [ns for ns in pending if any(d.startswith(f"{ns}/") for d in down)]
        time.sleep(0.02)
