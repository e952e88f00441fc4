"""Why one rule matches some traffic or not, part by part: each peer, each port entry, and a
Calico rule's other matches (its own end, notPorts, notProtocol, ICMP, IP version).

Only explanations read this; the decision is ``cluster.rule_matches``. Every part says what it
checked in words and how far it is from matching (``distance``: the failing terms), so explain
can show the nearest misses first.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .cluster import ICMP, ICMP_ECHO, ClusterState, Endpoint, port_matches, rule_protocol_matches
from .ir import (
    EntityPeer,
    IPBlockPeer,
    NetworkPeer,
    NodePeer,
    Peer,
    PodPeer,
    PortMatch,
    Provenance,
    Rule,
    in_networks,
    selector_text,
)


@dataclass(frozen=True)
class PartCheck:
    """One peer, port entry or other match checked against the traffic."""

    provenance: Provenance
    matched: bool
    text: str
    distance: int = 0  # how many terms failed (0 when matched)

    def to_dict(self) -> dict[str, object]:
        return {"matched": self.matched, "reason": self.text, "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class RuleCheck:
    """One rule checked: it matches iff some peer, some port and every other match hold."""

    rule: Rule
    policy_source: str | None
    peers_ok: bool
    ports_ok: bool
    peers: tuple[PartCheck, ...]
    ports: tuple[PartCheck, ...]
    peer_summary: str
    port_summary: str
    fix: str | None = None
    extras: tuple[PartCheck, ...] = ()

    @property
    def extras_ok(self) -> bool:
        return all(e.matched for e in self.extras)

    @property
    def matches(self) -> bool:
        return self.peers_ok and self.ports_ok and self.extras_ok

    @property
    def allows(self) -> bool:
        """It matches and its action is Allow."""
        return self.matches and self.rule.action == "Allow"

    @property
    def distance(self) -> int:
        """How far from matching: failing peer terms (best peer), 1 if the ports fail, 1 per
        failing other match."""
        peer = 0 if self.peers_ok else min((p.distance for p in self.peers), default=1)
        return peer + (0 if self.ports_ok else 1) + sum(e.distance for e in self.extras if not e.matched)

    def reasons(self) -> list[str]:
        out = []
        if not self.peers_ok:
            out.append(self.peer_summary)
        if not self.ports_ok:
            out.append(self.port_summary)
        out += [e.text for e in self.extras if not e.matched]
        return out or [f"{self.peer_summary}; {self.port_summary}"]

    def describe(self) -> str:
        where = self.rule.provenance.describe()
        src = f" ({self.policy_source})" if self.policy_source else ""
        return f"{where}{src}: " + "; ".join(self.reasons())

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.provenance.to_dict(),
            "action": self.rule.action,
            "matches": self.matches,
            "allows": self.allows,
            "distance": self.distance,
            "reasons": self.reasons(),
            "text": self.describe(),
            "peers": [p.to_dict() for p in self.peers],
            "ports": [p.to_dict() for p in self.ports],
            "other": [e.to_dict() for e in self.extras],
            "fix": self.fix,
        }


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def check_rule(state: ClusterState, rule: Rule, subject: Endpoint, peer: Endpoint, dst: Endpoint,
               port: int | None, protocol: str) -> RuleCheck:
    """``rule`` (of a policy applying to ``subject``) against traffic with ``peer`` to ``dst``."""
    if rule.peers is None:
        peers: tuple[PartCheck, ...] = ()
        peers_ok = True
        peer_summary = f"every {'source' if rule.direction == 'ingress' else 'destination'} matches (no peers listed)"
        if rule.action == "Allow" and rule.is_plain:
            peer_summary = f"every {'source' if rule.direction == 'ingress' else 'destination'} is allowed (no peers listed)"
    else:
        peers = tuple(check_peer(state, p, peer) for p in rule.peers)
        peers_ok = any(p.matched for p in peers)
        if peers_ok:
            peer_summary = next(p.text for p in peers if p.matched)
        elif len(peers) == 1 and not isinstance(rule.peers[0], (PodPeer, IPBlockPeer)):
            peer_summary = peers[0].text
        else:
            peer_summary = "; ".join(f"peer {p.provenance.peer}: {p.text}" for p in peers)
    ports, ports_ok, port_summary = check_ports(rule, port, protocol, dst)
    extras = _extras(state, rule, subject, port, protocol, dst)
    return RuleCheck(rule, rule.provenance.source, peers_ok, ports_ok, peers, ports, peer_summary, port_summary,
                     extras=extras)


def check_peer(state: ClusterState, peer: Peer, ep: Endpoint) -> PartCheck:
    if isinstance(peer, IPBlockPeer):
        return _check_block(state, peer, ep)
    if isinstance(peer, PodPeer):
        return _check_pods(state, peer, ep)
    if isinstance(peer, NetworkPeer):
        desc = peer.describe()
        if peer.contains(ep.ip):
            return PartCheck(peer.provenance, True, f"{desc} contains {ep.ip}")
        return PartCheck(peer.provenance, False, f"{desc}: {ep.ip or ep.describe() + ' (no address)'} is in none", 1)
    if isinstance(peer, NodePeer):
        return _check_nodes(state, peer, ep)
    return check_entity(state, peer, ep)


def _check_block(state: ClusterState, peer: IPBlockPeer, ep: Endpoint) -> PartCheck:
    prov, desc = peer.provenance, peer.describe()
    if not ep.ip:
        return PartCheck(prov, False, f"{desc}: {ep.describe()} has no IP address yet", 1)
    if ep.selectable and not state.ipblock_matches_pods:
        return PartCheck(prov, False, f"{desc}: ipBlock does not match pod IPs in this cluster "
                                      f"(ipblock_matches_pods is off); {ep.key} is a pod", 1)
    if peer.contains(ep.ip):
        return PartCheck(prov, True, f"{desc} contains {ep.ip}")
    excluded = peer.excluded_by(ep.ip)
    if excluded:
        return PartCheck(prov, False, f"{desc}: {ep.ip} is removed by except {excluded}", 1)
    return PartCheck(prov, False, f"{desc}: {ep.ip} is not in {peer.cidr}", 1)


def _check_pods(state: ClusterState, peer: PodPeer, ep: Endpoint) -> PartCheck:
    prov, desc = peer.provenance, peer.describe()
    if not ep.is_pod:
        return PartCheck(prov, False, f"{desc}: {ep.describe()} is not a pod; only an ipBlock peer matches it", 2)
    if ep.host_network:
        return PartCheck(prov, False, f"{desc}: {ep.key} is a hostNetwork pod, which pod and namespace selectors "
                                      f"never match; only an ipBlock peer matches its address {ep.ip}", 2)
    ns_labels = state.ns_labels(ep.namespace)
    ns_ok = peer.namespace_in_scope(ep.namespace or "", ns_labels)
    pod_ok = peer.pod_selector.matches(ep.labels)
    problems = []
    if not ns_ok:
        if peer.namespace_selector is None:
            problems.append(f"podSelector {selector_text(peer.pod_selector)} only selects pods in namespace "
                            f"{peer.namespace}; {ep.key} is in {ep.namespace}")
        else:
            sel = peer.namespace_selector
            matching = state.namespaces_matching(sel)
            if not matching:
                problems.append(f"namespaceSelector {sel.describe()} matches no namespace "
                                f"(namespace {ep.namespace} has labels {labels_text(ns_labels)})")
            else:
                shown = ", ".join(matching[:5]) + (" …" if len(matching) > 5 else "")
                problems.append(f"namespaceSelector {sel.describe()} does not match namespace {ep.namespace} "
                                f"(labels {labels_text(ns_labels)}); it matches {shown}")
    if not pod_ok:
        problems.append(f"podSelector {peer.pod_selector.describe()} does not match {ep.key} "
                        f"(labels {labels_text(ep.labels)})")
    if problems:
        return PartCheck(prov, False, "; ".join(problems), len(problems))
    scope = (f"namespace {ep.namespace}" if peer.namespace_selector is None
             else f"namespaceSelector {selector_text(peer.namespace_selector)}")
    return PartCheck(prov, True, f"{desc} matches {ep.key} ({scope}, labels {labels_text(ep.labels)})")


def _check_nodes(state: ClusterState, peer: NodePeer, ep: Endpoint) -> PartCheck:
    desc = peer.describe()
    addresses = state.node_addresses(peer.node_selector)
    if ep.ip and ep.ip in addresses:
        node = next((n.name for n in state.nodes if ep.ip in n.addresses), "?")
        return PartCheck(peer.provenance, True, f"{desc}: {ep.ip} is an address of node {node}")
    matching = [n.name for n in state.nodes if peer.node_selector.matches(n.labels)]
    which = f"the matching nodes ({', '.join(matching[:5])}) have addresses {', '.join(addresses[:5]) or 'none'}" \
        if matching else "no node matches it"
    return PartCheck(peer.provenance, False, f"{desc}: {ep.ip or ep.key} is not a node address: {which}", 1)


def check_entity(state: ClusterState, peer: EntityPeer, ep: Endpoint, side: str = "") -> PartCheck:
    """A Calico rule end against one endpoint, naming each failing field."""
    who = ep.key if ep.is_pod else str(ep.ip)
    problems: list[str] = []
    found: list[str] = []
    if peer.nets:
        if state.entity_matches(EntityPeer(peer.provenance, nets=peer.nets, networks=peer.networks), ep):
            found.append(f"{ep.ip} is in nets {', '.join(peer.nets)}")
        else:
            problems.append(f"{ep.ip or who} is not in nets {', '.join(peer.nets)}")
    if peer.not_nets and not state.entity_matches(
            EntityPeer(peer.provenance, not_nets=peer.not_nets, not_networks=peer.not_networks), ep):
        problems.append(f"{ep.ip} is in notNets {', '.join(peer.not_nets)}")
    if peer.has_positive:
        if state.entity_pod_positive(peer, ep):
            found.append(f"{_positive_text(peer)} matches {who}")
        else:
            sets = [s for s in state.matching_sets(peer) if in_networks(ep.ip, s.networks)]
            if sets:
                found.append(f"{ep.ip} is in {sets[0].ref}, which {_positive_text(peer)} matches")
            else:
                problems.append(_positive_miss(state, peer, ep))
    if peer.not_selector is not None:
        by_labels = ep.selectable and peer.not_selector.matches(state.calico_labels(ep))
        sets = [s for s in state.matching_sets(peer, negated=True) if in_networks(ep.ip, s.networks)]
        if by_labels:
            problems.append(f"notSelector {peer.not_selector.describe()} matches {who}")
        elif sets:
            problems.append(f"{ep.ip} is in {sets[0].ref}, which notSelector {peer.not_selector.describe()} matches")
    prefix = f"{side} " if side else ""
    if problems:
        return PartCheck(peer.provenance, False, prefix + "; ".join(problems), len(problems))
    return PartCheck(peer.provenance, True, prefix + ("; ".join(found) or f"{peer.describe()} matches {who}"))


def _positive_text(peer: EntityPeer) -> str:
    parts = []
    if peer.selector is not None:
        parts.append(f"selector {peer.selector.describe()}")
    if peer.namespace_selector_text is not None:
        parts.append(f"namespaceSelector {peer.namespace_selector_text or 'all()'}")
    if peer.service_accounts is not None:
        parts.append(f"serviceAccounts {', '.join(peer.service_accounts)}")
    if peer.scope is not None:
        parts.append(f"(namespace {peer.scope})")
    return " ".join(parts) or "the entity"


def _positive_miss(state: ClusterState, peer: EntityPeer, ep: Endpoint) -> str:
    text = _positive_text(peer)
    if not ep.is_pod:
        return f"{text} matches no pod or network set with address {ep.ip}"
    if ep.host_network:
        return f"{text}: {ep.key} is a hostNetwork pod (not an endpoint selectors match; only nets or a network set match it)"
    if peer.scope is not None and ep.namespace != peer.scope:
        return f"{text} only matches pods in namespace {peer.scope}; {ep.key} is in {ep.namespace}"
    if peer.namespace_selector is not None and not peer.namespace_selector.matches(state.calico_ns_labels(ep.namespace)):
        return (f"namespaceSelector {peer.namespace_selector_text or 'all()'} does not match namespace {ep.namespace} "
                f"(labels {labels_text(state.ns_labels(ep.namespace))})")
    if peer.service_accounts is not None and ep.service_account not in peer.service_accounts:
        return f"{ep.key} runs as service account {ep.service_account}, not {', '.join(peer.service_accounts)}"
    return f"{text} does not match {ep.key} (labels {labels_text(ep.labels)})"


def port_text(pm: PortMatch, dst: Endpoint) -> str:
    text = pm.describe()
    if pm.is_named:
        number = dst.named_ports.get((str(pm.port), pm.protocol)) if dst.is_pod else None
        if number is None:
            who = dst.key if dst.is_pod else "an address outside the cluster"
            text += f" (not declared by {who})"
        else:
            text += f" (= {number} on {dst.key})"
    return text


def check_ports(rule: Rule, port: int | None, protocol: str, dst: Endpoint) -> tuple[tuple[PartCheck, ...], bool, str]:
    if rule.ports is None:
        if rule.action == "Allow" and rule.is_plain:
            return (), True, "all ports and protocols are allowed (no ports listed)"
        return (), True, "every port and protocol (no ports listed)"
    listed = "[" + ", ".join(port_text(pm, dst) for pm in rule.ports) + "]"
    traffic = protocol if port is None else f"port {port}/{protocol}"
    checks = []
    for pm in rule.ports:
        ok = port_matches(pm, port, protocol, dst)
        checks.append(PartCheck(pm.provenance, ok, f"{traffic} {'matches' if ok else 'does not match'} {port_text(pm, dst)}",
                                0 if ok else 1))
    if any(c.matched for c in checks):
        hit = next(c for c in checks if c.matched)
        return tuple(checks), True, hit.text
    if protocol == ICMP:
        return tuple(checks), False, f"{ICMP} is allowed only by a rule without ports; this rule allows only {listed}"
    return tuple(checks), False, f"{traffic} is not in {listed}"


def _extras(state: ClusterState, rule: Rule, subject: Endpoint, port: int | None, protocol: str,
            dst: Endpoint) -> tuple[PartCheck, ...]:
    out: list[PartCheck] = []
    if rule.local is not None:
        side = "destination" if rule.direction == "ingress" else "source"
        out.append(check_entity(state, rule.local, subject, side=side))
    for pm in rule.not_ports:
        if port_matches(pm, port, protocol, dst):
            out.append(PartCheck(pm.provenance, False, f"port {port}/{protocol} is in notPorts ({port_text(pm, dst)})", 1))
    if not rule.is_plain and not rule_protocol_matches(rule, protocol, subject.ip_version):
        out.append(PartCheck(rule.provenance, False, _protocol_miss(rule, protocol, subject.ip_version), 1))
    return tuple(out)


def _protocol_miss(rule: Rule, protocol: str, ip_version: int) -> str:
    if rule.not_protocol is not None and rule.not_protocol == protocol:
        return f"notProtocol {rule.not_protocol} excludes {protocol}"
    echo = f"type {ICMP_ECHO[0]} code {ICMP_ECHO[1]} (echo request)"
    if rule.icmp is not None and not (protocol == ICMP and rule.icmp.matches(*ICMP_ECHO)):
        return f"icmp {rule.icmp.describe()} does not match {protocol if protocol != ICMP else 'ICMP ' + echo}"
    if rule.not_icmp is not None and protocol == ICMP:
        return f"notICMP {rule.not_icmp.describe()} excludes ICMP {echo}"
    return f"ipVersion {rule.ip_version} does not match the IPv{ip_version} traffic"
