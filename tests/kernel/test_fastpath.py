"""The eBPF fast path on the real kernel: it loads and attaches, established TCP between pods
(same node and across nodes) goes through it (its per-CPU counters say so), new connections
still meet the nftables policy, a tightened policy still cuts an established TCP flow within a
second, and detaching leaves no qdisc, filter or program behind."""
from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from podnet.agent.fastpath import FastPathDevices
from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.kernel.fastpath import FastPathError
from podnet.kernel.probe import REACHED, probe
from podnet.model import NetworkPolicy
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

DENY_WEB = NetworkPolicy.model_validate({
    "metadata": {"name": "web-from-nobody", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}})


@pytest.fixture
def lab(prefixes: Prefixes) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        lab.add_pod("default", "web", "n1", {"app": "web"}, [("http", 80, "TCP")])
        lab.add_pod("default", "near", "n1", {"run": "near"})
        lab.add_pod("default", "far", "n2", {"run": "far"})
        lab.apply(lab.state())
        lab.enable_fast_path()
        yield lab
    finally:
        lab.close()


class Echo:
    """A TCP echo server in web and one client stream; ``echoed`` counts bytes back."""

    def __init__(self, lab: PolicyLab, client: str) -> None:
        web = lab.pods["default/web"]
        with netns.enter(web.netns):
            self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("0.0.0.0", 80))
        self.listener.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()
        with netns.enter(lab.pods[f"default/{client}"].netns):
            self.sock = socket.socket()
        self.sock.settimeout(2)
        self.sock.connect((web.ip, 80))
        self.sock.settimeout(0.05)
        self.echoed = 0

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass

    def exchange(self, seconds: float) -> int:
        """Send and read back for ``seconds``; returns the bytes echoed in that time."""
        before = self.echoed
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.sock.send(b"x" * 1400)
                self.echoed += len(self.sock.recv(65536))
            except (TimeoutError, BlockingIOError):
                pass
        return self.echoed - before

    def close(self) -> None:
        self.sock.close()
        self.listener.close()


def _filters(ns: str, dev: str) -> str:
    return netns.run_in(ns, ["tc", "filter", "show", "dev", dev, "ingress"]).stdout


@pytest.mark.parametrize("client", ["near", "far"])
def test_established_tcp_takes_the_fast_path(lab: PolicyLab, client: str) -> None:
    node = lab.nodes["n1"]
    assert "podnet_fastpath" in _filters(node.netns, "eth0")
    assert "podnet_fastpath" in _filters(node.netns, lab.pods["default/web"].ifname)
    fast_before = lab.fast_paths["n1"].stats().fast
    echo = Echo(lab, client)
    try:
        assert echo.exchange(0.5) > 100_000
    finally:
        echo.close()
    # both directions of the stream cross n1 (web's veth; near's veth or eth0)
    assert lab.fast_paths["n1"].stats().fast - fast_before > 100


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp_ack(src: str, dst: str, sport: int, dport: int) -> bytes:
    """An IPv4 TCP ACK with payload, checksums right: what a pod forging another's flow sends."""
    payload = b"forged"
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 1024, 0, 0) + payload
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, socket.IPPROTO_TCP, 0, saddr, daddr)
    return ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:] + tcp


def _rpf_drops(ns: str) -> int:
    """The namespace's count of packets strict reverse-path filtering dropped."""
    lines = [line.split() for line in netns.run_in(ns, ["cat", "/proc/net/netstat"]).stdout.splitlines()
             if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["IPReversePathFilter"])


def test_a_pod_cannot_ride_another_pods_flow(lab: PolicyLab) -> None:
    """A pod that sends packets with another pod's address and an established flow's ports
    would find that flow in conntrack (addresses and ports are all it looks at), but its packets
    came in on its own veth, not the one the address lives behind: the fast path leaves them to
    the kernel, whose strict reverse-path filter on pod veths drops them before any rule (the
    forward chain accepts established flows first), and the server never answers them."""
    evil = lab.add_pod("default", "evil", "n1", {"run": "evil"})
    lab.apply(lab.state())
    lab.enable_fast_path()
    echo = Echo(lab, "near")
    try:
        assert echo.exchange(0.2) > 0  # established, and on the fast path
        sport = echo.sock.getsockname()[1]
        near, web = lab.pods["default/near"], lab.pods["default/web"]
        forged = _tcp_ack(near.ip, web.ip, sport, 80)
        stats, drops = lab.fast_paths["n1"].stats(), _rpf_drops(lab.nodes["n1"].netns)
        with netns.enter(evil.netns):
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            for _ in range(50):
                raw.sendto(forged, (web.ip, 0))
        finally:
            raw.close()
        time.sleep(0.2)
        after = lab.fast_paths["n1"].stats()
        assert after.slow_tcp - stats.slow_tcp >= 50  # none of them was forwarded by the program
        assert _rpf_drops(lab.nodes["n1"].netns) - drops >= 50  # and the kernel dropped them
        # had web got them, it would have answered each (out of window: a duplicate ACK) through
        # the fast path; what crosses it now is at most the real flow's last delayed ACKs
        assert after.fast - stats.fast < 10
    finally:
        echo.close()


def test_new_connections_still_meet_the_policy(lab: PolicyLab) -> None:
    echo = Echo(lab, "near")  # established before the policy: the flow cut's job, below
    echo.close()
    lab.apply(lab.state([DENY_WEB]))
    web = lab.pods["default/web"]
    slow_before = lab.fast_paths["n1"].stats().slow_tcp
    for client in ("near", "far"):
        result = probe(lab.pods[f"default/{client}"].netns, web.ip, 80, "TCP", timeout=0.5)[0]
        assert result not in REACHED, (client, result)
    assert lab.fast_paths["n1"].stats().slow_tcp > slow_before  # the SYNs were left to nftables
    lab.apply(lab.state())
    assert probe(lab.pods["default/near"].netns, web.ip, 80, "TCP", timeout=1.0)[0] in REACHED


@pytest.mark.parametrize("client", ["near", "far"])
def test_a_tightened_policy_cuts_a_fast_path_flow_within_a_second(lab: PolicyLab, client: str) -> None:
    echo = Echo(lab, client)
    try:
        assert echo.exchange(0.3) > 0
        fast_before = lab.fast_paths["n1"].stats().fast
        assert echo.exchange(0.3) > 0
        assert lab.fast_paths["n1"].stats().fast > fast_before  # the flow is on the fast path
        lab.apply(lab.state([DENY_WEB]))  # marks the flow in conntrack: the fast path lets go
        committed = time.monotonic()
        echo.exchange(max(0.0, committed + 0.3 - time.monotonic()))
        assert echo.exchange(0.7) == 0  # from 0.3 s to 1 s after the change
    finally:
        echo.close()


def test_attach_is_idempotent_and_detach_leaves_nothing(lab: PolicyLab) -> None:
    node = lab.nodes["n1"]
    fp = lab.fast_paths["n1"]
    fp.attach("eth0")
    assert _filters(node.netns, "eth0").count(" name podnet_fastpath ") == 1
    with pytest.raises(FastPathError, match="no device"):
        fp.attach("nosuchdev0")
    assert "nosuchdev0" not in fp.attached
    ids = {line.split(" id ")[1].split()[0] for line in _filters(node.netns, "eth0").splitlines() if " id " in line}
    fp.close()
    lab.fast_paths.pop("n1")
    for dev in ("eth0", lab.pods["default/web"].ifname, lab.pods["default/near"].ifname):
        assert _filters(node.netns, dev) == ""
        assert "clsact" not in netns.run_in(node.netns, ["tc", "qdisc", "show", "dev", dev]).stdout
    time.sleep(0.1)  # the program is freed after an RCU grace period
    for prog in ids:
        gone = subprocess.run(["bpftool", "prog", "show", "id", prog], capture_output=True, text=True)
        assert gone.returncode != 0, gone.stdout


def test_liberal_tracking_stays_in_the_node_namespace(lab: PolicyLab) -> None:
    key = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal"
    assert netns.run_in(lab.nodes["n1"].netns, ["cat", key]).stdout.strip() == "1"


def test_the_agent_follows_pods_as_they_come_and_go(prefixes: Prefixes) -> None:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        node = lab.nodes["n1"]
        lab.add_pod("default", "web", "n1", {"app": "web"})
        devices = FastPathDevices(node.netns)
        try:
            assert devices.reconcile() == {"attached": 2, "added": 2, "gone": 0}  # eth0 and web's veth
            assert devices.reconcile() == {"attached": 2, "added": 0, "gone": 0}
            pod = lab.add_pod("default", "new", "n1", {"run": "new"})
            assert devices.reconcile()["added"] == 1
            assert "podnet_fastpath" in _filters(node.netns, pod.ifname)
            lab.remove_pod(pod.key)  # its veth goes with its namespace (the kernel's cleanup work)
            deadline, passed = time.monotonic() + 5, {}
            while pod.ifname in devices.fp.attached and time.monotonic() < deadline:
                passed = devices.reconcile()
                time.sleep(0.05)
            assert passed == {"attached": 2, "added": 0, "gone": 1}
        finally:
            devices.close()
        for dev in ("eth0", lab.pods["default/web"].ifname):
            assert _filters(node.netns, dev) == ""
    finally:
        lab.close()


def test_host_network_nodes_refuse_the_fast_path() -> None:
    with pytest.raises(PodnetError, match="host-network"):
        FastPathDevices(host_network=True)
