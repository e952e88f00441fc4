"""Flow-log identities: which policy rule decided a packet, written into the rule's NFLOG prefix.

The renderer puts a ``log group`` statement on every verdict rule of the policy table, its
prefix made here from the rule's own identity (``RuleId``), and the flow logger parses that
prefix back: attribution is never re-guessed from addresses. An identity names the tier, the
policy (its ref carries kind and namespace: ``ns/name``, ``gnp:name``, ``calico:ns/name``,
``anp:name``, ``banp:default``), the direction, the rule index and the action that decided:

* ``Allow`` / ``Deny``: rule ``index`` of the policy (a Kubernetes policy only allows);
* ``EndOfTier``: nothing in the tier matched and the tier's end dropped (for the default tier
  this is Kubernetes' default deny: a pod is dropped because the policies that isolate it
  allow nothing that matches), so the identity names the tier's policies that selected the pod;
* ``Pass``: rule ``index`` passed and no tier was left, so the profile allowed;
* ``Default``: the last tier's end passed (defaultAction Pass, as the admin and baseline
  tiers), so the profile allowed; the identity names that tier's policies.

A prefix holds at most ``PREFIX_MAX`` bytes (the kernel's ``NF_LOG_PREFIXLEN``): policy names
that do not fit are cut and marked with ``~`` plus a hash, and the reader shows them as cut.

Denials are logged by a rule of their own *before* the counting drop rule, rate-limited in the
kernel (``DENY_RATE`` per second per rule, ``DENY_BURST`` burst): a flood cannot drown the
node, and the drop rule's counter still counts every packet. Allowed traffic reaches a policy
rule only for a new connection (established and related packets are accepted earlier), so
logging on the allowing rule records each new connection once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from podnet.policy.tiers import DEFAULT_TIER

from .model import NftRule, NftTable, short_hash

#: the NFLOG groups the policy table logs to: drops are read one by one as they come (low
#: latency, and the kernel's limit keeps them few); allowed new connections in batches (one
#: wake-up for many connections keeps the cost of logging every one small)
GROUP_DROPPED = 17
GROUP_ALLOWED = 18
GROUPS = {"DROPPED": GROUP_DROPPED, "ALLOWED": GROUP_ALLOWED}
PREFIX_MAX = 127
DENY_RATE = 5
DENY_BURST = 5
_MAGIC = "pn"
_DIRS = {"ingress": "i", "egress": "o"}
_DIR_NAMES = {v: k for k, v in _DIRS.items()}
_VERDICTS = {"ALLOWED": "A", "DROPPED": "D"}
_VERDICT_NAMES = {v: k for k, v in _VERDICTS.items()}
DEFAULT_DENY = -1  # the rule index of a signature chain's default deny and of a tier's end
#: the actions a record names, as one letter in the prefix (only when (verdict, index) do not imply it)
ACTIONS = {"Allow": "a", "Deny": "d", "Pass": "p", "EndOfTier": "e", "Default": "f"}
_ACTION_NAMES = {v: k for k, v in ACTIONS.items()}


def implied_action(verdict: str, index: int) -> str:
    """The action a prefix without an action letter means (every Kubernetes-policy prefix)."""
    if verdict == "ALLOWED":
        return "Allow" if index >= 0 else "Default"
    return "Deny" if index >= 0 else "EndOfTier"


@dataclass(frozen=True)
class RuleId:
    """The deciding rule: tier, policies (one for a rule; for a tier's end, the tier's policies
    that selected the pod), direction, rule index within the policy's direction
    (``DEFAULT_DENY`` for a tier's end), verdict and action (see the module docstring)."""

    tier: str
    policies: tuple[str, ...]
    direction: str
    index: int
    verdict: str
    cut: bool = False  # the prefix could not hold every name in full
    action: str = ""  # "": implied by verdict and index (``implied_action``)

    def __post_init__(self) -> None:
        if not self.action:
            object.__setattr__(self, "action", implied_action(self.verdict, self.index))

    @property
    def policy(self) -> str:
        return self.policies[0] if self.policies else ""

    def describe(self) -> str:
        """What a flow line shows as the deciding rule."""
        more = "+" if self.cut else ""
        names = ", ".join(self.policies) + more
        if self.action == "EndOfTier":
            if self.tier == DEFAULT_TIER:
                return f"default deny {self.direction} (isolated by {names})"
            return f"end of tier {self.tier} {self.direction}: deny (selected by {names})"
        if self.action == "Default":
            return f"end of tier {self.tier} {self.direction}: pass, no tier left (selected by {names})"
        rule = f"{self.policy}{more} {self.direction} rule {self.index}"
        if self.action == "Deny":
            return rule + " (Deny)"
        if self.action == "Pass":
            return rule + " (Pass, no tier left)"
        return rule

    def prefix(self) -> str:
        """``pn <verdict><dir>[<action>] <tier> <index> <policy>[,<policy>…]``, cut to fit the
        kernel; the action letter only when verdict and index do not imply the action."""
        letter = "" if self.action == implied_action(self.verdict, self.index) else ACTIONS[self.action]
        head = f"{_MAGIC} {_VERDICTS[self.verdict]}{_DIRS[self.direction]}{letter} {self.tier} {self.index} "
        names = ",".join(self.policies)
        if len(head) + len(names) <= PREFIX_MAX:
            return head + names
        mark = "~" + short_hash("flowlog", list(self.policies), size=8)
        return head + names[:PREFIX_MAX - len(head) - len(mark)] + mark

    @staticmethod
    def parse(prefix: str) -> RuleId | None:
        """A prefix written by ``prefix`` → its identity; None for anyone else's log prefix."""
        parts = prefix.split(" ", 4)
        if len(parts) != 5 or parts[0] != _MAGIC or len(parts[1]) not in (2, 3):
            return None
        verdict, direction = _VERDICT_NAMES.get(parts[1][0]), _DIR_NAMES.get(parts[1][1])
        action = _ACTION_NAMES.get(parts[1][2], None) if len(parts[1]) == 3 else ""
        if verdict is None or direction is None or action is None:
            return None
        try:
            index = int(parts[3])
        except ValueError:
            return None
        names, cut = parts[4], False
        if "~" in names:
            names, cut = names.rsplit("~", 1)[0], True
        return RuleId(parts[2], tuple(n for n in names.split(",") if n), direction, index, verdict, cut, action)


def log_stmt(rule: RuleId) -> dict[str, Any]:
    """``log prefix "…" group N`` in nft's JSON (the group of the rule's verdict)."""
    return {"log": {"prefix": rule.prefix(), "group": GROUPS[rule.verdict]}}


def limit_stmt(rate: int = DENY_RATE, burst: int = DENY_BURST) -> dict[str, Any]:
    return {"limit": {"rate": rate, "burst": burst, "per": "second"}}


def allow_rule_id(ref: str, direction: str, index: int, tier: str = DEFAULT_TIER) -> RuleId:
    return RuleId(tier, (ref,), direction, index, "ALLOWED")


def deny_rule_id(refs: tuple[str, ...], direction: str, tier: str = DEFAULT_TIER) -> RuleId:
    """The end of ``tier`` dropping (Kubernetes policies: the default deny of the pods ``refs`` isolate)."""
    return RuleId(tier, refs, direction, DEFAULT_DENY, "DROPPED")


def denying_rule_id(ref: str, direction: str, index: int, tier: str) -> RuleId:
    """A Deny rule of a tiered policy."""
    return RuleId(tier, (ref,), direction, index, "DROPPED")


def passed_rule_id(ref: str, direction: str, index: int, tier: str) -> RuleId:
    """A Pass rule with no tier after it: the profile allowed."""
    return RuleId(tier, (ref,), direction, index, "ALLOWED", action="Pass")


def default_allow_id(refs: tuple[str, ...], direction: str, tier: str) -> RuleId:
    """The last tier's end passing (nothing decided): the profile allowed."""
    return RuleId(tier, refs, direction, DEFAULT_DENY, "ALLOWED")


def is_flow_log(expr: dict[str, Any]) -> bool:
    """A flow-log ``log`` statement (a Calico Log rule's kernel log has no group)."""
    log = expr.get("log")
    return isinstance(log, dict) and log.get("group") in GROUPS.values()


def without_flow_logs(table: NftTable) -> NftTable:
    """The same table with no flow-log statement: what a node with flow logs off programs."""
    chains = {}
    for name, chain in table.chains.items():
        rules = []
        for rule in chain.rules:
            expr = [e for e in rule.expr if not is_flow_log(e)]
            if len(expr) < len(rule.expr) and any("limit" in e for e in expr):
                continue  # a deny's log rule: its matches and limit only decide whether to log
            text = rule.comment.split(" ", 1)[1] if " " in rule.comment else rule.comment
            rules.append(rule if len(expr) == len(rule.expr) else NftRule.make(expr, text))
        chains[name] = replace(chain, rules=tuple(rules))
    return replace(table, chains=chains)
