"""The smallest change that would let denied traffic through, in the tier where it was denied.

* One change to one rule, when the nearest miss fails on one term only (a port, a label, a
  namespace selector, an ``except``): that change.
* Denied at the end of a tier: a new Allow rule in that tier (in the first policy of the tier
  that applies), written in the policy's own language.
* Denied by a Deny rule: an Allow rule ahead of it (earlier in the policy, or in a policy of the
  same tier ordered before it), or a narrower Deny rule.
"""
from __future__ import annotations

from .checks import RuleCheck, labels_text
from .cluster import ICMP, NAME_LABEL, ClusterState, Endpoint
from .ir import Direction, IPBlockPeer, PodPeer, PolicyIR, Provenance, Rule


def where(pol: PolicyIR, rule: Rule, peer_index: int | None = None) -> str:
    """``spec.ingress[0].from[1] of ns/policy (file:line)``."""
    source = rule.provenance.source
    prov = rule.provenance
    if peer_index is not None and rule.peers is not None:
        source = rule.peers[peer_index].provenance.source
        prov = rule.peers[peer_index].provenance
    if pol.is_k8s:
        prov = Provenance(pol.namespace, pol.name, rule.direction, rule.index, peer=peer_index, source=source)
    src = f" ({source})" if source else ""
    return f"{prov.field_path} of {pol.ref}{src}"


def peer_yaml(ep: Endpoint, policy_ns: str) -> str:
    """A NetworkPolicy peer that matches ``ep``."""
    if not ep.selectable:
        return f"{{ipBlock: {{cidr: {ep.ip}/{'32' if ':' not in str(ep.ip) else '128'}}}}}"
    pod_sel = "{matchLabels: {" + ", ".join(f"{k}: {v}" for k, v in sorted(ep.labels.items())) + "}}" if ep.labels else "{}"
    if ep.namespace == policy_ns:
        return f"{{podSelector: {pod_sel}}}"
    return f"{{namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {ep.namespace}}}}}, podSelector: {pod_sel}}}"


def calico_entity_yaml(ep: Endpoint, policy_ns: str) -> str:
    """A Calico rule end that matches ``ep``: a selector on its labels (and namespace), or nets."""
    if not ep.selectable:
        return f"{{nets: [{ep.ip}/{'32' if ':' not in str(ep.ip) else '128'}]}}"
    sel = " && ".join(f"{k} == '{v}'" for k, v in sorted(ep.labels.items())) or "all()"
    if ep.namespace == policy_ns:
        return f'{{selector: "{sel}"}}'
    return f"{{selector: \"{sel}\", namespaceSelector: \"projectcalico.org/name == '{ep.namespace}'\"}}"


def rule_fix(state: ClusterState, pol: PolicyIR, check: RuleCheck, peer: Endpoint, port: int | None,
             protocol: str) -> str | None:
    """One change to this rule that would make it match, when one change is enough."""
    if check.matches or check.distance != 1:
        return None
    rule = check.rule
    if not check.ports_ok:
        if protocol == ICMP:
            return f"remove ports from {where(pol, rule)} (only a rule without ports allows {ICMP})"
        if pol.is_k8s:
            return f"add {{protocol: {protocol}, port: {port}}} to ports of {where(pol, rule)}"
        if pol.kind in ("calico", "gnp"):
            return f"add {port} to destination.ports of {where(pol, rule)} (protocol {protocol})"
        return f"add {{portNumber: {{protocol: {protocol}, port: {port}}}}} to ports of {where(pol, rule)}"
    if not check.extras_ok:
        missed = next(e for e in check.extras if not e.matched)
        return f"{missed.text}: change {missed.provenance.field_path} of {pol.ref}"
    best = min(check.peers, key=lambda p: (p.distance, p.provenance))
    assert rule.peers is not None
    index = rule.peers.index(next(p for p in rule.peers if p.provenance == best.provenance))
    target = rule.peers[index]
    at = where(pol, rule, index)
    if isinstance(target, IPBlockPeer):
        excluded = target.excluded_by(peer.ip) if peer.ip else None
        if excluded:
            return f"remove except {excluded} from {at}, or add a peer {peer_yaml(peer, pol.namespace)}"
        return f"add a peer {peer_yaml(peer, pol.namespace)} to {where(pol, rule)}"
    if not isinstance(target, PodPeer):
        return f"{best.text}: change {at} to match {peer.key if peer.is_pod else peer.ip}"
    ns_labels = state.ns_labels(peer.namespace)
    if not target.namespace_in_scope(peer.namespace or "", ns_labels):
        if target.namespace_selector is None:
            return (f"add a namespaceSelector to the same peer ({at}): "
                    f"namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
        sel = target.namespace_selector
        if sel.match_labels and not sel.match_expressions:
            wanted = " ".join(f"{k}={v}" for k, v in sorted(sel.match_labels.items()))
            return (f"label the namespace (kubectl label namespace {peer.namespace} {wanted}), or select it by name "
                    f"in {at}: namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
        return (f"change the namespaceSelector in {at} to match namespace {peer.namespace}, e.g. "
                f"namespaceSelector: {{matchLabels: {{{NAME_LABEL}: {peer.namespace}}}}}")
    sel = target.pod_selector
    if sel.match_labels and not sel.match_expressions:
        wanted = " ".join(f"{k}={v}" for k, v in sorted(sel.match_labels.items()))
        return f"label the pod (kubectl label pod -n {peer.namespace} {peer.name} {wanted}), or change podSelector in {at}"
    return f"change the podSelector in {at} to match {peer.key} (labels {labels_text(peer.labels)})"


def new_rule_fix(policies: tuple[PolicyIR, ...], tier: str, direction: Direction, src: Endpoint, dst: Endpoint,
                 port: int | None, protocol: str) -> str:
    """No single edit to an existing rule suffices: the smallest new Allow rule, in the tier
    that denied (in its first policy that applies)."""
    pol = policies[0]
    peer = src if direction == "ingress" else dst
    subject = dst if direction == "ingress" else src
    src_text = f" ({pol.source})" if pol.source else ""
    if pol.is_k8s:
        key = "from" if direction == "ingress" else "to"
        ports = "" if port is None else f", ports: [{{protocol: {protocol}, port: {port}}}]"
        return (f"add an {direction} rule to {pol.ref}{src_text}, or a new NetworkPolicy in namespace {pol.namespace} "
                f"selecting {subject.key}: {direction}: [{{{key}: [{peer_yaml(peer, pol.namespace)}]{ports}}}]")
    side = "source" if direction == "ingress" else "destination"
    proto = f"protocol: {protocol}, " if protocol else ""
    ports = "" if port is None else f", destination: {{ports: [{port}]}}"
    return (f"add an Allow rule to {pol.describe()}{src_text} (tier {tier}), before any rule that matches this "
            f"traffic: {direction}: [{{action: Allow, {proto}{side}: {calico_entity_yaml(peer, pol.namespace)}{ports}}}]")


def deny_fix(pol: PolicyIR, rule: Rule, tier: str) -> str:
    """Denied by a Deny rule: where an Allow rule would have to go, or what to narrow."""
    src = f" ({rule.provenance.source})" if rule.provenance.source else ""
    if pol.kind in ("anp", "cnp"):
        ahead = f"a rule before it in {pol.ref}, or an {pol.kind_name} with a priority below {pol.order:g}"
    elif pol.kind == "banp":
        ahead = f"a rule before it in {pol.ref}, or a NetworkPolicy or Pass/Allow in an earlier tier"
    else:
        order = "no order" if pol.order is None else f"order below {pol.order:g}"
        ahead = f"a rule before it in {pol.ref}, or a policy in tier {tier} with {order}"
    return (f"the Deny rule {rule.provenance.field_path} of {pol.ref}{src} matches this traffic: add an Allow rule "
            f"for it ahead of the Deny ({ahead}), or narrow the Deny rule")
