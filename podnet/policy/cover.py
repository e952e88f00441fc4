"""Whether one rule matches at least everything another matches (structurally, without pods):
lint reads it to find redundant policies and Deny rules an earlier rule shadows.

Conservative: "covers" is only said when it holds for every cluster; rules with matches this
does not reason about (a Calico rule's own end, negations, ICMP types) are covered only by a rule
without them that matches every peer and port, or by an identical rule.
"""
from __future__ import annotations

from collections.abc import Iterable

from podnet.ipnet import subnet_of

from .ir import EntityPeer, IPBlockPeer, NetworkPeer, NodePeer, Peer, PodPeer, PortMatch, Rule


def peer_covered(peer: Peer, by: Iterable[Peer]) -> bool:
    for other in by:
        if isinstance(peer, IPBlockPeer) and isinstance(other, IPBlockPeer):
            if subnet_of(peer.network, other.network) and not other.excepts:
                return True
            if (peer.cidr, peer.excepts) == (other.cidr, other.excepts):
                return True
        elif isinstance(peer, PodPeer) and isinstance(other, PodPeer):
            same_scope = (other.namespace_selector is not None and other.namespace_selector.is_empty) or (
                peer.namespace_selector == other.namespace_selector
                and (peer.namespace_selector is not None or peer.namespace == other.namespace))
            if same_scope and (other.pod_selector.is_empty or peer.pod_selector == other.pod_selector):
                return True
        elif isinstance(other, NetworkPeer) and isinstance(peer, (NetworkPeer, IPBlockPeer)):
            inner = peer.networks if isinstance(peer, NetworkPeer) else (peer.network,)
            if all(any(subnet_of(n, o) for o in other.networks) for n in inner):
                return True
        elif isinstance(peer, NodePeer) and isinstance(other, NodePeer):
            if other.node_selector.is_empty or peer.node_selector == other.node_selector:
                return True
        elif isinstance(peer, EntityPeer) and isinstance(other, EntityPeer):
            if peer.key == other.key:
                return True
            if _only_nets(other) and _only_nets(peer) and peer.nets and all(
                    any(subnet_of(n, o) for o in other.networks) for n in peer.networks):
                return True
    return False


def _only_nets(peer: EntityPeer) -> bool:
    return not (peer.not_nets or peer.has_positive or peer.not_selector is not None)


def port_covered(pm: PortMatch, by: Iterable[PortMatch]) -> bool:
    for other in by:
        if other.protocol != pm.protocol:
            continue
        if other.port is None:
            return True
        if pm.is_named or other.is_named:
            if pm.port == other.port:
                return True
            continue
        if pm.port is None:
            continue
        lo, hi = int(pm.port), int(pm.end_port or pm.port)
        olo, ohi = int(other.port), int(other.end_port or other.port)
        if olo <= lo and hi <= ohi:
            return True
    return False


def _extras(rule: Rule) -> tuple[object, ...]:
    return (rule.local.key if rule.local else None, tuple((p.protocol, p.port, p.end_port) for p in rule.not_ports),
            rule.not_protocol, rule.icmp, rule.not_icmp, rule.ip_version)


def rule_covered(rule: Rule, by: Rule) -> bool:
    """Whether ``by`` matches every packet ``rule`` matches."""
    if not by.is_plain and _extras(by) != _extras(rule):
        return False
    if by.peers is not None and (rule.peers is None or not all(peer_covered(p, by.peers) for p in rule.peers)):
        return False
    if by.ports is not None and (rule.ports is None or not all(port_covered(p, by.ports) for p in rule.ports)):
        return False
    return True
