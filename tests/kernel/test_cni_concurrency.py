"""50 concurrent ADDs, each in its own plugin process → 50 distinct addresses; 50 DELs → empty pool."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from podnet.kernel import netns
from podnet.testing.cni_lab import Lab, links

pytestmark = pytest.mark.kernel
N = 50


def _run(lab: Lab, inprocess: bool, N: int = N) -> None:
    env = {"PODNET_CNI_INPROCESS": "1"} if inprocess else {}
    rt = lab.runtime()
    pods = [lab.pod_ns() for _ in range(N)]
    with ThreadPoolExecutor(N) as pool:  # threads only wait: each ADD is a separate plugin process
        results = list(pool.map(lambda i: rt.call("ADD", f"c{i}", netns.path(pods[i]), "eth0", env=env,
                                                  timeout=120), range(N)))
    ips = [r["ips"][0]["address"] for r in results]  # type: ignore[index]
    assert len(set(ips)) == N
    handles = lab.ipam().handles()
    assert sorted(h["ips"][0] + "/32" for h in handles.values()) == sorted(ips)
    assert len([n for n in links(lab.node_ns) if n.startswith("cali")]) == N
    with ThreadPoolExecutor(N) as pool:
        list(pool.map(lambda i: rt.call("DEL", f"c{i}", netns.path(pods[i]), "eth0", env=env,
                                        prev_result=results[i], timeout=120), range(N)))
    assert lab.ipam().handles() == {}
    assert all(not b.allocations for b in lab.ipam().blocks())
    assert links(lab.node_ns) == ["lo"]


def test_50_concurrent_adds_via_agent(lab: Lab) -> None:
    _run(lab, inprocess=False)


def test_50_concurrent_adds_in_process_store_contention(lab_inprocess: Lab) -> None:
    # every plugin process opens the SQLite store itself: the IPAM transactions race across processes
    _run(lab_inprocess, inprocess=True, N=20)
