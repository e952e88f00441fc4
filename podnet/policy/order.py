"""The order policies are evaluated in: tiers, then policies inside a tier. One definition,
read by the reference walk, ``evaluate``, the matrix, lint and diff (and the nft renderer's
signature chains, whose Kubernetes-only policies it orders the same way).

Calico's rules (felix ``TierLess`` and ``PolKVLess``; see docs/policy.md):

* tiers that exist come before tiers a policy names but nobody defined; then by ``order``
  ascending with no order after every ordered tier; then by name. The built-in tiers are
  ``kube-admin`` (1000, defaultAction Pass: AdminNetworkPolicy and ClusterNetworkPolicy Admin),
  ``default`` (1,000,000, Deny: Kubernetes NetworkPolicy and Calico policies without a tier)
  and ``kube-baseline`` (10,000,000, Pass: BaselineAdminNetworkPolicy, ClusterNetworkPolicy
  Baseline). ``adminnetworkpolicy``/``baselineadminnetworkpolicy``, their names before Calico
  3.32, are the same tiers.
* inside a tier: ``order`` ascending, no order last, then name, namespace and kind.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from podnet.model.calico_policy import BUILTIN_TIERS, Tier

from .ir import PolicyIR
from .tiers import DEFAULT_TIER

ADMIN_TIER = "kube-admin"
BASELINE_TIER = "kube-baseline"
TIER_ALIASES: Mapping[str, str] = {"adminnetworkpolicy": ADMIN_TIER, "baselineadminnetworkpolicy": BASELINE_TIER}
TierAction = Literal["Deny", "Pass"]


@dataclass(frozen=True, eq=False)
class TierInfo:
    """One tier as the walk needs it. ``defined`` is False for a tier a policy names that no
    Tier object defines (it sorts after the defined ones and denies at its end). A state has one
    value per tier, so identity is equality (and hashing, in the matrix's programs, is cheap)."""

    name: str
    order: float | None
    default_action: TierAction
    defined: bool = True
    source: str | None = None

    def describe(self) -> str:
        order = "no order" if self.order is None else f"order {self.order:g}"
        undefined = ", not defined by any Tier" if not self.defined else ""
        return f"tier {self.name} ({order}, defaultAction {self.default_action}{undefined})"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "order": self.order, "defaultAction": self.default_action, "defined": self.defined}


def canonical_tier(name: str) -> str:
    """A tier's one name (the pre-3.32 ANP/BANP tier names map to today's)."""
    return TIER_ALIASES.get(name, name)


def tier_key(tier: TierInfo) -> tuple[bool, bool, float, str]:
    return (not tier.defined, tier.order is None, tier.order if tier.order is not None else 0.0, tier.name)


def policy_key(pol: PolicyIR) -> tuple[bool, float, str, str, str]:
    return (pol.order is None, pol.order if pol.order is not None else 0.0, pol.name, pol.namespace, pol.kind)


def _action(text: str) -> TierAction:
    return "Pass" if text == "Pass" else "Deny"


def build_tiers(tiers: Iterable[Tier], policies: Iterable[PolicyIR],
                sources: Mapping[str, str] | None = None) -> tuple[TierInfo, ...]:
    """Every tier there is, in evaluation order: the built-in ones, the defined ones, and any a
    policy names without a definition."""
    found: dict[str, TierInfo] = {}
    for name, (order, action) in BUILTIN_TIERS.items():
        if canonical_tier(name) == name:
            found[name] = TierInfo(name, order, _action(action))
    for tier in tiers:
        name = canonical_tier(tier.metadata.name)
        if name in found and name in BUILTIN_TIERS:
            continue  # the built-in tiers' order and action are fixed (the model checks them)
        found[name] = TierInfo(name, tier.spec.order, _action(tier.spec.effective_default_action),
                               source=(sources or {}).get(tier.metadata.name))
    for pol in policies:
        if pol.tier not in found:
            found[pol.tier] = TierInfo(pol.tier, None, "Deny", defined=False)
    return tuple(sorted(found.values(), key=tier_key))


def evaluation_order(policies: Iterable[PolicyIR], tiers: Iterable[TierInfo]) -> list[PolicyIR]:
    """Policies in the order a walk meets them: by tier, then inside the tier."""
    rank = {t.name: i for i, t in enumerate(tiers)}
    return sorted(policies, key=lambda p: (rank.get(p.tier, len(rank)), policy_key(p)))


__all__ = ["ADMIN_TIER", "BASELINE_TIER", "DEFAULT_TIER", "TierInfo", "build_tiers", "canonical_tier",
           "evaluation_order", "policy_key", "tier_key"]
