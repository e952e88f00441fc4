"""Tracked flows as values: what the policy loop reads from conntrack and decides about
(``recheck.judge_flows``), and the mark a denied one gets (``kernel/conntrack.py`` applies it,
the policy table's forward chain drops it)."""
from __future__ import annotations

from dataclasses import dataclass

#: the conntrack mark of a tracked flow the policy denies since it was established; the table
#: drops its packets in both directions (deleting the entry instead would let the responder's
#: next packet open it again, in reverse, through the responder's own egress policy)
FLOW_DENIED_MARK = 0x0D0E0A0D


@dataclass(frozen=True)
class TrackedFlow:
    """One conntrack entry as the forward hook saw its first packet: the source before any
    SNAT (the original source), the destination after any DNAT (the reply's source) and its
    port (None for ICMP), and whether it carries ``FLOW_DENIED_MARK``."""

    protocol: int
    src: str
    dst: str
    port: int | None
    denied: bool = False


@dataclass(frozen=True)
class FlowVerdicts:
    """What to do with the tracked flows of the pods a commit changed."""

    #: allowed when established, denied now: mark them (their packets are dropped both ways)
    deny: tuple[TrackedFlow, ...] = ()
    #: marked before, allowed again: clear the mark
    allow: tuple[TrackedFlow, ...] = ()
    #: to or from an address of this node's that no pod holds any more: delete
    gone: tuple[TrackedFlow, ...] = ()
