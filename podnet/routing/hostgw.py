"""host-gw: a route per remote block via the remote node's underlay address.

Works only when the next hop is on this node's L2 segment; otherwise the route is refused and
the refusal says why (the design's known limitation, made visible)."""
from __future__ import annotations

from .facts import ClusterFacts
from .nat import nat_plan
from .plan import UNDERLAY_DEV, PlannedRoute, Refusal, RoutingPlan


def plan(facts: ClusterFacts, node: str) -> RoutingPlan:
    me = facts.node(node)
    if me is None:
        return RoutingPlan(node=node, backend="host-gw",
                           problems=(f"node {node} has no underlay address in its Node resources",))
    routes: list[PlannedRoute] = []
    refusals: list[Refusal] = []
    for peer in facts.nodes:
        if peer.name == me.name:
            continue
        for block in peer.blocks:
            if me.shares_subnet(peer):
                routes.append(PlannedRoute(dst=block, via=peer.address, dev=UNDERLAY_DEV, peer=peer.name))
            else:
                refusals.append(Refusal(
                    peer=peer.name, dst=block,
                    reason=(f"host-gw: node {peer.name} ({peer.address}) is not on this node's L2 segment "
                            f"{me.subnet}, so it cannot be a next hop; host-gw needs all nodes on one L2 "
                            f"segment (use --backend vxlan, or bgp with vxlanMode CrossSubnet)")))
    return RoutingPlan(node=node, backend="host-gw", routes=tuple(sorted(routes)),
                       refusals=tuple(sorted(refusals)), nat=nat_plan(facts))
