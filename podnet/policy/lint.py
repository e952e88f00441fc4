"""Lint: policies that are valid but probably not what their author meant.

Each finding names the policy, the field path and (when known) the manifest ``file:line``,
says what is wrong against the current cluster state, and how to fix it. The checks follow
the mistakes people actually make (see docs/policy.md): selectors that match nothing, a
namespace selected by a label no namespace has, egress lock-downs that break DNS, policyTypes
that disagree with the rules, AND/OR peer confusion, sloppy CIDRs, undeclared named ports,
redundant policies, DNS allowed on only one of UDP/TCP, and a Service's port opened where its
pods receive on another targetPort.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from podnet.errors import format_field_path
from podnet.model.selectors import LabelSelector

from .cluster import NAME_LABEL, ClusterState, Endpoint, peer_matches
from .cover import rule_covered
from .ir import DIRECTIONS, Direction, IPBlockPeer, Peer, PodPeer, PolicyIR, PortMatch, Rule
from .lint_tiers import Warn, tiered_checks
from .services import check_ingress_backends, check_service_ports
from .walk import direction_allowed

Path = tuple[str | int, ...]
DNS_LABEL = ("k8s-app", "kube-dns")


@dataclass(frozen=True, order=True)
class LintWarning:
    policy: str
    path: Path
    code: str
    message: str
    hint: str | None = None
    location: str | None = None

    @property
    def field_path(self) -> str:
        return format_field_path(self.path)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.policy}: {self.field_path}: {self.message} [{self.code}]{hint}"

    def to_dict(self) -> dict[str, object]:
        return {"policy": self.policy, "field": self.field_path, "code": self.code, "message": self.message,
                "hint": self.hint, "location": self.location}


Locate = Callable[[str, Path], "str | None"]


def lint(state: ClusterState, locate: Locate | None = None) -> list[LintWarning]:
    """Every finding for every policy in ``state``, sorted by location then policy."""
    out: list[LintWarning] = []

    def warn(pol: PolicyIR, path: Path, code: str, message: str, hint: str | None = None) -> None:
        where = (locate(pol.ref, path) if locate else None) or pol.source
        out.append(LintWarning(pol.ref, path, code, message, hint, where))

    for pol in state.policies:
        _check_types(pol, warn)
        if not pol.is_k8s:
            continue  # the tiered kinds' checks are in lint_tiers
        selected = [ep for ep in state.pods if pol.selects(ep.namespace or "", ep.labels, ep.host_network)]
        if state.pods:  # with no pods known (policy files alone), "selects nothing" says nothing
            _check_subject(state, pol, selected, warn)
        _check_types_default(pol, warn)
        for direction in DIRECTIONS:
            for rule in pol.rules(direction):
                _check_rule(state, pol, rule, selected, warn)
        _check_dns(state, pol, selected, warn)
    _check_redundant(state, warn)
    tiered_checks(state, warn)
    check_service_ports(state, warn)
    check_ingress_backends(state, warn)
    return sorted(out, key=lambda w: (_loc_key(w.location), w.policy, w.path, w.code))


def _desc(selector: LabelSelector) -> str:
    return "{} (all pods)" if selector.is_empty else selector.describe()


def _loc_key(location: str | None) -> tuple[str, int]:
    if not location:
        return ("", 0)
    file, _, line = location.rpartition(":")
    return (file, int(line)) if line.isdigit() else (location, 0)


def _path(rule: Rule, *rest: str | int) -> Path:
    return ("spec", rule.direction, rule.index, *rest)


def _peer_key(rule: Rule) -> str:
    return "from" if rule.direction == "ingress" else "to"


def _check_subject(state: ClusterState, pol: PolicyIR, selected: list[Endpoint], warn: Warn) -> None:
    if not selected:
        host = [ep for ep in state.pods if ep.namespace == pol.namespace and ep.host_network
                and pol.pod_selector.matches(ep.labels)]
        extra = f"; {len(host)} matching hostNetwork pod(s) are never selected" if host else ""
        warn(pol, ("spec", "podSelector"), "selects-no-pod",
             f"podSelector {_desc(pol.pod_selector)} selects no pod in namespace {pol.namespace}{extra}",
             "check the labels (kubectl get pods --show-labels) or the policy's namespace")


def _check_types(pol: PolicyIR, warn: Warn) -> None:
    field = "policyTypes" if pol.is_k8s else "types"
    for direction in pol.ignored_directions:
        kind = direction.capitalize()
        warn(pol, ("spec", field), "ignored-rules",
             f"the policy has {direction} rules but {field} does not list {kind}, so they are ignored",
             f"add {kind} to {field}, or remove the {direction} section")


def _check_types_default(pol: PolicyIR, warn: Warn) -> None:
    """Without policyTypes the API server picks them from the rules, which surprises people
    both ways: egress rules alone also isolate ingress; ``egress: []`` alone isolates nothing."""
    if pol.declared_types is not None or "egress" not in pol.sections:
        return
    if "egress" not in pol.isolates:  # the egress list is empty, so the default is [Ingress]
        warn(pol, ("spec", "egress"), "empty-egress-not-isolating",
             "egress: [] without policyTypes does not isolate egress: the API server adds Egress to the "
             "default policyTypes only when the egress list has entries",
             "to deny all egress set policyTypes: [Ingress, Egress] (or [Egress]); otherwise remove 'egress: []'")
    elif "ingress" not in pol.sections:
        warn(pol, ("spec",), "implicit-ingress-isolation",
             "policyTypes is missing and only egress rules are present: the default [Ingress, Egress] also denies "
             "all ingress to the selected pods", "set policyTypes: [Egress] if only egress was meant")


def _ns_matches(state: ClusterState, peer: PodPeer) -> list[str]:
    assert peer.namespace_selector is not None
    return list(state.namespaces_matching(peer.namespace_selector))


def _pods_in_scope(state: ClusterState, peer: PodPeer) -> list[Endpoint]:
    return [ep for ep in state.pods if ep.selectable and peer.namespace_in_scope(ep.namespace or "", state.ns_labels(ep.namespace))]


def _check_rule(state: ClusterState, pol: PolicyIR, rule: Rule, selected: list[Endpoint], warn: Warn) -> None:
    key = _peer_key(rule)
    peers = rule.peers or ()
    for j, peer in enumerate(peers):
        path = _path(rule, key, j)
        if isinstance(peer, IPBlockPeer):
            _check_block(pol, peer, path, warn)
            continue
        if not isinstance(peer, PodPeer):
            continue  # a NetworkPolicy has no other peers
        if peer.namespace_selector is not None:
            namespaces = _ns_matches(state, peer)
            if not namespaces:
                _warn_ns_selector(state, pol, peer, path, warn)
                continue
        in_scope = _pods_in_scope(state, peer)
        matched = [ep for ep in in_scope if peer.pod_selector.matches(ep.labels)]
        if not matched and peer.has_pod_selector and state.pods:
            scope = (f"namespace {peer.namespace}" if peer.namespace_selector is None
                     else f"namespaces matching {peer.namespace_selector.describe()}")
            elsewhere = [ep for ep in state.pods if ep.selectable and peer.pod_selector.matches(ep.labels)]
            hint = "check the pod labels"
            if elsewhere and peer.namespace_selector is None:
                hint = (f"{len(elsewhere)} matching pod(s) exist in other namespaces (e.g. {elsewhere[0].key}); a "
                        f"podSelector alone only selects pods in {peer.namespace}: add a namespaceSelector to the same peer")
            elif elsewhere and peer.namespace_selector is not None and peer.has_pod_selector:
                hint = (f"together (AND) the two selectors match no pod, but podSelector alone matches "
                        f"{elsewhere[0].key}; if either was meant, write them as two peers (put '-' before podSelector)")
            warn(pol, path + ("podSelector",), "peer-selects-no-pod",
                 f"podSelector {_desc(peer.pod_selector)} matches no pod in {scope}", hint)
    # OR that was probably meant as AND: a namespace-only peer next to a pod-only peer.
    for j in range(len(peers) - 1):
        a, b = peers[j], peers[j + 1]
        if not (isinstance(a, PodPeer) and isinstance(b, PodPeer)):
            continue
        ns_only = [p for p in (a, b) if p.namespace_selector is not None and not p.has_pod_selector]
        pod_only = [p for p in (a, b) if p.namespace_selector is None and p.has_pod_selector]
        if ns_only and pod_only:
            n = ns_only[0]
            assert n.namespace_selector is not None
            warn(pol, _path(rule, key, j), "split-peer",
                 f"{key}[{j}] and {key}[{j + 1}] are two peers (OR): one admits every pod in namespaces matching "
                 f"{n.namespace_selector.describe()}, the other pods matching {pod_only[0].pod_selector.describe()} "
                 f"in {pol.namespace}",
                 "if you meant pods matching the podSelector inside those namespaces, put both selectors in one "
                 "peer (remove the '-' before the second)")
    for k, pm in enumerate(rule.ports or ()):
        if pm.is_named:
            _check_named(state, pol, rule, pm, k, selected, warn)
    _check_dns_protocols(pol, rule, warn)


def _warn_ns_selector(state: ClusterState, pol: PolicyIR, peer: PodPeer, path: Path, warn: Warn) -> None:
    sel = peer.namespace_selector
    assert sel is not None
    keys = set((sel.match_labels or {}).keys()) | {e.key for e in sel.match_expressions or ()}
    known = {k for labels in state.namespace_labels.values() for k in labels}
    missing = sorted(keys - known)
    named = [v for v in (sel.match_labels or {}).values() if v in state.namespace_labels]
    if missing:
        suggestion = f"{{matchLabels: {{{NAME_LABEL}: {named[0]}}}}}" if named else f"{NAME_LABEL}: <namespace>"
        warn(pol, path + ("namespaceSelector",), "unknown-namespace-label",
             f"namespaceSelector {sel.describe()} matches no namespace: no namespace has label "
             f"{', '.join(repr(k) for k in missing)}",
             f"to select namespaces by name use {suggestion}, or label the namespace")
    else:
        warn(pol, path + ("namespaceSelector",), "selects-no-namespace",
             f"namespaceSelector {sel.describe()} matches no namespace",
             "check the namespace labels (kubectl get ns --show-labels)")


def _check_block(pol: PolicyIR, peer: IPBlockPeer, path: Path, warn: Warn) -> None:
    try:
        ipaddress.ip_network(peer.cidr, strict=True)
    except ValueError:
        warn(pol, path + ("ipBlock", "cidr"), "cidr-host-bits",
             f"cidr {peer.cidr} has host bits set; it means {peer.network}",
             f"write {peer.network}, or {peer.cidr.split('/')[0]}/{peer.network.max_prefixlen} for one address")
    for k, (text, net) in enumerate(zip(peer.excepts, peer.except_networks)):
        if net.version != peer.network.version or not net.subnet_of(peer.network) or net == peer.network:  # type: ignore[arg-type]
            warn(pol, path + ("ipBlock", "except", k), "except-outside-cidr",
                 f"except {text} is not strictly inside cidr {peer.cidr}, so it removes nothing",
                 "except entries must be smaller ranges inside the cidr")


def _check_named(state: ClusterState, pol: PolicyIR, rule: Rule, pm: PortMatch, k: int, selected: list[Endpoint],
                 warn: Warn) -> None:
    if rule.direction == "ingress":
        targets, who = selected, "selected pod"
    elif rule.peers is None:
        targets, who = [ep for ep in state.pods if ep.is_pod], "pod"
    else:
        targets = [ep for ep in state.pods if any(_peer_pod(state, p, ep) for p in rule.peers)]
        who = "peer pod"
    wanted = (str(pm.port), pm.protocol)
    if targets and not any(wanted in ep.named_ports for ep in targets):
        other = sorted({proto for ep in targets for (name, proto) in ep.named_ports if name == pm.port})
        hint = (f"a port named {pm.port} is declared for {', '.join(other)}, not {pm.protocol}" if other
                else f"declare containerPort name {pm.port} (protocol {pm.protocol}) or use a number")
        warn(pol, _path(rule, "ports", k), "undeclared-named-port",
             f"named port {pm.port}/{pm.protocol} is declared by no {who} ({len(targets)} checked), so it matches nothing",
             hint)


def _peer_pod(state: ClusterState, peer: Peer, ep: Endpoint) -> bool:
    if isinstance(peer, IPBlockPeer):
        return state.ipblock_matches_pods and peer.contains(ep.ip)
    return ep.selectable and peer_matches(peer, ep, state)


def _admits(pm: PortMatch, port: int, protocol: str) -> bool:
    return not pm.is_named and pm.matches(port, protocol, None)


def _check_dns_protocols(pol: PolicyIR, rule: Rule, warn: Warn) -> None:
    if rule.ports is None:
        return
    udp = any(_admits(pm, 53, "UDP") for pm in rule.ports)
    tcp = any(_admits(pm, 53, "TCP") for pm in rule.ports)
    if udp != tcp:
        have, lack = ("UDP", "TCP") if udp else ("TCP", "UDP")
        warn(pol, _path(rule, "ports"), "dns-one-protocol",
             f"port 53 is allowed for {have} but not {lack}",
             "DNS uses UDP and falls back to TCP for large answers: allow port 53 for both")


def _check_dns(state: ClusterState, pol: PolicyIR, selected: list[Endpoint], warn: Warn) -> None:
    if "egress" not in pol.isolates or not selected:
        return
    dns_pods = [ep for ep in state.pods if ep.selectable and ep.labels.get(DNS_LABEL[0]) == DNS_LABEL[1]]
    blocked = []
    for ep in selected:
        if dns_pods:
            ok = any(direction_allowed(state, ep, d, 53, "UDP", "egress") for d in dns_pods)
        else:
            ok = any(rule.ports is None or any(_admits(pm, 53, "UDP") for pm in rule.ports)
                     for p in state.selecting(ep, "egress") for rule in p.egress)
        if not ok:
            blocked.append(ep.key)
    if blocked:
        target = "the kube-dns pods" if dns_pods else "any address"
        warn(pol, ("spec", "policyTypes") if pol.egress == () else ("spec", "egress"), "egress-blocks-dns",
             f"egress isolation blocks DNS: {len(blocked)} selected pod(s) (e.g. {blocked[0]}) cannot reach "
             f"port 53/UDP on {target}",
             "add an egress rule to port 53 UDP and TCP, e.g. to: [{namespaceSelector: {matchLabels: "
             "{kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]")


# --- redundancy ---------------------------------------------------------------------------


def _check_redundant(state: ClusterState, warn: Warn) -> None:
    """A is redundant if B (same namespace) selects every pod A selects, isolates every direction
    A isolates, and each rule of A is covered by a rule of B: removing A changes nothing."""
    for ns, policies in state.policies_by_ns.items():
        pods = [ep for ep in state.pods if ep.namespace == ns and ep.selectable]
        sel = {p.ref: frozenset(ep.key for ep in pods if p.pod_selector.matches(ep.labels)) for p in policies}
        for a in policies:
            if not sel[a.ref]:
                continue
            for b in policies:
                if a is b or not sel[a.ref] <= sel[b.ref] or not a.isolates <= b.isolates:
                    continue
                directions: tuple[Direction, ...] = ("ingress", "egress")
                if all(any(rule_covered(r, rb) for rb in b.rules(d)) for d in directions for r in a.rules(d)):
                    if sel[a.ref] == sel[b.ref] and a.isolates == b.isolates and \
                            all(any(rule_covered(r, ra) for ra in a.rules(d)) for d in directions for r in b.rules(d)) \
                            and a.ref > b.ref:
                        continue  # equivalent pair: report only the later one's twin once
                    warn(a, ("metadata", "name"), "redundant-policy",
                         f"redundant: {b.ref} selects every pod this policy selects ({len(sel[a.ref])}), isolates the "
                         f"same directions and allows everything it allows", f"delete it, or merge it into {b.ref}")
                    break
