"""A long-running TCP flow between two pods' namespaces, counted per second by its receiver
(fault tests and bench/faults_converge.py: "no second of zero throughput" while node processes
are killed). Sender and receiver are small Python processes entered into the pods' network
namespaces; the sender paces itself to ``rate`` bytes/s so the flow does not eat the CPU."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from podnet.kernel import netns

RECEIVER = r"""
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept(); conn.settimeout(0.05)
start = time.monotonic(); second = 0; count = 0
while True:
    try:
        data = conn.recv(262144)
        if not data:
            break
        count += len(data)
    except socket.timeout:
        pass
    now = int(time.monotonic() - start)
    while now > second:
        print(count, flush=True); count = 0; second += 1
"""

SENDER = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.settimeout(None)
rate = int(sys.argv[3]); chunk = b"x" * 16384; start = time.monotonic(); sent = 0
while True:
    s.sendall(chunk); sent += len(chunk)
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
"""


@dataclass
class FlowResult:
    per_second: list[int]  # bytes received in each whole second (the first and last are left out)

    @property
    def zero_seconds(self) -> int:
        return sum(1 for b in self.per_second if b == 0)

    @property
    def minimum(self) -> int:
        return min(self.per_second) if self.per_second else 0


class TcpFlow:
    """``with TcpFlow(src_ns, dst_ns, dst_ip) as flow: ...`` then ``flow.result``."""

    def __init__(self, src_ns: str, dst_ns: str, dst_ip: str, port: int = 5001, rate: int = 4_000_000) -> None:
        self.src_ns, self.dst_ns, self.dst_ip, self.port, self.rate = src_ns, dst_ns, dst_ip, port, rate
        self.receiver: subprocess.Popen[str] | None = None
        self.sender: subprocess.Popen[str] | None = None
        self.result = FlowResult([])

    def __enter__(self) -> TcpFlow:
        self.receiver = subprocess.Popen(netns.nsenter_argv(self.dst_ns, [sys.executable, "-c", RECEIVER,
                                                                          str(self.port)]),
                                         stdout=subprocess.PIPE, text=True)
        assert self.receiver.stdout is not None
        self.receiver.stdout.readline()  # "listening"
        self.sender = subprocess.Popen(netns.nsenter_argv(self.src_ns, [sys.executable, "-c", SENDER, self.dst_ip,
                                                                        str(self.port), str(self.rate)]),
                                       text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.sender is not None and self.sender.poll() is None:
                self.sender.terminate()  # the kernel closes its socket: the receiver sees the end
                self.sender.wait(timeout=30)
            if self.receiver is not None:
                out, _ = self.receiver.communicate(timeout=30)
                self.result = FlowResult([int(x) for x in out.split()][1:-1])
        finally:
            for p in (self.sender, self.receiver):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()

    def settle(self, seconds: float) -> None:
        """Let the flow run (so the first whole second is not the connection's start)."""
        time.sleep(seconds)
