"""The one decision path: an endpoint's policies, tier by tier, first match decides.

For one endpoint and one direction (see docs/policy.md for the sources)::

    for each tier that applies (some policy of it applies and governs the direction), in order:
        for each of those policies in order, each rule in order:
            Log matches are noted and the walk goes on; Allow and Deny decide;
            Pass leaves the tier for the next one that applies
        no rule passed: the tier's defaultAction — Deny decides, Pass goes on
    no tier decided (none applied, or all passed): the namespace profile allows

A Kubernetes NetworkPolicy is Allow rules in the default tier, so a pod it selects is denied
at the end of that tier unless some rule there allows, as NetworkPolicy says. ``walk`` takes the
rule test as a function, so ``evaluate`` can record why each rule matched or missed while it
takes exactly the decision ``allowed`` (the reference evaluator) takes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .cluster import ClusterState, Endpoint, always_allowed, rule_matches, sides
from .ir import Direction, PolicyIR, Rule
from .order import TierInfo

StepKind = Literal["rule", "end-of-tier", "profile"]
RuleTest = Callable[[PolicyIR, Rule], bool]


@dataclass(frozen=True)
class Step:
    """One stop of a walk: a rule that matched (its action), a tier's end (its defaultAction),
    or the profile at the end (Allow)."""

    kind: StepKind
    action: str
    tier: TierInfo | None = None
    policy: PolicyIR | None = None
    rule: Rule | None = None

    @property
    def final(self) -> bool:
        return self.action in ("Allow", "Deny")

    def describe(self) -> str:
        if self.kind == "profile":
            return "no tier denied: the namespace's profile allows"
        assert self.tier is not None
        if self.kind == "end-of-tier":
            verb = "denies" if self.action == "Deny" else "passes to the next tier"
            return f"end of tier {self.tier.name}: no rule matched, its defaultAction {verb}"
        assert self.policy is not None and self.rule is not None
        src = f" ({self.rule.provenance.source})" if self.rule.provenance.source else ""
        return f"tier {self.tier.name}: {self.rule.action} by {self.rule.provenance.describe()}{src}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"step": self.kind, "action": self.action}
        if self.tier is not None:
            out["tier"] = self.tier.name
        if self.policy is not None:
            out["policy"] = self.policy.ref
        if self.rule is not None:
            out["rule"] = self.rule.provenance.to_dict()
        return out


@dataclass(frozen=True)
class Walk:
    """Where one direction's decision was taken: the applying tiers and the steps."""

    allowed: bool
    tiers: tuple[tuple[TierInfo, tuple[PolicyIR, ...]], ...]
    steps: tuple[Step, ...]

    @property
    def decided_by(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    @property
    def isolated(self) -> bool:
        return bool(self.tiers)

    @property
    def deciding_tier(self) -> tuple[TierInfo, tuple[PolicyIR, ...]] | None:
        """The tier where a denial (or an allowing rule) was taken; None for the profile."""
        step = self.decided_by
        if step is None or step.tier is None:
            return None
        return next((t for t in self.tiers if t[0].name == step.tier.name), None)


def walk(state: ClusterState, subject: Endpoint, direction: Direction, matches: RuleTest) -> Walk:
    """The decision for ``subject`` in ``direction``, where ``matches(policy, rule)`` says
    whether a rule matches the traffic."""
    tiers = state.tiers_for(subject, direction)
    steps: list[Step] = []
    for tier, policies in tiers:
        passed = False
        for pol in policies:
            for rule in pol.rules(direction):
                if not matches(pol, rule):
                    continue
                steps.append(Step("rule", rule.action, tier, pol, rule))
                if rule.action in ("Allow", "Deny"):
                    return Walk(rule.action == "Allow", tiers, tuple(steps))
                if rule.action == "Pass":
                    passed = True
                    break
            if passed:
                break
        if passed:
            continue
        steps.append(Step("end-of-tier", tier.default_action, tier))
        if tier.default_action == "Deny":
            return Walk(False, tiers, tuple(steps))
    if tiers:
        steps.append(Step("profile", "Allow"))
    return Walk(True, tiers, tuple(steps))


def direction_walk(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str,
                   direction: Direction) -> Walk:
    subject, peer = sides(src, dst, direction)
    return walk(state, subject, direction,
                lambda pol, rule: rule_matches(rule, subject, peer, dst, port, protocol, state))


def direction_allowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str,
                      direction: Direction) -> bool:
    """The per-pair decision for one direction (the reference definition)."""
    return direction_walk(state, src, dst, port, protocol, direction).allowed


def allowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> bool:
    """The reference evaluator: one pair, one port, straight from the definitions."""
    if always_allowed(src, dst):
        return True
    return direction_allowed(state, src, dst, port, protocol, "egress") and direction_allowed(
        state, src, dst, port, protocol, "ingress")
