"""The per-interface sysctls podwire sets over rtnetlink (no namespace switch, no /proc write):
read back through /proc/sys, the authority, in namespaces this test creates and removes."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from podnet.kernel import netns, podwire, rtnl
from podnet.kernel.rtnl import Rtnl

pytestmark = pytest.mark.kernel


@pytest.fixture
def pair(prefix: str) -> Iterator[tuple[str, str]]:
    host, pod = f"{prefix}h", f"{prefix}p"
    netns.create(host)
    try:
        netns.create(pod)
        try:
            yield host, pod
        finally:
            netns.remove(pod)
    finally:
        netns.remove(host)


def _read(ns: str, path: str) -> str:
    return netns.run_in(ns, ["cat", "/proc/sys/net/" + path], check=True).stdout.strip()


def test_wire_sets_proxy_arp_and_proxy_delay_on_the_host_side(pair: tuple[str, str]) -> None:
    host, pod = pair
    wired = podwire.wire(host, pod, "eth0", "calirtnltest", "10.9.0.5/32", 1400)
    assert wired.host_ifname == "calirtnltest"
    assert _read(host, "ipv4/conf/calirtnltest/proxy_arp") == "1"
    assert _read(host, "ipv4/conf/calirtnltest/rp_filter") == "1"  # strict: no address but the pod's own
    assert _read(host, "ipv4/neigh/calirtnltest/proxy_delay") == "0"
    assert "state UP" in netns.run_in(host, ["ip", "-o", "link", "show", "calirtnltest"]).stdout
    assert _read(host, "ipv4/conf/all/proxy_arp") == "0"  # only the pod's interface, not the namespace
    assert _read(host, "ipv4/conf/all/rp_filter") == "0"
    assert podwire.unwire(host, pod, "eth0", "calirtnltest")


def test_rtnl_sysctl_requests_change_the_values(pair: tuple[str, str]) -> None:
    host, _ = pair
    netns.run_in(host, ["ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1"], check=True)
    netns.run_in(host, ["sh", "-c", "echo 50 > /proc/sys/net/ipv4/neigh/rt0/proxy_delay"], check=True)
    assert _read(host, "ipv4/neigh/rt0/proxy_delay") != "0"  # (userhz, rounded via jiffies)
    with Rtnl(host) as rt:
        idx = rt.link_index("rt0")
        assert idx is not None
        rt.set_proxy_delay(idx, 0)
        rt.set_up(idx, proxy_arp=True, strict_rpf=True)
        with pytest.raises(OSError):
            rt.set_proxy_delay(idx + 1000, 0)  # no such interface: the kernel's error, not silence
    assert _read(host, "ipv4/neigh/rt0/proxy_delay") == "0"
    assert _read(host, "ipv4/conf/rt0/proxy_arp") == "1"
    assert _read(host, "ipv4/conf/rt0/rp_filter") == "1"


def test_add_veth_returns_both_indexes_from_the_kernels_echo(pair: tuple[str, str]) -> None:
    host, pod = pair
    # links in the host namespace first, so the two ends' indexes differ
    netns.run_in(host, ["ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"], check=True)
    fd = os.open(netns.path(host), os.O_RDONLY)
    try:
        with Rtnl(pod) as p, Rtnl(host) as h:
            got = p.add_veth("eth0", "caliechotest", fd, mtu=1500, mac="02:00:00:00:00:01", peer_mac="ee:ee:ee:ee:ee:ee")
            assert got == (p.link_index("eth0"), h.link_index("caliechotest"))
            assert got[0] != got[1]
    finally:
        os.close(fd)


def test_batch_applies_every_request_and_reports_the_first_real_error(pair: tuple[str, str]) -> None:
    """One datagram, several requests: EEXIST is tolerated only where asked, a real error is
    raised after all ACKs are in, and the requests after a failing one are still applied."""
    host, _ = pair
    netns.run_in(host, ["sh", "-c", "ip link add b0 type veth peer name b1 && ip link set b1 up && ip link set b0 up"],
                 check=True)
    with Rtnl(host) as rt:
        idx = rt.link_index("b0")
        assert idx is not None
        rt.batch([rtnl.add_address_msg(idx, "10.7.0.1", 32),
                  rtnl.add_route_msg("10.7.1.0/24", idx, scope=rtnl.RT_SCOPE_LINK)])
        rt.batch([rtnl.add_route_msg("10.7.1.0/24", idx, scope=rtnl.RT_SCOPE_LINK),  # exists: tolerated
                  rtnl.add_route_msg("10.7.2.0/24", idx, scope=rtnl.RT_SCOPE_LINK)], exist_ok=(True, False))
        with pytest.raises(FileExistsError):
            rt.batch([rtnl.add_address_msg(idx, "10.7.0.1", 32),  # exists, not tolerated
                      rtnl.add_route_msg("10.7.3.0/24", idx, scope=rtnl.RT_SCOPE_LINK)])
        rt.add_route("10.7.4.0/24", idx, scope=rtnl.RT_SCOPE_LINK)  # the socket is still in step
    routes = netns.run_in(host, ["ip", "-4", "route", "show", "dev", "b0"], check=True).stdout
    for net in ("10.7.1.0/24", "10.7.2.0/24", "10.7.3.0/24", "10.7.4.0/24"):
        assert net in routes
