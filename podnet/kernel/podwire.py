"""Calico-style pod wiring over netlink: one veth per pod, /32 routes, proxy ARP.

Pod side: ``eth0`` with the pod's /32, a link route to 169.254.1.1 and the default route via
it. Host side: ``cali…`` with MAC ee:ee:ee:ee:ee:ee, up, a /32 route to the pod, proxy_arp
(so the node answers the pod's ARP for 169.254.1.1 with its own MAC), proxy_delay 0
(a child namespace has no ``neigh.default``; without it the first answer waits up to 0.8 s)
and rp_filter 1 (a packet from the pod with another's address is dropped on arrival).

All sockets are opened inside the target namespaces by switching only the calling thread
(``netns.enter``), so nothing forks. Every step can be undone (``unwire`` is idempotent).
"""
from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import netns, rtnl
from .netns import ipr_in
from .rtnl import Rtnl

if TYPE_CHECKING:  # pyroute2 is loaded only by the rare paths below (CHECK, DEL without the pod's namespace):
    from pyroute2 import IPRoute  # ADD runs on rtnl alone, and the agent starts without it

GATEWAY = "169.254.1.1"
HOST_MAC = "ee:ee:ee:ee:ee:ee"
RT_SCOPE_LINK = 253
RTPROT_PODNET_POD = 3  # "boot", as CNI plugins install pod routes; routing appliers leave it alone

Hook = Callable[[str], None]


@dataclass(frozen=True)
class Wired:
    """What the kernel now has for one pod attachment."""

    host_ifname: str
    host_mac: str
    ifname: str
    mac: str


def _index(ipr: IPRoute, ifname: str) -> int | None:
    """The link's index by name: one RTM_GETLINK (link_lookup would dump every link)."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return int(ipr.link("get", ifname=ifname)[0]["index"])
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise


def random_mac() -> str:
    """A random unicast, locally administered MAC (what the kernel would pick, but known up front)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def _route_once(rt: Rtnl, dst: str, oif: int, **kw: Any) -> None:
    """Add a route; an existing one (a second interface in the same pod) is kept as it is."""
    try:
        rt.add_route(dst, oif, **kw)
    except FileExistsError:
        pass


def wire(host_ns: str, pod_ns: str, ifname: str, host_ifname: str, address: str | Callable[[], str], mtu: int,
         hook: Hook = lambda step: None) -> Wired:
    """Create and configure the veth pair; on any failure remove what was made and re-raise.

    ``address`` may be a callable, asked for the pod's address only once the veth exists: the
    CNI handler allocates it from IPAM while the kernel creates the pair (the two are
    independent and each is about half of an ADD's work); if it raises, the pair is removed.

    ``hook(step)`` runs after each step (veth, pod-side, host-side): it lets tests inject a
    failure at every point and prove the rollback leaves nothing behind. Nine rtnetlink
    requests at most (``rtnl.Rtnl``; seven when the kernel echoes the new link's indexes), the
    two per-interface sysctls included, so the host namespace is never entered after its socket
    is open; the pod end is created up, with MTU and MACs set. After the veth, each side's
    three requests go in one datagram: three system calls in all on Linux ≥ 6.1.
    """
    host_fd = os.open(host_ns if host_ns.startswith("/") else netns.path(host_ns), os.O_RDONLY | os.O_CLOEXEC)
    created = False
    try:
        with Rtnl(pod_ns) as pod, Rtnl(host_ns) as host:
            mac = random_mac()  # chosen here, so no read-back is needed
            for attempt in (1, 2):
                try:
                    echoed = pod.add_veth(ifname, host_ifname, host_fd, mtu=mtu, mac=mac, peer_mac=HOST_MAC)
                    break
                except FileExistsError:
                    # the pod's own interface exists: a repeated ADD, refuse and touch nothing
                    stale = None if pod.link_index(ifname) is not None else host.link_index(host_ifname)
                    if stale is None or attempt == 2:
                        raise FileExistsError(errno.EEXIST, f"interface {ifname} already exists in {pod_ns}") from None
                    host.del_link(stale)  # left over from a pod of the same name whose DEL never came
            created = True
            hook("veth")
            eth, hidx = echoed or (pod.link_index(ifname), host.link_index(host_ifname))
            assert eth is not None and hidx is not None
            ip = ipaddress.ip_interface(address() if callable(address) else address).ip
            plen = ip.max_prefixlen
            # each side in one datagram (``Rtnl.batch``); a route a second interface of the pod
            # already added is kept as it is
            pod.batch([rtnl.add_address_msg(eth, str(ip), plen),
                       rtnl.add_route_msg(f"{GATEWAY}/32", eth, scope=RT_SCOPE_LINK),
                       rtnl.add_route_msg("0.0.0.0/0", eth, gateway=GATEWAY)], exist_ok=(False, True, True))
            hook("pod-side")
            host.batch([rtnl.proxy_delay_msg(hidx, 0),
                        # proxy_arp=1 and rp_filter=1 in the same request: strict reverse-path
                        # filtering, as Calico sets on workload interfaces, drops what the pod
                        # sends from an address that is not its own before any rule sees it
                        # (the forward chain accepts established flows first, and conntrack
                        # finds a flow by addresses and ports alone, whatever the interface)
                        rtnl.set_up_msg(hidx, proxy_arp=True, strict_rpf=True),
                        rtnl.add_route_msg(f"{ip}/{plen}", hidx, scope=RT_SCOPE_LINK, proto=RTPROT_PODNET_POD)])
            hook("host-side")
            return Wired(host_ifname, HOST_MAC, ifname, mac)
    except BaseException:
        if created:
            unwire(host_ns, pod_ns, ifname, host_ifname)
        raise
    finally:
        os.close(host_fd)


def unwire(host_ns: str, pod_ns: str | None, ifname: str, host_ifname: str, address: str | None = None) -> bool:
    """Remove the pair (its /32 route goes with it). Idempotent. True if something was removed.

    With the pod's namespace at hand the pair is deleted from the pod side, so a host-side
    name shared with a newer incarnation of the same pod is never touched. Without it (the
    runtime already removed the namespace) the host side is deleted only if it still routes
    ``address``, i.e. it provably belongs to this attachment.
    """
    if pod_ns and os.path.exists(pod_ns if pod_ns.startswith("/") else netns.path(pod_ns)):
        with Rtnl(pod_ns) as pod:
            idx = pod.link_index(ifname)
            return idx is not None and pod.del_link(idx)
    if not address:
        return False
    ip = str(ipaddress.ip_interface(address).ip)
    with ipr_in(host_ns) as host:
        idx = _index(host, host_ifname)
        if idx is None or not any(r.get_attr("RTA_DST") == ip for r in host.get_routes(oif=idx)):
            return False
        return _delete(host, idx)


def _delete(ipr: IPRoute, index: int | None) -> bool:
    from pyroute2.netlink.exceptions import NetlinkError

    if index is None:
        return False
    try:
        ipr.link("del", index=index)
        return True
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise
        return False


def check(host_ns: str, pod_ns: str, ifname: str, host_ifname: str, address: str) -> list[str]:
    """What differs from the expected wiring (empty list = all good), for CNI CHECK."""
    problems: list[str] = []
    ip = ipaddress.ip_interface(address).ip
    with ipr_in(pod_ns) as pod:
        eth = _index(pod, ifname)
        if eth is None:
            return [f"interface {ifname} is missing in the container namespace"]
        addrs = {a.get_attr("IFA_ADDRESS") for a in pod.get_addr(index=eth)}
        if str(ip) not in addrs:
            problems.append(f"{ifname} does not have address {ip} (has {sorted(addrs)})")
        routes = pod.get_routes(oif=eth)
        dsts = {(r.get_attr("RTA_DST"), r.get_attr("RTA_GATEWAY")) for r in routes}
        if (None, GATEWAY) not in dsts:
            problems.append(f"default route via {GATEWAY} is missing")
        if (GATEWAY, None) not in dsts:
            problems.append(f"link route to {GATEWAY} is missing")
    with ipr_in(host_ns) as host:
        hidx = _index(host, host_ifname)
        if hidx is None:
            problems.append(f"host interface {host_ifname} is missing")
        else:
            if not any(r.get_attr("RTA_DST") == str(ip) for r in host.get_routes(oif=hidx)):
                problems.append(f"host route to {ip} via {host_ifname} is missing")
    return problems
