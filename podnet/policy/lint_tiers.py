"""Lint for the tiered kinds (Calico policies, AdminNetworkPolicy, ClusterNetworkPolicy): order
and action mistakes the walk makes easy.

* ``deny-shadowed``: a Deny rule an earlier Allow rule always beats (earlier in the policy, or in
  a policy the walk meets first that applies to every pod this one applies to);
* ``pass-reaches-profile``: a Pass with no later tier that applies to the pods, so the namespace
  profile allows what it passes;
* ``order-collision``: two policies of one tier with the same order that apply to the same pods:
  the name decides which runs first (for AdminNetworkPolicy priorities, upstream leaves it open);
* ``selects-no-pod`` / ``peer-selects-nothing``: a policy that applies to no pod, a rule end whose
  selectors match no pod and no network set, a nodes peer that matches no node;
* ``undefined-tier`` and ``host-endpoint-only`` (doNotTrack/preDNAT policies never apply to pods).
"""
from __future__ import annotations

from collections.abc import Callable

from .cluster import ClusterState, Endpoint
from .cover import rule_covered
from .ir import DIRECTIONS, Direction, EntityPeer, NodePeer, PodPeer, PolicyIR, Rule

Path = tuple[str | int, ...]
#: warn(policy, field path, code, message, hint=None): records one finding
Warn = Callable[..., None]


def tiered_checks(state: ClusterState, warn: Warn) -> None:
    tiered = state.tiered
    if not tiered:
        return
    applied = {p.ref: frozenset(ep.key for ep in state.pods if state.applies(p, ep)) for p in state.ordered}
    rank = {p.ref: i for i, p in enumerate(state.ordered)}
    for pol in tiered:
        _subject(state, pol, applied[pol.ref], warn)
        for direction in DIRECTIONS:
            if direction not in pol.isolates:
                continue
            for rule in pol.rules(direction):
                _peers(state, pol, rule, warn)
                if rule.action == "Deny":
                    _shadowed(state, pol, rule, applied, rank, warn)
                elif rule.action == "Pass":
                    _pass_to_profile(state, pol, rule, applied[pol.ref], warn)
    _collisions(state, tiered, applied, warn)


def _subject(state: ClusterState, pol: PolicyIR, applied: frozenset[str], warn: Warn) -> None:
    tier = next((t for t in state.tiers if t.name == pol.tier), None)
    if tier is not None and not tier.defined:
        warn(pol, ("spec", "tier"), "undefined-tier",
             f"tier {pol.tier} is not defined: it runs after every defined tier and denies at its end",
             f"create it (kind: Tier, metadata.name: {pol.tier}, spec.order: …) or use an existing tier")
    if pol.subject is not None and getattr(pol.subject, "host_only", False):
        warn(pol, ("spec", "doNotTrack"), "host-endpoint-only",
             "doNotTrack and preDNAT policies apply to host endpoints only, so to no pod",
             "remove doNotTrack/preDNAT to police pods")
        return
    if state.pods and not applied:
        field = "subject" if pol.kind in ("anp", "banp", "cnp") else "selector"
        warn(pol, ("spec", field), "selects-no-pod", f"{pol.describe_subject()} selects no pod",
             "check the labels (podnet get pods --show-labels -A) and, for a namespaced policy, its namespace")


def _peers(state: ClusterState, pol: PolicyIR, rule: Rule, warn: Warn) -> None:
    if not state.pods:
        return
    for peer in (*(rule.peers or ()), *((rule.local,) if rule.local is not None else ())):
        path = peer.provenance.path or ()
        if isinstance(peer, EntityPeer) and (peer.selector is not None or peer.namespace_selector is not None):
            pods = [ep for ep in state.pods if state.entity_pod_positive(peer, ep)]
            if not pods and not state.matching_sets(peer):
                warn(pol, path, "peer-selects-nothing",
                     f"{peer.describe()} matches no pod and no network set, so this rule matches nothing",
                     "check the selector's labels, or the namespace it is limited to (add namespaceSelector to widen it)")
        elif isinstance(peer, PodPeer) and not pol.is_k8s:
            if not any(ep.selectable and peer.namespace_in_scope(ep.namespace or "", state.ns_labels(ep.namespace))
                       and peer.pod_selector.matches(ep.labels) for ep in state.pods):
                warn(pol, path, "peer-selects-nothing", f"{peer.describe()} matches no pod",
                     "check the namespace and pod labels")
        elif isinstance(peer, NodePeer) and not state.node_addresses(peer.node_selector):
            warn(pol, path, "peer-selects-nothing", f"{peer.describe()} matches no node address",
                 "check the node labels (podnet get nodes --show-labels)")


def _shadowed(state: ClusterState, pol: PolicyIR, rule: Rule, applied: dict[str, frozenset[str]],
              rank: dict[str, int], warn: Warn) -> None:
    direction: Direction = rule.direction
    for earlier in pol.rules(direction)[:rule.index]:
        if earlier.action == "Allow" and rule_covered(rule, earlier):
            warn(pol, rule.provenance.path or (), "deny-shadowed",
                 f"this Deny never decides: {earlier.provenance.describe()} allows everything it matches first",
                 "move the Deny rule above the Allow, or narrow the Allow")
            return
    mine = applied[pol.ref]
    if not mine:
        return
    for other in state.ordered[:rank[pol.ref]]:
        if direction not in other.isolates or not mine <= applied[other.ref]:
            continue
        for earlier in other.rules(direction):
            if earlier.action == "Allow" and rule_covered(rule, earlier):
                warn(pol, rule.provenance.path or (), "deny-shadowed",
                     f"this Deny never decides: {earlier.provenance.describe()} ({other.describe()}) applies to every "
                     f"pod this policy does and allows everything this rule matches first",
                     f"order this policy before {other.ref} (a lower order, or an earlier tier), or narrow that Allow")
                return
            if earlier.action in ("Deny", "Pass") and rule_covered(rule, earlier):
                break  # that rule takes this traffic first; the Allows after it do not shadow


def _pass_to_profile(state: ClusterState, pol: PolicyIR, rule: Rule, applied: frozenset[str], warn: Warn) -> None:
    if not applied:
        return
    later = False
    for key in applied:
        ep: Endpoint = state.by_key[key]
        tiers = [t.name for t, _ in state.tiers_for(ep, rule.direction)]
        if tiers.index(pol.tier) < len(tiers) - 1:
            later = True
            break
    if not later:
        warn(pol, rule.provenance.path or (), "pass-reaches-profile",
             f"no later tier applies to the {len(applied)} pod(s) this policy selects for {rule.direction}, so what this "
             f"Pass matches is allowed by the namespace profile",
             "write Allow if that is meant, or add a policy in a later tier (a NetworkPolicy, a baseline policy)")


def _collisions(state: ClusterState, tiered: tuple[PolicyIR, ...], applied: dict[str, frozenset[str]], warn: Warn) -> None:
    by_slot: dict[tuple[str, float], list[PolicyIR]] = {}
    for pol in state.ordered:
        if pol.order is not None:
            by_slot.setdefault((pol.tier, pol.order), []).append(pol)
    for (tier, order), pols in by_slot.items():
        for i, a in enumerate(pols):
            for b in pols[i + 1:]:
                if a.is_k8s and b.is_k8s or not (a.isolates & b.isolates):
                    continue
                admin = a.kind in ("anp", "cnp") and b.kind in ("anp", "cnp")
                decisive = any(r.action != "Allow" for p in (a, b) for d in DIRECTIONS for r in p.rules(d))
                if not (admin or decisive):
                    continue  # Allow rules only: their order does not change any decision
                common = applied[a.ref] & applied[b.ref]
                if state.pods and not common:
                    continue
                example = f" (e.g. {sorted(common)[0]})" if common else ""
                what = "priority" if admin else "order"
                warn(b, ("spec", "priority" if b.kind in ("anp", "cnp") else "order"), "order-collision",
                     f"{a.ref} has the same {what} {order:g} in tier {tier} and applies to the same pods{example}: "
                     f"{'the order between them is implementation-defined' if admin else 'the name decides'}; "
                     f"{a.ref} runs first here",
                     f"give one of them a distinct {what}")
