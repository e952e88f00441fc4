"""Creates and removes the lab's namespaces and wires, recording intent first.

The list of namespaces is written to the state directory *before* any is created, so
``destroy`` removes exactly what ``build`` made (and nothing else), even after a crash
half-way through."""
from __future__ import annotations

import json
import os
from typing import Any

from podnet.errors import PodnetError
from podnet.kernel import netns, underlay

from .topology import Topology

STATE_FILE = "cluster.json"


def state_path(state_dir: str) -> str:
    return os.path.join(state_dir, STATE_FILE)


def read_state(state_dir: str) -> dict[str, Any] | None:
    try:
        with open(state_path(state_dir)) as f:
            state: dict[str, Any] = json.load(f)
            return state
    except FileNotFoundError:
        return None


def write_state(state_dir: str, state: dict[str, Any]) -> None:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    tmp = state_path(state_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, state_path(state_dir))


def build(topo: Topology, state_dir: str, extra: dict[str, Any] | None = None, *,
          wait_carrier: bool = True) -> dict[str, Any]:
    """Create the lab. On any failure everything already made is removed again.

    ``wait_carrier`` False returns before the new links have carrier (the kernel reports it up
    to a second later): the caller overlaps that wait with other work and calls
    ``wait_for_carrier`` before anything needs the underlay."""
    if read_state(state_dir) is not None:
        raise PodnetError(f"a cluster is already recorded in {state_dir}",
                          hint="run `podnet down` first (or use another --state-dir)")
    taken = [n for n in topo.namespaces() if netns.exists(n)]
    if taken:
        raise PodnetError(f"network namespaces already exist: {', '.join(taken)}",
                          hint="remove them, or pick another prefix")
    state = {"topology": topo.to_dict(), "netns": topo.namespaces(), "pids": {}, **(extra or {})}
    write_state(state_dir, state)
    try:
        _build(topo)
        if wait_carrier:
            wait_for_carrier(topo)
    except BaseException:
        destroy(state_dir)
        raise
    return state


def _build(topo: Topology) -> None:
    for seg in topo.segments:
        netns.create(seg.netns)
        underlay.add_bridge(seg.netns, seg.bridge)
    netns.create(topo.router_netns)
    underlay.sysctl(topo.router_netns, "net.ipv4.ip_forward", 1)
    for seg in topo.segments:
        plen = seg.cidr.split("/")[1]
        underlay.wire(topo.router_netns, f"seg-{seg.name}", seg.netns, "rt",
                      a_addr=f"{seg.gateway}/{plen}", b_master=seg.bridge)
    for node in topo.nodes:
        netns.create(node.netns)
        underlay.sysctl(node.netns, "net.ipv4.ip_forward", 1)
        seg = topo.segment(node.segment)
        underlay.wire(node.netns, "eth0", seg.netns, node.port, a_addr=f"{node.address}/{node.prefixlen}",
                      b_master=seg.bridge)
        # The default route is also what lets proxy ARP answer pods (see docs/cluster.md).
        underlay.add_route(node.netns, "0.0.0.0/0", gateway=node.gateway)
    ext = topo.segment("ext")
    for host in topo.externals:
        netns.create(host.netns)
        underlay.wire(host.netns, "eth0", ext.netns, host.port, a_addr=f"{host.address}/{host.prefixlen}",
                      b_master=ext.bridge)
        underlay.add_route(host.netns, "0.0.0.0/0", gateway=host.gateway)


def wait_for_carrier(topo: Topology) -> None:
    """Until every underlay link has carrier (a bridge forwards through a port only then)."""
    down = underlay.wait_carrier(topo.namespaces())
    if down:
        raise PodnetError(f"underlay links without carrier after 5 s: {', '.join(down)}")


def destroy(state_dir: str) -> list[str]:
    """Remove every namespace the recorded cluster lists (idempotent); returns those removed.
    Processes must be stopped first (see ``processes.stop_all``)."""
    state = read_state(state_dir)
    if state is None:
        return []
    removed = []
    for name in [*reversed(state.get("extra_netns", [])), *reversed(state.get("netns", []))]:
        if netns.remove(name):
            removed.append(name)
    for name in removed:
        netns.wait_gone(name)
    os.unlink(state_path(state_dir))
    return removed


def record_extra_netns(state_dir: str, name: str) -> None:
    """Remember a namespace made later (a lab pod) so ``destroy`` removes it too."""
    state = read_state(state_dir)
    if state is None:
        raise PodnetError(f"no cluster recorded in {state_dir}")
    extra = state.setdefault("extra_netns", [])
    if name not in extra:
        extra.append(name)
    write_state(state_dir, state)


def add_lab_pod(state_dir: str, topo: Topology, node: str, pod_ns: str, host_if: str, ip: str,
                mtu: int = 1500) -> None:
    """A plain Calico-style pod namespace on a node (tests, benchmarks), recorded for ``destroy``."""
    record_extra_netns(state_dir, pod_ns)
    underlay.wire_pod(topo.node(node).netns, pod_ns, host_if, ip, mtu=mtu)
