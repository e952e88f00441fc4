"""Calico's BGP backend: who peers with whom (mesh, BGPPeer selectors, route reflectors), what
each node announces, and which remote blocks go through VXLAN instead (IPPool vxlanMode).

Peering is symmetric like Calico's: a BGPPeer whose nodeSelector picks node A and whose
peerSelector picks node B makes A peer with B *and* B peer with A."""
from __future__ import annotations

import ipaddress

from podnet.model.calico_selector import parse_selector

from .facts import ClusterFacts, NodeFacts, PeerFacts
from .nat import nat_plan, pool_problems
from .plan import BgpNeighbor, BgpPlan, PeerType, PlannedRoute, Refusal, RoutingPlan
from .vxlan import CALICO, vtep_for, vxlan_peer, vxlan_routes

_PREFIX = {"node-to-node mesh": "Mesh", "node specific": "Node", "global": "Global"}


def protocol_name(peer_type: PeerType, address: str) -> str:
    """BIRD protocol names as Calico spells them: Mesh_192_168_10_72."""
    return f"{_PREFIX[peer_type]}_{address.replace('.', '_').replace(':', '_')}"


def _selects(selector: str | None, node: NodeFacts) -> bool:
    return parse_selector(selector or "all()").matches(node.labels)


def _peer_applies_to(peer: PeerFacts, node: NodeFacts) -> bool:
    if peer.node:
        return peer.node == node.name
    return _selects(peer.node_selector, node)


def _neighbor(me: NodeFacts, address: str, as_number: int, peer_type: PeerType,
              other: NodeFacts | None) -> BgpNeighbor:
    rr_client = bool(me.rr_cluster_id) and (other is None or other.rr_cluster_id != me.rr_cluster_id)
    direct = other.shares_subnet(me) and me.shares_subnet(other) if other else \
        me.prefixlen < 32 and ipaddress.ip_address(address) in me.subnet
    # One side listens, the other connects, so the two never race (Calico does the same).
    passive = int(ipaddress.ip_address(address)) > int(ipaddress.ip_address(me.address))
    return BgpNeighbor(name=protocol_name(peer_type, address), address=address, as_number=as_number,
                       peer_type=peer_type, rr_client=rr_client, passive=passive, direct=direct,
                       node=other.name if other else None)


def neighbors(facts: ClusterFacts, me: NodeFacts) -> tuple[BgpNeighbor, ...]:
    """Every BGP session this node should have, deduplicated by peer address."""
    my_as = me.as_number or facts.as_number
    out: dict[str, BgpNeighbor] = {}
    for peer in facts.peers:
        if peer.peer_ip:
            if _peer_applies_to(peer, me):
                ptype: PeerType = "node specific" if (peer.node or peer.node_selector) else "global"
                addr = peer.peer_ip.split(":")[0] if peer.peer_ip.count(":") == 1 else peer.peer_ip
                if addr != me.address:
                    other = next((n for n in facts.nodes if n.address == addr), None)
                    out.setdefault(addr, _neighbor(me, addr, peer.as_number or my_as, ptype, other))
            continue
        targets: list[NodeFacts] = []
        if _peer_applies_to(peer, me):
            targets += [n for n in facts.nodes if _selects(peer.peer_selector, n)]
        if _selects(peer.peer_selector, me):
            targets += [n for n in facts.nodes if _peer_applies_to(peer, n)]
        for other in sorted(targets, key=lambda n: n.name):
            if other.name != me.name:
                out.setdefault(other.address, _neighbor(
                    me, other.address, other.as_number or facts.as_number, "node specific", other))
    if facts.mesh:
        for other in facts.nodes:
            if other.name != me.name:
                out.setdefault(other.address, _neighbor(
                    me, other.address, other.as_number or facts.as_number, "node-to-node mesh", other))
    return tuple(sorted(out.values(), key=lambda n: ipaddress.ip_address(n.address)))


def plan(facts: ClusterFacts, node: str) -> RoutingPlan:
    me = facts.node(node)
    if me is None:
        return RoutingPlan(node=node, backend="bgp",
                           problems=(f"node {node} has no underlay address in its Node resources",))
    routes: list[PlannedRoute] = []
    refusals: list[Refusal] = []
    vpeers = []
    encap_needed = any(p.vxlan_mode != "Never" for p in facts.pools)
    vtep = vtep_for(facts, me, CALICO) if encap_needed else None
    for peer in facts.nodes:
        if peer.name == me.name:
            continue
        encap_blocks = []
        for block in peer.blocks:
            pool = facts.pool_for(block)
            mode = pool.vxlan_mode if pool else "Never"
            if mode == "Always" or (mode == "CrossSubnet" and not me.shares_subnet(peer)):
                encap_blocks.append(block)
            elif not me.shares_subnet(peer):
                refusals.append(Refusal(
                    peer=peer.name, dst=block,
                    reason=(f"bgp: node {peer.name} ({peer.address}) is outside this node's subnet "
                            f"{me.subnet} and the pool's vxlanMode is Never; the router between them does "
                            f"not speak BGP (set vxlanMode: CrossSubnet on the IPPool)")))
        vp = vxlan_peer(peer) if encap_blocks and vtep else None
        if vp is not None and vtep is not None:
            vpeers.append(vp)
            routes.extend(vxlan_routes(peer, vp, vtep.name, tuple(encap_blocks)))
    bgp = BgpPlan(router_id=me.address, local_address=me.address, as_number=me.as_number or facts.as_number,
                  announce=me.blocks, neighbors=neighbors(facts, me), rr_cluster_id=me.rr_cluster_id,
                  no_kernel=tuple(sorted({r.dst for r in routes})),
                  services=facts.services.prefixes(me.name), service_blocks=facts.services.blocks)
    return RoutingPlan(node=node, backend="bgp", routes=tuple(sorted(routes)), refusals=tuple(sorted(refusals)),
                       vtep=vtep, vxlan_peers=tuple(sorted(vpeers)), bgp=bgp, nat=nat_plan(facts),
                       problems=pool_problems(facts))
