"""evaluate(src, dst, port, protocol) → Verdict: the decision and why, down to rule, peer and port.

A denial lists every rule of every isolating policy as a miss with its reasons, nearest first
(fewest failing parts), and a minimal fix when one change would allow the traffic. The decision
itself is the one ``cluster.allowed`` (the reference evaluator) makes; tests hold them equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .cluster import ICMP, NAME_LABEL, ClusterState, Endpoint, always_allowed, port_matches
from .ir import Direction, IPBlockPeer, PodPeer, PolicyIR, PortMatch, Provenance, Rule, selector_text


@dataclass(frozen=True)
class PartCheck:
    """One peer or one port entry checked against the traffic."""

    provenance: Provenance
    matched: bool
    text: str
    distance: int = 0  # how many terms failed (0 when matched)

    def to_dict(self) -> dict[str, object]:
        return {"matched": self.matched, "reason": self.text, "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class RuleCheck:
    """One rule checked: it allows iff some peer matches and some port matches."""

    rule: Rule
    policy_source: str | None
    peers_ok: bool
    ports_ok: bool
    peers: tuple[PartCheck, ...]
    ports: tuple[PartCheck, ...]
    peer_summary: str
    port_summary: str
    fix: str | None = None

    @property
    def allows(self) -> bool:
        return self.peers_ok and self.ports_ok

    @property
    def distance(self) -> int:
        """How far from allowing: failing peer terms (best peer) plus 1 if the ports fail."""
        peer = 0 if self.peers_ok else min((p.distance for p in self.peers), default=1)
        return peer + (0 if self.ports_ok else 1)

    def reasons(self) -> list[str]:
        out = []
        if not self.peers_ok:
            out.append(self.peer_summary)
        if not self.ports_ok:
            out.append(self.port_summary)
        return out or [f"{self.peer_summary}; {self.port_summary}"]

    def describe(self) -> str:
        where = self.rule.provenance.describe()
        src = f" ({self.policy_source})" if self.policy_source else ""
        return f"{where}{src}: " + "; ".join(self.reasons())

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.provenance.to_dict(),
            "allows": self.allows,
            "distance": self.distance,
            "reasons": self.reasons(),
            "text": self.describe(),
            "peers": [p.to_dict() for p in self.peers],
            "ports": [p.to_dict() for p in self.ports],
            "fix": self.fix,
        }


@dataclass(frozen=True)
class DirectionVerdict:
    direction: Direction
    isolated: bool
    policies: tuple[str, ...]
    allowed: bool
    note: str
    allowed_by: tuple[RuleCheck, ...] = ()
    misses: tuple[RuleCheck, ...] = ()
    fix: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "isolated": self.isolated,
            "policies": list(self.policies),
            "allowed": self.allowed,
            "note": self.note,
            "allowedBy": [r.to_dict() for r in self.allowed_by],
            "misses": [r.to_dict() for r in self.misses],
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Verdict:
    src: Endpoint
    dst: Endpoint
    port: int | None
    protocol: str
    allowed: bool
    summary: str
    always: str | None
    egress: DirectionVerdict | None
    ingress: DirectionVerdict | None
    fixes: tuple[str, ...] = field(default=())

    @property
    def traffic(self) -> str:
        return self.protocol if self.port is None else f"{self.port}/{self.protocol}"

    @property
    def nearest_misses(self) -> tuple[RuleCheck, ...]:
        misses = [m for d in (self.egress, self.ingress) if d and not d.allowed for m in d.misses]
        if not misses:
            return ()
        best = min(m.distance for m in misses)
        return tuple(m for m in misses if m.distance == best)

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "verdict": "allowed" if self.allowed else "denied",
            "from": self.src.to_dict(),
            "to": self.dst.to_dict(),
            "port": self.port,
            "protocol": self.protocol,
            "summary": self.summary,
            "alwaysAllowed": self.always,
            "egress": self.egress.to_dict() if self.egress else None,
            "ingress": self.ingress.to_dict() if self.ingress else None,
            "nearestMisses": [m.describe() for m in self.nearest_misses],
            "fix": list(self.fixes),
        }


def evaluate(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str = "TCP") -> Verdict:
    """The decision for src → dst on port/protocol, with per-direction reasons and fixes."""
    protocol = protocol.upper()
    if protocol == ICMP:
        port = None
    always = always_allowed(src, dst)
    egress = _direction(state, src, dst, port, protocol, "egress")
    ingress = _direction(state, src, dst, port, protocol, "ingress")
    allowed = bool(always) or (egress.allowed and ingress.allowed)
    traffic = protocol if port is None else f"{port}/{protocol}"
    head = f"{src.describe()} → {dst.describe()} {traffic}"
    if always:
        summary = f"{head}: ALLOWED ({always})"
    elif allowed:
        summary = f"{head}: ALLOWED"
    else:
        denied = [d.direction for d in (egress, ingress) if not d.allowed]
        summary = f"{head}: DENIED by {' and '.join(denied)}"
    fixes = () if allowed else tuple(d.fix for d in (egress, ingress) if not d.allowed and d.fix)
    return Verdict(src, dst, port, protocol, allowed, summary, always, egress, ingress, fixes)


def _direction(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str,
               direction: Direction) -> DirectionVerdict:
    subject, peer = (dst, src) if direction == "ingress" else (src, dst)
    kind = "Ingress" if direction == "ingress" else "Egress"
    if not subject.is_pod:
        return DirectionVerdict(direction, False, (), True, f"{subject.describe()}: no {direction} policy applies")
    if subject.host_network:
        return DirectionVerdict(direction, False, (), True,
                                f"{subject.describe()}: hostNetwork pods are never selected by NetworkPolicy")
    policies = state.selecting(subject, direction)
    if not policies:
        return DirectionVerdict(direction, False, (), True,
                                f"{subject.key} is not selected by any policy with {kind} in policyTypes: "
                                f"{direction} is not isolated")
    checks = [_check_rule(state, pol, rule, peer, dst, port, protocol) for pol in policies for rule in pol.rules(direction)]
    allowing = tuple(c for c in checks if c.allows)
    names = tuple(p.ref for p in policies)
    if allowing:
        note = f"{subject.key} is isolated for {direction} by {', '.join(names)}; allowed by " + \
            "; ".join(c.rule.provenance.describe() for c in allowing)
        return DirectionVerdict(direction, True, names, True, note, allowed_by=allowing)
    misses = tuple(sorted(checks, key=lambda c: (c.distance, c.rule.provenance)))
    if not checks:
        note = (f"{subject.key} is isolated for {direction} by {', '.join(names)}, which "
                f"{'has' if len(names) == 1 else 'have'} no {direction} rules: all {direction} is denied")
    else:
        note = f"{subject.key} is isolated for {direction} by {', '.join(names)} and no {direction} rule allows this traffic"
    fix = misses[0].fix if misses and misses[0].distance == 1 and misses[0].fix else _new_rule_fix(
        state, policies, direction, src, dst, port, protocol)
    return DirectionVerdict(direction, True, names, False, note, misses=misses, fix=fix)


# --- rule checks --------------------------------------------------------------------------


def _check_rule(state: ClusterState, pol: PolicyIR, rule: Rule, peer: Endpoint, dst: Endpoint, port: int | None,
                protocol: str) -> RuleCheck:
    if rule.peers is None:
        peers: tuple[PartCheck, ...] = ()
        peers_ok = True
        peer_summary = f"every {'source' if rule.direction == 'ingress' else 'destination'} is allowed (no peers listed)"
    else:
        peers = tuple(_check_peer(state, p, peer) for p in rule.peers)
        peers_ok = any(p.matched for p in peers)
        if peers_ok:
            peer_summary = next(p.text for p in peers if p.matched)
        else:
            peer_summary = "; ".join(f"peer {p.provenance.peer}: {p.text}" for p in peers)
    ports, ports_ok, port_summary = _check_ports(rule, port, protocol, dst)
    source = rule.provenance.source
    check = RuleCheck(rule, source, peers_ok, ports_ok, peers, ports, peer_summary, port_summary)
    fix = _rule_fix(state, pol, check, peer, port, protocol)
    return RuleCheck(rule, source, peers_ok, ports_ok, peers, ports, peer_summary, port_summary, fix)


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _check_peer(state: ClusterState, peer: PodPeer | IPBlockPeer, ep: Endpoint) -> PartCheck:
    prov = peer.provenance
    if isinstance(peer, IPBlockPeer):
        desc = peer.describe()
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
    desc = peer.describe()
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
            problems.append(f"podSelector {selector_text(peer.pod_selector)} only selects pods in namespace {peer.namespace}; "
                            f"{ep.key} is in {ep.namespace}")
        else:
            sel = peer.namespace_selector
            matching = state.namespaces_matching(sel)
            if not matching:
                problems.append(f"namespaceSelector {sel.describe()} matches no namespace "
                                f"(namespace {ep.namespace} has labels {_labels(ns_labels)})")
            else:
                shown = ", ".join(matching[:5]) + (" …" if len(matching) > 5 else "")
                problems.append(f"namespaceSelector {sel.describe()} does not match namespace {ep.namespace} "
                                f"(labels {_labels(ns_labels)}); it matches {shown}")
    if not pod_ok:
        problems.append(f"podSelector {peer.pod_selector.describe()} does not match {ep.key} "
                        f"(labels {_labels(ep.labels)})")
    if problems:
        return PartCheck(prov, False, "; ".join(problems), len(problems))
    scope = (f"namespace {ep.namespace}" if peer.namespace_selector is None
             else f"namespaceSelector {selector_text(peer.namespace_selector)}")
    return PartCheck(prov, True, f"{desc} matches {ep.key} ({scope}, labels {_labels(ep.labels)})")


def _port_text(pm: PortMatch, dst: Endpoint) -> str:
    text = pm.describe()
    if pm.is_named:
        number = dst.named_ports.get((str(pm.port), pm.protocol)) if dst.is_pod else None
        if number is None:
            who = dst.key if dst.is_pod else "an address outside the cluster"
            text += f" (not declared by {who})"
        else:
            text += f" (= {number} on {dst.key})"
    return text


def _check_ports(rule: Rule, port: int | None, protocol: str, dst: Endpoint) -> tuple[tuple[PartCheck, ...], bool, str]:
    if rule.ports is None:
        return (), True, "all ports and protocols are allowed (no ports listed)"
    listed = "[" + ", ".join(_port_text(pm, dst) for pm in rule.ports) + "]"
    traffic = protocol if port is None else f"port {port}/{protocol}"
    checks = []
    for pm in rule.ports:
        ok = protocol != ICMP and port_matches(pm, port, protocol, dst)
        checks.append(PartCheck(pm.provenance, ok, f"{traffic} {'matches' if ok else 'does not match'} {_port_text(pm, dst)}",
                                0 if ok else 1))
    if any(c.matched for c in checks):
        hit = next(c for c in checks if c.matched)
        return tuple(checks), True, hit.text
    if protocol == ICMP:
        return tuple(checks), False, f"{ICMP} is allowed only by a rule without ports; this rule allows only {listed}"
    return tuple(checks), False, f"{traffic} is not in {listed}"


# --- fixes --------------------------------------------------------------------------------


def _where(pol: PolicyIR, rule: Rule, peer_index: int | None = None) -> str:
    source = rule.provenance.source
    if peer_index is not None and rule.peers is not None:
        source = rule.peers[peer_index].provenance.source
    prov = Provenance(pol.namespace, pol.name, rule.direction, rule.index, peer=peer_index, source=source)
    src = f" ({source})" if source else ""
    return f"{prov.field_path} of {pol.ref}{src}"


def _peer_yaml(state: ClusterState, ep: Endpoint, policy_ns: str) -> str:
    if not ep.selectable:
        return f"{{ipBlock: {{cidr: {ep.ip}/{'32' if ':' not in str(ep.ip) else '128'}}}}}"
    pod_sel = "{matchLabels: {" + ", ".join(f"{k}: {v}" for k, v in sorted(ep.labels.items())) + "}}" if ep.labels else "{}"
    if ep.namespace == policy_ns:
        return f"{{podSelector: {pod_sel}}}"
    return f"{{namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {ep.namespace}}}}}, podSelector: {pod_sel}}}"


def _rule_fix(state: ClusterState, pol: PolicyIR, check: RuleCheck, peer: Endpoint, port: int | None,
              protocol: str) -> str | None:
    """One change to this rule that would allow the traffic, when one change is enough."""
    if check.allows or check.distance != 1:
        return None
    rule = check.rule
    if not check.ports_ok:
        if protocol == ICMP:
            return f"remove ports from {_where(pol, rule)} (only a rule without ports allows {ICMP})"
        return f"add {{protocol: {protocol}, port: {port}}} to ports of {_where(pol, rule)}"
    best = min(check.peers, key=lambda p: (p.distance, p.provenance))
    assert rule.peers is not None
    target = rule.peers[best.provenance.peer or 0]
    where = _where(pol, rule, best.provenance.peer)
    if isinstance(target, IPBlockPeer):
        excluded = target.excluded_by(peer.ip) if peer.ip else None
        if excluded:
            return f"remove except {excluded} from {where}, or add a peer {_peer_yaml(state, peer, pol.namespace)}"
        return f"add a peer {_peer_yaml(state, peer, pol.namespace)} to {_where(pol, rule)}"
    ns_labels = state.ns_labels(peer.namespace)
    if not target.namespace_in_scope(peer.namespace or "", ns_labels):
        if target.namespace_selector is None:
            return (f"add a namespaceSelector to the same peer ({where}): "
                    f"namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
        sel = target.namespace_selector
        if sel.match_labels and not sel.match_expressions:
            wanted = " ".join(f"{k}={v}" for k, v in sorted(sel.match_labels.items()))
            return (f"label the namespace (kubectl label namespace {peer.namespace} {wanted}), or select it by name "
                    f"in {where}: namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
        return (f"change the namespaceSelector in {where} to match namespace {peer.namespace}, e.g. "
                f"namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
    sel = target.pod_selector
    if sel.match_labels and not sel.match_expressions:
        wanted = " ".join(f"{k}={v}" for k, v in sorted(sel.match_labels.items()))
        return f"label the pod (kubectl label pod -n {peer.namespace} {peer.name} {wanted}), or change podSelector in {where}"
    return f"change the podSelector in {where} to match {peer.key} (labels {_labels(peer.labels)})"


def _new_rule_fix(state: ClusterState, policies: tuple[PolicyIR, ...], direction: Direction, src: Endpoint,
                  dst: Endpoint, port: int | None, protocol: str) -> str:
    """No single edit to an existing rule suffices: the smallest new rule that would."""
    pol = policies[0]
    peer = src if direction == "ingress" else dst
    key = "from" if direction == "ingress" else "to"
    ports = "" if port is None else f", ports: [{{protocol: {protocol}, port: {port}}}]"
    src_text = f" ({pol.source})" if pol.source else ""
    return (f"add an {direction} rule to {pol.ref}{src_text}, or a new NetworkPolicy in namespace {pol.namespace} "
            f"selecting {dst.key if direction == 'ingress' else src.key}: "
            f"{direction}: [{{{key}: [{_peer_yaml(state, peer, pol.namespace)}]{ports}}}]")
