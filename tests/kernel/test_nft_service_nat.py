"""Tables other than ``inet podnet`` through the same applier, on the real kernel: a Service
proxy table (``ip podnet-svc``: NAT base chains at dstnat/srcnat, a concatenated-key verdict
map, ``numgen`` over two endpoints, ``dnat to``) really translates a pod's connection to a
Service address, reads back equal to what was rendered and changes by element; natOutgoing's
``ip podnet-nat`` sits beside it; a table the kernel refuses raises ``DataplaneError`` and
changes nothing."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.model import NAT_TABLE, NftChain, NftRule, NftTable
from podnet.dataplane.nft.nat import render_nat
from podnet.errors import DataplaneError
from podnet.kernel import netns
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import CONNECTED, REACHED, REFUSED, probe
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab
from podnet.testing.service_table import SERVICE_TABLE, service_table

pytestmark = pytest.mark.kernel

CLUSTER_IP, PORT, TARGET = "10.96.0.10", 80, 8080
POD_CIDR = "10.244.0.0/16"


@pytest.fixture()
def lab(prefixes: Prefixes) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""), nodes=1)
    try:
        yield lab
    finally:
        lab.close()
        for table in (SERVICE_TABLE, NAT_TABLE):
            assert NftApplier(None, table=table).read() is None, f"{table} appeared in the root namespace"


def _listen(ns: str, ip: str, port: int) -> socket.socket:
    with netns.enter(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(128)
    return s


def _outcomes(client_ns: str, tries: int) -> set[str]:
    return {probe(client_ns, CLUSTER_IP, PORT, "TCP", 1.0)[0] for _ in range(tries)}


def test_service_table_translates_reads_back_and_changes_by_element(lab: PolicyLab) -> None:
    node = lab.nodes["n1"]
    client = lab.add_pod("default", "client", "n1")
    up = lab.add_pod("default", "up", "n1")
    down = lab.add_pod("default", "down", "n1")  # nothing listens: the pod answers with a reset
    listener = _listen(up.netns, up.ip, TARGET)
    svc = NftApplier(node.netns, table=SERVICE_TABLE)
    nat = NftApplier(node.netns, table=NAT_TABLE)
    try:
        assert probe(client.netns, CLUSTER_IP, PORT, "TCP", 0.5)[0] not in REACHED  # no Service yet
        both = service_table({(CLUSTER_IP, "tcp", PORT): [(up.ip, TARGET), (down.ip, TARGET)]}, POD_CIDR)
        assert svc.sync(both).full
        assert nat.sync(render_nat((POD_CIDR,), (POD_CIDR,))).full
        kernel = svc.read()
        assert kernel is not None and plan_sync(both, kernel).empty, "the kernel's table differs from the rendered one"
        assert kernel.chains["nat-prerouting"].base == ("nat", "prerouting", -100)
        nat_kernel = nat.read()
        assert nat_kernel is not None and plan_sync(render_nat((POD_CIDR,), (POD_CIDR,)), nat_kernel).empty
        assert NftApplier(node.netns).read() is None  # the policy table is not touched
        # numgen spreads new connections over both endpoints (each try is a new 5-tuple).
        assert _outcomes(client.netns, 24) == {CONNECTED, REFUSED}
        # One endpoint gone: element and chain changes, not a new table; every connection lands on it.
        one = service_table({(CLUSTER_IP, "tcp", PORT): [(up.ip, TARGET)]}, POD_CIDR)
        plan = svc.sync(one)
        assert not plan.full and plan.chains_removed == 1
        kernel = svc.read()
        assert kernel is not None and plan_sync(one, kernel).empty
        assert _outcomes(client.netns, 8) == {CONNECTED}
        # A table the kernel refuses (a jump to no chain): a DataplaneError, and nothing changed.
        broken = NftTable(one.family, one.name, one.sets, one.maps,
                          {**one.chains, "x": NftChain("x", (NftRule.make([{"jump": {"target": "nowhere"}}], "x"),))})
        with pytest.raises(DataplaneError) as err:
            svc.sync(broken)
        assert not err.value.retryable and "ip podnet-svc" in err.value.target
        kernel = svc.read()
        assert kernel is not None and plan_sync(one, kernel).empty
        assert svc.remove() and nat.remove()
        assert svc.read() is None and nat.read() is None
    finally:
        listener.close()
