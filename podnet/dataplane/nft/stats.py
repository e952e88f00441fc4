"""What a node's ``inet podnet`` table says about itself, read from the kernel's listing (pure).

The kernel side (``kernel.nft.dump``) lists a table's chains, its rules with their counters
and verdicts, and the sizes of its sets as ``TableCounts``; ``policy_table_stats`` turns that
into what the policy loop's metrics report: how many rules and chains are programmed, how many
local endpoints it dispatches (its ``pod-ifaces`` set: one interface per pod), how many policies have chains (Felix's active local
policies), each counted rule's packets, and the packets each pod's default deny dropped,
attributed to the policies that isolate it (the rule's own comment names them). With tiers, a
tier's end drop is attributed to the tier's policies that selected the pod, and a Deny rule to
its policy (the ``tp-``/``tq-`` chain gives the direction).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from .counts import TableCounts
from .dispatch import POD_IFACES
from .render import describe_rule

#: policy chains (one per policy and direction that selects a local pod), by name prefix
POLICY_CHAIN_PREFIXES = {"pi-": "ingress", "po-": "egress"}
TIERED_POLICY_CHAIN_PREFIXES = {"tp-": "ingress", "tq-": "egress"}
_DEFAULT_DENY = re.compile(r"^default deny (ingress|egress) \(isolated by (.+)\)$")
_TIER_END = re.compile(r"^end of tier \S+ (ingress|egress): deny \(selected by (.+)\)$")
_DENY_RULE = re.compile(r"^Deny (\S+) ")


#: (chain, rule text, verdict) → (packets, bytes)
RuleKey = tuple[str, str, str]
#: (isolating policies, direction) → (packets, bytes)
DenyKey = tuple[str, str]
K = TypeVar("K", RuleKey, DenyKey)


@dataclass(frozen=True)
class PolicyTableStats:
    chains: int
    rules: int
    local_endpoints: int
    active_policies: int
    by_rule: Mapping[RuleKey, tuple[int, int]]
    denied: Mapping[DenyKey, tuple[int, int]]


def _add(into: dict[K, tuple[int, int]], key: K, packets: int, size: int) -> None:
    before = into.get(key, (0, 0))
    into[key] = (before[0] + packets, before[1] + size)


def denied_by(comment: str, chain: str = "") -> DenyKey | None:
    """(policies, direction) of a pod's default-deny rule, a tier's end drop or (in a tiered
    policy chain) a Deny rule; None for any other rule."""
    text = describe_rule(comment)
    m = _DEFAULT_DENY.match(text) or _TIER_END.match(text)
    if m is not None:
        return m[2], m[1]
    direction = TIERED_POLICY_CHAIN_PREFIXES.get(chain[:3])
    rule = _DENY_RULE.match(text) if direction else None
    return None if rule is None or direction is None else (rule[1], direction)


def policy_table_stats(counts: TableCounts) -> PolicyTableStats:
    """Rules of the same chain, text and verdict are summed (a rule split over address
    families, say), so every key is one series."""
    by_rule: dict[RuleKey, tuple[int, int]] = {}
    denied: dict[DenyKey, tuple[int, int]] = {}
    for r in counts.counted:
        _add(by_rule, (r.chain, describe_rule(r.comment), r.verdict), r.packets, r.bytes)
        deny = denied_by(r.comment, r.chain) if r.verdict == "drop" else None
        if deny is not None:
            _add(denied, deny, r.packets, r.bytes)
    policies = {name[len(p):] for name in counts.chains for p in POLICY_CHAIN_PREFIXES if name.startswith(p)}
    return PolicyTableStats(chains=len(counts.chains), rules=counts.rules,
                            local_endpoints=counts.map_sizes.get(POD_IFACES, 0), active_policies=len(policies),
                            by_rule=by_rule, denied=denied)
