"""Concurrent CNI ADD/DEL with the plugin killed at random points: each plugin process runs
the handler in-process (no agent), and a random deadline SIGKILLs it wherever it is — in the
IPAM transaction, half-way through wiring the veth. As a runtime does after a failed ADD, every
container then gets a DEL; afterwards no address may be held twice or left behind, and no veth
may be left on the node."""
from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from podnet.agent.cnicall import CniCallFailed
from podnet.kernel import netns

from .cni_lab import Lab, links


@dataclass
class CniChurn:
    calls: int = 0
    added: int = 0
    killed: int = 0
    failed: int = 0
    duplicate_ips: list[str] = field(default_factory=list)
    leaked_handles: int = 0
    leaked_addresses: int = 0
    leaked_links: list[str] = field(default_factory=list)
    del_errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicate_ips or self.leaked_handles or self.leaked_addresses or self.leaked_links
                    or self.del_errors)


def run_cni_churn(lab: Lab, count: int, concurrency: int, seed: int = 0) -> CniChurn:
    """``count`` containers, ADD with a random deadline for half of them (the plugin is killed
    when it passes), then DEL for all; every call its own plugin process. The deadlines fall
    between 30 % and 110 % of one ADD's duration, measured first under the same concurrency's
    load, so kills land in the IPAM transaction and the wiring, not in the interpreter's start."""
    rng = random.Random(seed)
    rt = lab.runtime()
    env = {"PODNET_CNI_INPROCESS": "1"}
    pods = [lab.pod_ns() for _ in range(count)]
    probe_ns = lab.pod_ns()
    t0 = time.monotonic()
    rt.call("ADD", "calibrate", netns.path(probe_ns), "eth0", env=env, timeout=120)
    took = time.monotonic() - t0
    rt.call("DEL", "calibrate", netns.path(probe_ns), "eth0", env=env, timeout=120)
    load = max(1.0, concurrency / 2)  # two CPUs: concurrent plugins share them
    deadlines = [rng.uniform(0.3, 1.1) * took * load if rng.random() < 0.5 else 120.0 for _ in range(count)]
    report = CniChurn(calls=2 * count)
    ips: list[str] = []

    def add(i: int) -> None:
        try:
            res = rt.call("ADD", f"k{i}", netns.path(pods[i]), "eth0", env=env, timeout=deadlines[i])
        except CniCallFailed as exc:
            if exc.code == -1 and "did not answer" in exc.msg:
                report.killed += 1
            else:
                report.failed += 1
            return
        report.added += 1
        ips.append(res["ips"][0]["address"])  # type: ignore[index]

    def delete(i: int) -> None:
        try:
            rt.call("DEL", f"k{i}", netns.path(pods[i]), "eth0", env=env, timeout=120)
        except CniCallFailed as exc:
            report.del_errors.append(f"k{i}: {exc}")

    with ThreadPoolExecutor(concurrency) as pool:  # threads only wait: each call is a plugin process
        list(pool.map(add, range(count)))
    report.duplicate_ips = sorted(ip for ip, n in Counter(ips).items() if n > 1)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(delete, range(count)))
    ipam = lab.ipam()
    report.leaked_handles = len(ipam.handles())
    report.leaked_addresses = sum(len(b.allocations) for b in ipam.blocks())
    report.leaked_links = [n for n in links(lab.node_ns) if n != "lo"]
    return report
