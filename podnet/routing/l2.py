"""LoadBalancer addresses announced on the underlay by ARP, the MetalLB layer-2 way, for the
backends that speak no BGP (host-gw, VXLAN).

For each address one node answers: among the eligible nodes — Ready, not labelled
``node.kubernetes.io/exclude-from-external-load-balancers``, on a segment the address belongs
to, and for ``externalTrafficPolicy: Local`` holding a ready endpoint — the first by
sha256(node + "#" + address), as MetalLB's speaker orders them. Every node computes the same
answer from the same store, so no election traffic is needed, and when the leader stops being
eligible the next one takes the address (and announces it with gratuitous ARP)."""
from __future__ import annotations

import hashlib
import ipaddress

from .facts import ClusterFacts, NodeFacts


def _rank(node: str, address: str) -> bytes:
    return hashlib.sha256(f"{node}#{address}".encode()).digest()


def _on_segment(node: NodeFacts, address: str) -> bool:
    return node.prefixlen < 32 and ipaddress.ip_address(address) in node.subnet


def leader(facts: ClusterFacts, address: str, local_nodes: frozenset[str] | None = None) -> str | None:
    """The node that answers ARP for ``address`` (None: no node may)."""
    eligible = [n.name for n in facts.nodes if n.ready and not n.exclude_lb and _on_segment(n, address)
                and (local_nodes is None or n.name in local_nodes)]
    return min(eligible, key=lambda name: _rank(name, address), default=None)


def l2_addresses(facts: ClusterFacts, node: str) -> tuple[str, ...]:
    """The LoadBalancer addresses ``node`` answers for."""
    out = set()
    for svc in facts.services.services:
        local = svc.ready_nodes if svc.local else None
        for ip, kind in svc.addresses:
            if kind == "loadbalancer" and leader(facts, ip, local) == node:
                out.add(ip)
    return tuple(sorted(out, key=lambda ip: int(ipaddress.ip_address(ip))))
