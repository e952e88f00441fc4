"""What the report shows beyond the policy engine: nodes with their routes, and denied flows.

The shell gathers these (from the live store, or not at all for ``--from-files``); the report only
formats them. ``flows`` is ``None`` when no flow source exists, which the page says plainly.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeRow:
    """A node, its addresses and pod CIDRs, and the routes to the other nodes' pod CIDRs."""

    name: str
    addresses: tuple[str, ...]
    pod_cidrs: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeniedFlow:
    """One aggregated denied flow, as a flow log source records it."""

    time: str
    source: str
    destination: str
    port: str
    verdict: str
    policy: str
    rule: str = ""
    packets: int = 0


@dataclass(frozen=True)
class ReportFacts:
    """Facts only a live cluster has; ``live`` False means the input was manifests."""

    live: bool = False
    source: str = ""
    nodes: tuple[NodeRow, ...] = ()
    #: ``None``: no flow source exists; ``()``: one exists and recorded no denied flow
    flows: tuple[DeniedFlow, ...] | None = None
    notes: tuple[str, ...] = field(default=())


def routes_between(nodes: list[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> tuple[NodeRow, ...]:
    """Per node, a route to each other node's pod CIDRs via that node's first address (host-gw
    style: what the routing planner programs when nodes share a segment)."""
    out = []
    for name, addresses, cidrs in nodes:
        routes = tuple(f"{cidr} via {other_addrs[0]} ({other})"
                       for other, other_addrs, other_cidrs in nodes
                       if other != name and other_addrs for cidr in other_cidrs)
        out.append(NodeRow(name, addresses, cidrs, routes))
    return tuple(out)
