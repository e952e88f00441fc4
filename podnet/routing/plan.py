"""What a routing backend decides for one node: plain frozen values, no kernel names beyond
the device names the designs fix (eth0 underlay, flannel.1 / vxlan.calico VTEPs)."""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

UNDERLAY_DEV = "eth0"

Encap = Literal["none", "vxlan"]
PeerType = Literal["node-to-node mesh", "node specific", "global"]


@dataclass(frozen=True, order=True)
class PlannedRoute:
    """A route to a remote node's pod block that podnet itself installs (not BIRD)."""

    dst: str
    via: str
    dev: str
    onlink: bool = False
    peer: str = ""


@dataclass(frozen=True, order=True)
class Refusal:
    """A remote block this node cannot reach with the chosen backend, and why (shown to users)."""

    peer: str
    dst: str
    reason: str


@dataclass(frozen=True)
class VtepPlan:
    name: str
    vni: int
    port: int
    local: str  # this node's underlay address
    mtu: int
    mac: str
    address: str | None  # the VTEP's own /32 (Flannel: the node subnet's .0)


@dataclass(frozen=True, order=True)
class VxlanPeer:
    node: str
    underlay: str
    vtep_mac: str
    vtep_address: str


@dataclass(frozen=True, order=True)
class BgpNeighbor:
    name: str  # BIRD protocol name: Mesh_/Node_/Global_ + address, as Calico names them
    address: str
    as_number: int
    peer_type: PeerType
    rr_client: bool = False
    passive: bool = False
    direct: bool = True  # same L2 segment: next hops resolve directly
    node: str | None = None


@dataclass(frozen=True)
class BgpPlan:
    router_id: str
    local_address: str
    as_number: int
    announce: tuple[str, ...]  # own blocks: blackholed locally, advertised to peers
    neighbors: tuple[BgpNeighbor, ...]
    rr_cluster_id: str | None = None
    no_kernel: tuple[str, ...] = ()  # learned prefixes BIRD must not install (podnet routes them)
    services: tuple[str, ...] = ()  # Service prefixes this node announces (routing/services.py)
    service_blocks: tuple[str, ...] = ()  # every configured Service block: never in the kernel


@dataclass(frozen=True)
class NatPlan:
    """natOutgoing: masquerade from ``masquerade`` pools to anything outside ``all_pools``."""

    masquerade: tuple[str, ...] = ()
    all_pools: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingPlan:
    node: str
    backend: str
    routes: tuple[PlannedRoute, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    vtep: VtepPlan | None = None
    vxlan_peers: tuple[VxlanPeer, ...] = ()
    bgp: BgpPlan | None = None
    nat: NatPlan = field(default_factory=NatPlan)
    subnet_env: tuple[tuple[str, str], ...] | None = None
    problems: tuple[str, ...] = ()
    l2_addresses: tuple[str, ...] = ()  # LoadBalancer addresses this node answers ARP for


def default_vtep_mac(node: str) -> str:
    """A stable, locally administered unicast MAC for a node's VTEP.

    Stable across agent restarts, so peers' neighbour and FDB entries stay valid."""
    digest = hashlib.sha256(f"podnet-vtep/{node}".encode()).digest()
    octets = [0x0E, *digest[:5]]  # 0x0E: locally administered, unicast
    return ":".join(f"{b:02x}" for b in octets)


def default_vtep_address(blocks: tuple[str, ...]) -> str | None:
    """Flannel gives the VTEP the node subnet's network address (10.244.5.0)."""
    if not blocks:
        return None
    return str(ipaddress.ip_network(blocks[0], strict=False).network_address)
