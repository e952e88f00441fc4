"""Flannel's VXLAN backend: a VTEP per node; per remote node a permanent neighbour, an FDB entry
and an onlink route per block via the remote VTEP address."""
from __future__ import annotations

import ipaddress
from typing import TypedDict

from .facts import ClusterFacts, NodeFacts
from .nat import nat_plan
from .plan import PlannedRoute, Refusal, RoutingPlan, VtepPlan, VxlanPeer, default_vtep_address, default_vtep_mac

VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


class VtepStyle(TypedDict):
    """Whose VXLAN device this is: its name, VNI and UDP port."""

    name: str
    vni: int
    port: int


FLANNEL: VtepStyle = {"name": "flannel.1", "vni": 1, "port": 8472}
CALICO: VtepStyle = {"name": "vxlan.calico", "vni": 4096, "port": 4789}


def vtep_for(facts: ClusterFacts, me: NodeFacts, style: VtepStyle) -> VtepPlan:
    return VtepPlan(
        name=style["name"], vni=style["vni"], port=style["port"], local=me.address,
        mtu=facts.underlay_mtu - VXLAN_OVERHEAD,
        mac=me.vtep_mac or default_vtep_mac(me.name),
        address=me.vtep_address or default_vtep_address(me.blocks))


def vxlan_peer(peer: NodeFacts) -> VxlanPeer | None:
    address = peer.vtep_address or default_vtep_address(peer.blocks)
    if address is None:
        return None
    return VxlanPeer(node=peer.name, underlay=peer.address,
                     vtep_mac=peer.vtep_mac or default_vtep_mac(peer.name), vtep_address=address)


def vxlan_routes(peer: NodeFacts, vpeer: VxlanPeer, dev: str,
                 blocks: tuple[str, ...] | None = None) -> list[PlannedRoute]:
    return [PlannedRoute(dst=b, via=vpeer.vtep_address, dev=dev, onlink=True, peer=peer.name)
            for b in (peer.blocks if blocks is None else blocks)]


def subnet_env(facts: ClusterFacts, me: NodeFacts, mtu: int) -> tuple[tuple[str, str], ...]:
    """The facts Flannel writes to /run/flannel/subnet.env."""
    subnet = ""
    if me.blocks:
        net = ipaddress.ip_network(me.blocks[0], strict=False)
        subnet = f"{net.network_address + 1}/{net.prefixlen}"
    masq = any(p.nat_outgoing and not p.disabled for p in facts.pools)
    return (("FLANNEL_NETWORK", facts.cluster_cidr or ""), ("FLANNEL_SUBNET", subnet),
            ("FLANNEL_MTU", str(mtu)), ("FLANNEL_IPMASQ", "true" if masq else "false"))


def plan(facts: ClusterFacts, node: str) -> RoutingPlan:
    me = facts.node(node)
    if me is None:
        return RoutingPlan(node=node, backend="vxlan",
                           problems=(f"node {node} has no underlay address in its Node resources",))
    vtep = vtep_for(facts, me, FLANNEL)
    routes: list[PlannedRoute] = []
    peers: list[VxlanPeer] = []
    refusals: list[Refusal] = []
    for peer in facts.nodes:
        if peer.name == me.name or not peer.blocks:
            continue
        vp = vxlan_peer(peer)
        if vp is None:
            continue
        peers.append(vp)
        routes.extend(vxlan_routes(peer, vp, vtep.name))
    return RoutingPlan(node=node, backend="vxlan", routes=tuple(sorted(routes)),
                       refusals=tuple(refusals), vtep=vtep, vxlan_peers=tuple(sorted(peers)),
                       nat=nat_plan(facts), subnet_env=subnet_env(facts, me, vtep.mtu))
