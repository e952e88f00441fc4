"""Flow-log identities: which policy rule decided a packet, written into the rule's NFLOG prefix.

The renderer puts a ``log group`` statement on every verdict rule of the policy table, its
prefix made here from the rule's own identity (``RuleId``), and the flow logger parses that
prefix back: attribution is never re-guessed from addresses. Denials come from the default-deny
rule of a signature chain (Kubernetes policies only allow; a pod is dropped because the
policies that isolate it allow nothing that matches), so their identity names the isolating
policies; allows name the policy, direction and rule index.

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
DEFAULT_DENY = -1  # the rule index of a signature chain's default-deny rule


@dataclass(frozen=True)
class RuleId:
    """The deciding rule: tier, policies (one for an allow; the isolating ones for a deny),
    direction, rule index within the policy's direction (``DEFAULT_DENY`` for a deny) and verdict."""

    tier: str
    policies: tuple[str, ...]
    direction: str
    index: int
    verdict: str
    cut: bool = False  # the prefix could not hold every name in full

    @property
    def policy(self) -> str:
        return self.policies[0] if self.policies else ""

    def describe(self) -> str:
        """What a flow line shows as the deciding rule."""
        more = "+" if self.cut else ""
        if self.index == DEFAULT_DENY:
            return f"default deny {self.direction} (isolated by {', '.join(self.policies)}{more})"
        return f"{self.policy}{more} {self.direction} rule {self.index}"

    def prefix(self) -> str:
        """``pn <verdict><dir> <tier> <index> <policy>[,<policy>…]``, cut to fit the kernel."""
        head = f"{_MAGIC} {_VERDICTS[self.verdict]}{_DIRS[self.direction]} {self.tier} {self.index} "
        names = ",".join(self.policies)
        if len(head) + len(names) <= PREFIX_MAX:
            return head + names
        mark = "~" + short_hash("flowlog", list(self.policies), size=8)
        return head + names[:PREFIX_MAX - len(head) - len(mark)] + mark

    @staticmethod
    def parse(prefix: str) -> RuleId | None:
        """A prefix written by ``prefix`` → its identity; None for anyone else's log prefix."""
        parts = prefix.split(" ", 4)
        if len(parts) != 5 or parts[0] != _MAGIC or len(parts[1]) != 2:
            return None
        verdict, direction = _VERDICT_NAMES.get(parts[1][0]), _DIR_NAMES.get(parts[1][1])
        if verdict is None or direction is None:
            return None
        try:
            index = int(parts[3])
        except ValueError:
            return None
        names, cut = parts[4], False
        if "~" in names:
            names, cut = names.rsplit("~", 1)[0], True
        return RuleId(parts[2], tuple(n for n in names.split(",") if n), direction, index, verdict, cut)


def log_stmt(rule: RuleId) -> dict[str, Any]:
    """``log prefix "…" group N`` in nft's JSON (the group of the rule's verdict)."""
    return {"log": {"prefix": rule.prefix(), "group": GROUPS[rule.verdict]}}


def limit_stmt(rate: int = DENY_RATE, burst: int = DENY_BURST) -> dict[str, Any]:
    return {"limit": {"rate": rate, "burst": burst, "per": "second"}}


def allow_rule_id(ref: str, direction: str, index: int, tier: str = "k8s") -> RuleId:
    return RuleId(tier, (ref,), direction, index, "ALLOWED")


def deny_rule_id(refs: tuple[str, ...], direction: str, tier: str = "k8s") -> RuleId:
    return RuleId(tier, refs, direction, DEFAULT_DENY, "DROPPED")


def without_flow_logs(table: NftTable) -> NftTable:
    """The same table with no flow-log statement: what a node with flow logs off programs."""
    chains = {}
    for name, chain in table.chains.items():
        rules = []
        for rule in chain.rules:
            expr = [e for e in rule.expr if "log" not in e]
            if not any(e for e in expr if "limit" not in e):
                continue  # the deny log rule: nothing left but its limit
            text = rule.comment.split(" ", 1)[1] if " " in rule.comment else rule.comment
            rules.append(rule if len(expr) == len(rule.expr) else NftRule.make(expr, text))
        chains[name] = replace(chain, rules=tuple(rules))
    return replace(table, chains=chains)
