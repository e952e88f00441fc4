"""A table's listing as far as its counters go (values only): what ``kernel.nft.dump`` reads
and ``stats`` interprets."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RuleCount:
    """One rule with a counter, as the kernel holds it. ``verdict`` is the rule's final verdict
    statement (accept, drop, jump, goto, return, continue), or "" when it has none (a vmap)."""

    chain: str
    comment: str
    verdict: str
    packets: int
    bytes: int


@dataclass(frozen=True)
class TableCounts:
    """A listing of one table: its chains, every rule (``rules``), the counted ones
    (``counted``), and how many elements each map holds."""

    chains: Sequence[str]
    rules: int
    counted: Sequence[RuleCount]
    map_sizes: Mapping[str, int] = field(default_factory=dict)
