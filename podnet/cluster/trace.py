"""The kernel's side of ``podnet explain --trace``: one real attempt between two endpoints of the
lab, and the podnet nft rules whose packet counters it moved on the nodes of both ends."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import probe
from podnet.policy.cluster import ClusterState, Endpoint

from .lifecycle import node_netns


@dataclass(frozen=True)
class RuleHit:
    """A rule that counted packets of the attempt."""

    node: str
    chain: str
    comment: str  # the rule's comment: what dataplane.nft.render.describe_rule reads
    packets: int


@dataclass(frozen=True)
class KernelTrace:
    """What one attempt did. ``refused`` says why none was sent; else ``outcome`` (a probe
    outcome, with ``detail``) and the ``hits`` on each of ``nodes`` (in order)."""

    src: Endpoint
    dst: Endpoint
    port: int | None
    protocol: str
    refused: str | None = None
    outcome: str = ""
    detail: str = ""
    nodes: tuple[str, ...] = ()
    hits: tuple[RuleHit, ...] = ()


def kernel_trace(state_dir: str, state: ClusterState, pod_netns: Mapping[str, str], src_ref: str, dst_ref: str,
                 port: int | None, protocol: str, timeout: float = 1.0) -> KernelTrace:
    """Send one attempt from ``src_ref`` (a running pod: ``pod_netns`` maps "ns/pod" to its
    network namespace) to ``dst_ref``, reading the counters of both ends' nodes before and after."""
    src, dst = state.endpoint(src_ref), state.endpoint(dst_ref)
    if not src.is_pod or src.key not in pod_netns:
        return KernelTrace(src, dst, port, protocol,
                           refused=f"cannot trace from {src.describe()} (only a running pod can send a probe)")
    if not dst.ip:
        return KernelTrace(src, dst, port, protocol, refused=f"{dst.describe()} has no address")
    nodes = tuple(sorted({n for n in (src.node, dst.node) if n}))
    appliers = {n: NftApplier(node_netns(state_dir, n)) for n in nodes}
    before = {n: {(c.chain, c.comment): c.packets for c in a.counters()} for n, a in appliers.items()}
    outcome, detail = probe(pod_netns[src.key], dst.ip, port, protocol, timeout)
    hits = []
    for n, a in appliers.items():
        for c in a.counters():
            delta = c.packets - before[n].get((c.chain, c.comment), 0)
            if delta > 0:
                hits.append(RuleHit(n, c.chain, c.comment, delta))
    return KernelTrace(src, dst, port, protocol, outcome=outcome, detail=detail, nodes=nodes, hits=tuple(hits))
