"""The routing planners' input: what every node and pool looks like, as plain frozen values.

Built once from resource values (Node, CalicoNode, IPPool, BGPConfiguration, BGPPeer) plus the
block-affinity map IPAM keeps, so each planner stays a pure function of one value.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from podnet.ipnet import IPNetwork, subnet_of
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node

from .services import ServiceAdvertisement

DEFAULT_AS = 64512
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
DEFAULT_UNDERLAY_MTU = 1500


@dataclass(frozen=True)
class NodeFacts:
    """One node as routing sees it."""

    name: str
    address: str  # underlay IPv4 address
    prefixlen: int  # underlay subnet length (32 when unknown: then no subnet is shared)
    blocks: tuple[str, ...] = ()  # pod CIDR blocks affine to this node
    labels: Mapping[str, str] = field(default_factory=dict)
    vtep_mac: str | None = None
    vtep_address: str | None = None
    as_number: int | None = None
    rr_cluster_id: str | None = None
    ready: bool = True  # the v1 Node's Ready condition is not False/Unknown
    exclude_lb: bool = False  # labelled node.kubernetes.io/exclude-from-external-load-balancers

    @property
    def subnet(self) -> IPNetwork:
        return ipaddress.ip_network(f"{self.address}/{self.prefixlen}", strict=False)

    def shares_subnet(self, other: NodeFacts) -> bool:
        """True when ``other`` is on this node's L2 segment (same underlay subnet)."""
        if self.prefixlen >= 32:
            return False
        return ipaddress.ip_address(other.address) in self.subnet


@dataclass(frozen=True)
class PoolFacts:
    name: str
    cidr: str
    vxlan_mode: str = "Never"
    ipip_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False

    def contains(self, cidr: str) -> bool:
        return subnet_of(ipaddress.ip_network(cidr, strict=False), ipaddress.ip_network(self.cidr, strict=False))


@dataclass(frozen=True)
class PeerFacts:
    """A BGPPeer resource, reduced to what peering decisions need."""

    name: str
    node: str | None = None
    node_selector: str | None = None
    peer_ip: str | None = None
    peer_selector: str | None = None
    as_number: int | None = None


@dataclass(frozen=True)
class ClusterFacts:
    nodes: tuple[NodeFacts, ...]
    pools: tuple[PoolFacts, ...] = ()
    as_number: int = DEFAULT_AS
    mesh: bool = True
    peers: tuple[PeerFacts, ...] = ()
    underlay_mtu: int = DEFAULT_UNDERLAY_MTU
    ipip_supported: bool = False
    services: ServiceAdvertisement = field(default_factory=ServiceAdvertisement)

    def node(self, name: str) -> NodeFacts | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def pool_for(self, cidr: str) -> PoolFacts | None:
        for p in self.pools:
            if p.contains(cidr):
                return p
        return None

    @property
    def cluster_cidr(self) -> str | None:
        """The first enabled pool: Flannel's FLANNEL_NETWORK."""
        for p in self.pools:
            if not p.disabled:
                return p.cidr
        return None


def _split_address(text: str) -> tuple[str, int]:
    if "/" in text:
        iface = ipaddress.ip_interface(text)
        return str(iface.ip), iface.network.prefixlen
    return str(ipaddress.ip_address(text)), 32


def node_facts(node: Node | None, calico: CalicoNode | None, blocks: Sequence[str] = ()) -> NodeFacts | None:
    """Merge the v1 Node and Calico's Node of one name. None when no underlay address is known.

    Labels come from both (``kubectl label node`` sets the v1 ones, which Calico mirrors)."""
    named = node or calico
    name = named.name if named else ""
    address: str | None = None
    prefixlen = 32
    bgp = calico.spec.bgp if calico else None
    if bgp and bgp.ipv4_address:
        address, prefixlen = _split_address(bgp.ipv4_address)
    elif node is not None and node.internal_ip:
        address, prefixlen = _split_address(node.internal_ip)
    if address is None:
        return None
    labels: dict[str, str] = {}
    if calico is not None:
        labels.update(calico.labels)
    if node is not None:
        labels.update(node.labels)
    if not blocks and node is not None:
        blocks = tuple(node.spec.pod_cidrs or ([node.spec.pod_cidr] if node.spec.pod_cidr else []))
    return NodeFacts(
        name=name, address=address, prefixlen=prefixlen, blocks=tuple(sorted(blocks, key=_net_key)),
        labels=labels, ready=_ready(node), exclude_lb=EXCLUDE_LB_LABEL in labels,
        vtep_mac=calico.spec.vxlan_tunnel_mac_addr if calico else None,
        vtep_address=calico.spec.ipv4_vxlan_tunnel_addr if calico else None,
        as_number=bgp.as_number if bgp else None,
        rr_cluster_id=bgp.route_reflector_cluster_id if bgp else None,
    )


def _ready(node: Node | None) -> bool:
    """Ready unless the node's Ready condition says False or Unknown (a node that never
    reported a condition counts as ready: the lab registers nodes before their agents start)."""
    if node is None:
        return True
    for entry in node.status.conditions or ():
        if entry.get("type") == "Ready":
            return entry.get("status") == "True"
    return True


def _net_key(cidr: str) -> tuple[int, int]:
    net = ipaddress.ip_network(cidr, strict=False)
    return int(net.network_address), net.prefixlen


def cluster_facts(
    nodes: Iterable[Node] = (),
    calico_nodes: Iterable[CalicoNode] = (),
    pools: Iterable[IPPool] = (),
    bgp_configs: Iterable[BGPConfiguration] = (),
    bgp_peers: Iterable[BGPPeer] = (),
    blocks_by_node: Mapping[str, Sequence[str]] | None = None,
    underlay_mtu: int = DEFAULT_UNDERLAY_MTU,
    ipip_supported: bool = False,
    services: ServiceAdvertisement | None = None,
) -> ClusterFacts:
    """Everything the planners need, from resource values. Order of the inputs does not matter."""
    v1 = {n.name: n for n in nodes}
    cal = {n.name: n for n in calico_nodes}
    blocks_by_node = blocks_by_node or {}
    facts = []
    for name in sorted(set(v1) | set(cal)):
        f = node_facts(v1.get(name), cal.get(name), blocks_by_node.get(name, ()))
        if f is not None:
            facts.append(f)
    as_number, mesh = DEFAULT_AS, True
    for cfg in bgp_configs:
        if cfg.name == "default":
            as_number, mesh = cfg.spec.effective_as_number, cfg.spec.mesh_enabled
    pool_facts = tuple(
        PoolFacts(name=p.name, cidr=str(p.spec.network), vxlan_mode=p.spec.vxlan_mode,
                  ipip_mode=p.spec.ipip_mode, nat_outgoing=p.spec.nat_outgoing, disabled=p.spec.disabled)
        for p in sorted(pools, key=lambda p: p.name))
    peer_facts = tuple(
        PeerFacts(name=p.name, node=p.spec.node, node_selector=p.spec.node_selector,
                  peer_ip=p.spec.peer_ip, peer_selector=p.spec.peer_selector, as_number=p.spec.as_number)
        for p in sorted(bgp_peers, key=lambda p: p.name))
    return ClusterFacts(nodes=tuple(facts), pools=pool_facts, as_number=as_number, mesh=mesh,
                        peers=peer_facts, underlay_mtu=underlay_mtu, ipip_supported=ipip_supported,
                        services=services or ServiceAdvertisement())
