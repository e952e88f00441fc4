"""A tightened policy cuts established flows: TCP, UDP and ICMP echo streams from client1 (node
n2) to web (node n1) are flowing when a policy admitting only client2's TCP to web is written;
within a second of the policy loop's pass none of them gets through any more, while client2's
TCP connection to the same pod keeps running (no reset, no stall). client2 then loses the label
the policy admits (a pod change on the other node), which cuts its connection too. Removing the
policy lets the same flows (same sockets) through again."""
from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from podnet.agent.policy import PolicyReconciler
from podnet.agent.policy_view import LiveView
from podnet.kernel import netns
from podnet.model import NetworkPolicy, Pod
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

UDP_PORT = 5353
ONLY_CLIENT2 = {"metadata": {"name": "web-from-client2", "namespace": "default"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client2"}}}],
                                      "ports": [{"port": 80, "protocol": "TCP"}]}]}}


def _sock(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    with netns.enter(ns):
        return socket.socket(family, kind, proto)


def _checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


class Streams:
    """Echo streams driven by one thread every 20 ms; ``received[name]`` counts the echoes each
    client got back, ``errors[name]`` what went wrong on its socket."""

    def __init__(self, lab: PolicyLab) -> None:
        web, c1, c2 = (lab.pods[f"default/{n}"] for n in ("web", "client1", "client2"))
        self.received = {"tcp": 0, "udp": 0, "icmp": 0, "allowed-tcp": 0}
        self.errors: dict[str, str] = {}
        self.socks: list[socket.socket] = []
        listener = self._keep(_sock(web.netns, socket.AF_INET, socket.SOCK_STREAM))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 80))
        listener.listen(4)
        self.clients: dict[str, socket.socket] = {}
        self.servers: list[socket.socket] = []
        for name, pod in (("tcp", c1), ("allowed-tcp", c2)):
            s = self._keep(_sock(pod.netns, socket.AF_INET, socket.SOCK_STREAM))
            s.settimeout(2)
            s.connect((web.ip, 80))
            self.clients[name] = s
            conn, _ = listener.accept()
            self.servers.append(self._keep(conn))
        self.udp_server = self._keep(_sock(web.netns, socket.AF_INET, socket.SOCK_DGRAM))
        self.udp_server.bind(("0.0.0.0", UDP_PORT))
        udp = self._keep(_sock(c1.netns, socket.AF_INET, socket.SOCK_DGRAM))
        udp.connect((web.ip, UDP_PORT))
        self.clients["udp"] = udp
        self.icmp = self._keep(_sock(c1.netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
        self.web_ip, self.ident, self.seq = web.ip, 0x5eed, 0
        for s in self.socks:
            s.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _keep(self, s: socket.socket) -> socket.socket:
        self.socks.append(s)
        return s

    def _send(self, name: str, s: socket.socket, data: bytes) -> None:
        try:
            s.send(data)
        except BlockingIOError:
            pass
        except OSError as exc:
            self.errors[name] = str(exc)

    def _tick(self) -> None:
        for name in ("tcp", "allowed-tcp", "udp"):
            if name not in self.errors:
                self._send(name, self.clients[name], b"x" * 64)
        self.seq = (self.seq + 1) & 0xFFFF
        head = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq) + b"podnet-flows"
        self.icmp.sendto(head[:2] + struct.pack("!H", _checksum(head)) + head[4:], (self.web_ip, 0))
        ready, _, _ = select.select(self.socks, [], [], 0.02)
        for s in ready:
            try:
                if s in self.servers:
                    s.send(s.recv(65536))
                elif s is self.udp_server:
                    data, peer = s.recvfrom(2048)
                    s.sendto(data, peer)
                elif s is self.icmp:
                    data, addr = s.recvfrom(2048)
                    ihl = (data[0] & 0x0F) * 4
                    typ, _, _, ident = struct.unpack("!BBHH", data[ihl:ihl + 6])
                    if typ == 0 and ident == self.ident and addr[0] == self.web_ip:
                        self.received["icmp"] += 1
                else:
                    name = next(n for n, c in self.clients.items() if c is s)
                    if s.recv(65536) == b"" and name != "udp":
                        self.errors[name] = "closed by the peer"
                    self.received[name] += 1
            except BlockingIOError:
                pass
            except OSError as exc:
                self.errors[str(s.getsockname())] = str(exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._tick()
            time.sleep(0.02)

    def counts(self) -> dict[str, int]:
        return dict(self.received)

    @contextmanager
    def running(self) -> Iterator[Streams]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)
            for s in self.socks:
                s.close()


def _progress(streams: Streams, seconds: float) -> dict[str, int]:
    before = streams.counts()
    time.sleep(seconds)
    return {k: v - before[k] for k, v in streams.counts().items()}


def _wait_flowing(streams: Streams, names: tuple[str, ...], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        moved = _progress(streams, 0.3)
        if all(moved[n] > 0 for n in names) or time.monotonic() > deadline:
            return moved


def test_a_tightened_policy_cuts_established_flows(policy_store_lab_both_paths: tuple[PolicyLab, Any, str]) -> None:
    lab, store, _ = policy_store_lab_both_paths
    rec = PolicyReconciler("n1", netns=lab.nodes["n1"].netns)
    view = LiveView(store)
    assert rec.reconcile_view(view).error is None  # the open table: every flow below is allowed
    streams = Streams(lab)
    with streams.running():
        moved = _wait_flowing(streams, ("tcp", "udp", "icmp", "allowed-tcp"), 3.0)
        assert all(v > 0 for v in moved.values()), moved
        if lab.fast_paths:  # the TCP streams are off the slow path before the policy comes
            assert lab.fast_paths["n1"].stats().fast > 0

        store.create(NetworkPolicy.model_validate(ONLY_CLIENT2))
        status = rec.reconcile_view(view)
        committed = time.monotonic()
        assert status.error is None and status.plan.get("incremental"), status.plan
        time.sleep(max(0.0, committed + 0.3 - time.monotonic()))
        moved = _progress(streams, 0.7)  # from 0.3 s to 1 s after the commit
        assert moved["tcp"] == moved["udp"] == moved["icmp"] == 0, moved
        assert moved["allowed-tcp"] > 10, moved  # ~35 echoes in 0.7 s: not stalled
        assert not streams.errors, streams.errors
        assert status.plan["flows"]["denied"] >= 3, status.plan["flows"]  # client1's TCP, UDP, ICMP

        # client2 (on the other node) loses the label the policy admits: one set element on n1
        # (the pod fast path), and web's flows are held to the policy again
        pod = store.get(Pod, "client2", namespace="default")
        data = pod.to_dict()
        store.update(Pod.model_validate({**data, "metadata": {**data["metadata"], "labels": {"run": "elsewhere"}}}))
        status = rec.reconcile_view(view)
        committed = time.monotonic()
        assert status.error is None and status.plan.get("incremental"), status.plan
        time.sleep(max(0.0, committed + 0.3 - time.monotonic()))
        moved = _progress(streams, 0.7)
        assert moved == {"tcp": 0, "udp": 0, "icmp": 0, "allowed-tcp": 0}, moved
        assert status.plan["flows"]["denied"] >= 1, status.plan["flows"]

        store.delete(NetworkPolicy, "web-from-client2", namespace="default")
        status = rec.reconcile_view(view)
        assert status.error is None and status.plan["flows"]["allowed"] >= 4, status.plan
        moved = _wait_flowing(streams, ("tcp", "udp", "icmp", "allowed-tcp"), 5.0)  # TCP: its next retransmission
        assert all(v > 0 for v in moved.values()), moved
        assert not streams.errors, streams.errors
