"""evaluate(src, dst, port, protocol) → Verdict: the decision and why, down to tier, rule, peer and port.

Each direction is the walk (``walk.walk``) with a rule test that records why every rule it
visits matched or missed. The verdict keeps the walk's path (tier → policy → rule → action):
which tiers applied, which passed and where the decision was taken. A denial at the end of a
tier lists that tier's rules as misses, nearest first (fewest failing parts), with the minimal
fix in that tier; a denial by a Deny rule names the rule and where an Allow would have to go.
The decision itself is the one ``walk.allowed`` (the reference evaluator) takes; tests hold them
equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .checks import PartCheck, RuleCheck, check_rule
from .cluster import ICMP, ClusterState, Endpoint, always_allowed, rule_matches, sides
from .fixes import deny_fix, new_rule_fix, rule_fix
from .ir import Direction, PolicyIR, Rule
from .order import TierInfo
from .tiers import DEFAULT_TIER
from .walk import Step, Walk, walk

__all__ = ["DirectionVerdict", "PartCheck", "RuleCheck", "TierReport", "Verdict", "evaluate"]


@dataclass(frozen=True)
class TierReport:
    """What one tier did for one direction: decided, passed, or did not apply."""

    tier: TierInfo
    outcome: str  # "did not apply" | "passed" | "allowed" | "denied"
    policies: tuple[str, ...] = ()
    step: Step | None = None

    def describe(self) -> str:
        name = f"tier {self.tier.name}"
        step = self.step
        if step is None:
            return f"{name}: {self.outcome}" + (" (no policy of it applies)" if self.outcome == "did not apply" else "")
        if step.kind == "end-of-tier":
            return f"{name}: {self.outcome} at its end (no rule matched; defaultAction {step.action})"
        assert step.rule is not None
        src = f" ({step.rule.provenance.source})" if step.rule.provenance.source else ""
        return f"{name}: {self.outcome} by {step.rule.provenance.describe()}{src}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"tier": self.tier.name, "outcome": self.outcome, "policies": list(self.policies)}
        if self.step is not None:
            out["step"] = self.step.to_dict()
        return out


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
    #: the walk: every rule that matched (Log, Pass, then the deciding one) and tier ends
    path: tuple[Step, ...] = ()
    #: every tier of the cluster and what it did (only when the cluster has tiered policy)
    tiers: tuple[TierReport, ...] = ()
    denied_by: RuleCheck | None = None
    #: the policies that took the decision: the deciding rule's, or those of the tier whose end denied
    decided_by: tuple[str, ...] = ()

    @property
    def decided_in(self) -> str | None:
        """The tier where the decision was taken (None: no tier applied, or the profile)."""
        step = self.path[-1] if self.path else None
        return step.tier.name if step is not None and step.tier is not None else None

    def to_dict(self) -> dict[str, object]:
        return {
            "isolated": self.isolated,
            "policies": list(self.policies),
            "allowed": self.allowed,
            "note": self.note,
            "decidedIn": self.decided_in,
            "path": [s.to_dict() for s in self.path],
            "tiers": [t.to_dict() for t in self.tiers],
            "allowedBy": [r.to_dict() for r in self.allowed_by],
            "deniedBy": self.denied_by.to_dict() if self.denied_by else None,
            "decidedBy": list(self.decided_by),
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


class _Checks:
    """The rule test the walk runs, remembering why each rule matched or missed."""

    def __init__(self, state: ClusterState, subject: Endpoint, peer: Endpoint, dst: Endpoint, port: int | None,
                 protocol: str) -> None:
        self.state, self.subject, self.peer, self.dst = state, subject, peer, dst
        self.port, self.protocol = port, protocol
        self.done: dict[tuple[int, int], RuleCheck] = {}

    def __call__(self, pol: PolicyIR, rule: Rule) -> bool:
        return rule_matches(rule, self.subject, self.peer, self.dst, self.port, self.protocol, self.state)

    def check(self, pol: PolicyIR, rule: Rule) -> RuleCheck:
        key = (id(pol), rule.index)
        hit = self.done.get(key)
        if hit is None:
            bare = check_rule(self.state, rule, self.subject, self.peer, self.dst, self.port, self.protocol)
            fix = rule_fix(self.state, pol, bare, self.peer, self.port, self.protocol) if rule.action == "Allow" else None
            hit = self.done[key] = RuleCheck(bare.rule, bare.policy_source, bare.peers_ok, bare.ports_ok, bare.peers,
                                             bare.ports, bare.peer_summary, bare.port_summary, fix, bare.extras)
        return hit


def _direction(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str,
               direction: Direction) -> DirectionVerdict:
    subject, peer = sides(src, dst, direction)
    kind = "Ingress" if direction == "ingress" else "Egress"
    if not subject.is_pod:
        return DirectionVerdict(direction, False, (), True, f"{subject.describe()}: no {direction} policy applies")
    if subject.host_network:
        return DirectionVerdict(direction, False, (), True,
                                f"{subject.describe()}: hostNetwork pods are never selected by NetworkPolicy")
    checks = _Checks(state, subject, peer, dst, port, protocol)
    w = walk(state, subject, direction, checks)
    reports = _tier_reports(state, w)
    if not w.isolated:
        what = f"any policy with {kind} in policyTypes" if not state.tiered else f"any policy governing {direction}"
        return DirectionVerdict(direction, False, (), True,
                                f"{subject.key} is not selected by {what}: {direction} is not isolated", tiers=reports)
    names = tuple(p.ref for _, pols in w.tiers for p in pols)
    step = w.decided_by
    assert step is not None
    head = f"{subject.key} is isolated for {direction} by {', '.join(names)}"
    passed = _passed_text(w)
    if step.kind == "profile":
        note = f"{head}; {passed}, so the namespace's profile allows"
        return DirectionVerdict(direction, True, names, True, note, path=w.steps, tiers=reports)
    assert step.tier is not None
    in_tier = _in_tier(state, step.tier)
    if step.kind == "rule" and step.action == "Allow":
        assert step.policy is not None and step.rule is not None
        allowing = checks.check(step.policy, step.rule)
        note = f"{head}; {passed + '; ' if passed else ''}allowed{in_tier} by {step.rule.provenance.describe()}"
        return DirectionVerdict(direction, True, names, True, note, allowed_by=(allowing,), path=w.steps, tiers=reports,
                                decided_by=(step.policy.ref,))
    if step.kind == "rule":
        assert step.policy is not None and step.rule is not None
        denying = checks.check(step.policy, step.rule)
        note = f"{head}; {passed + '; ' if passed else ''}denied{in_tier} by {step.rule.provenance.describe()} (Deny)"
        return DirectionVerdict(direction, True, names, False, note, fix=deny_fix(step.policy, step.rule, step.tier.name),
                                path=w.steps, tiers=reports, denied_by=denying, decided_by=(step.policy.ref,))
    # the end of a tier whose defaultAction is Deny: its policies' Allow rules are the misses
    tier_policies = next(pols for tier, pols in w.tiers if tier.name == step.tier.name)
    rules = [(pol, rule) for pol in tier_policies for rule in pol.rules(direction) if rule.action in ("Allow", "Pass")]
    misses = tuple(sorted((checks.check(pol, rule) for pol, rule in rules), key=lambda c: (c.distance, c.rule.provenance)))
    tier_names = ", ".join(p.ref for p in tier_policies)
    if not any(pol.rules(direction) for pol in tier_policies):
        note = (f"{head}, which {'has' if len(tier_policies) == 1 else 'have'} no {direction} rules: "
                f"all {direction} is denied")
    else:
        note = f"{head} and no {direction} rule allows this traffic"
    if passed or not _only_default(state, step.tier):
        note += f" ({passed + '; ' if passed else ''}the end of tier {step.tier.name} denies; its policies: {tier_names})"
    fix = misses[0].fix if misses and misses[0].distance == 1 and misses[0].fix else new_rule_fix(
        tier_policies, step.tier.name, direction, src, dst, port, protocol)
    return DirectionVerdict(direction, True, names, False, note, misses=misses, fix=fix, path=w.steps, tiers=reports,
                            decided_by=tuple(p.ref for p in tier_policies))


def _only_default(state: ClusterState, tier: TierInfo) -> bool:
    """A cluster with Kubernetes NetworkPolicy alone: no need to talk about tiers."""
    return tier.name == DEFAULT_TIER and not state.tiered


def _in_tier(state: ClusterState, tier: TierInfo) -> str:
    return "" if _only_default(state, tier) else f" in tier {tier.name}"


def _passed_text(w: Walk) -> str:
    """Which earlier tiers passed the traffic on, and how."""
    out = []
    for step in w.steps:
        if step.action != "Pass" or step.tier is None:
            continue
        if step.kind == "rule" and step.rule is not None:
            out.append(f"tier {step.tier.name} passed it ({step.rule.provenance.describe()})")
        else:
            out.append(f"tier {step.tier.name} passed it (no rule matched; defaultAction Pass)")
    return "; ".join(out)


def _tier_reports(state: ClusterState, w: Walk) -> tuple[TierReport, ...]:
    if not state.tiered:
        return ()
    applied = {tier.name: pols for tier, pols in w.tiers}
    by_tier: dict[str, Step] = {}
    for step in w.steps:
        if step.tier is not None and step.action != "Log":
            by_tier[step.tier.name] = step
    out = []
    for tier in state.tiers:
        pols = applied.get(tier.name)
        if pols is None:
            out.append(TierReport(tier, "did not apply"))
            continue
        decided = by_tier.get(tier.name)
        outcome = "not reached" if decided is None else {"Allow": "allowed", "Deny": "denied", "Pass": "passed"}[decided.action]
        out.append(TierReport(tier, outcome, tuple(p.ref for p in pols), decided))
    return tuple(out)
