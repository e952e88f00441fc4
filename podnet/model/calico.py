"""projectcalico.org/v3 kinds: IPPool, BGPConfiguration, BGPPeer and Calico's Node."""

import ipaddress
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource
from .calico_selector import check_selector

CALICO_V3: Final = "projectcalico.org/v3"
EncapMode = Literal["Always", "CrossSubnet", "Never"]


class IPPoolSpec(Model):
    cidr: str
    block_size: int | None = None
    ipip_mode: EncapMode = Field(default="Never", alias="ipipMode")
    vxlan_mode: EncapMode = Field(default="Never", alias="vxlanMode")
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool | None = Field(default=None, alias="disableBGPExport")
    node_selector: str = "all()"
    allowed_uses: list[Literal["Workload", "Tunnel", "LoadBalancer"]] | None = None
    assignment_mode: Literal["Automatic", "Manual"] | None = None

    _check_cidr = v.field_check("cidr", v.check_cidr)
    _check_selector = v.field_check("node_selector", check_selector)

    @model_validator(mode="after")
    def _pool_rules(self) -> "IPPoolSpec":
        net = ipaddress.ip_network(self.cidr, strict=False)
        size = self.effective_block_size
        low = 20 if net.version == 4 else 116
        high = 32 if net.version == 4 else 128
        if not low <= size <= high:
            raise ValueError(f"blockSize: {size} must be between {low} and {high} for IPv{net.version}")
        if size < net.prefixlen:
            raise ValueError(f"blockSize: {size} is larger than the pool {self.cidr} itself")
        if self.ipip_mode != "Never" and net.version == 6:
            raise ValueError("ipipMode: IPIP is not supported on an IPv6 pool: use Never (or vxlanMode)")
        if self.ipip_mode != "Never" and self.vxlan_mode != "Never":
            raise ValueError("ipipMode and vxlanMode cannot both be enabled: pick one encapsulation")
        if "LoadBalancer" in (self.allowed_uses or ()):
            self._load_balancer_rules()
        return self

    def _load_balancer_rules(self) -> None:
        """Calico's rules for a LoadBalancer pool: it holds Service addresses only, is never
        encapsulated, is on every node and is exported over BGP."""
        others = sorted(set(self.allowed_uses or ()) - {"LoadBalancer"})
        if others:
            raise ValueError(f"allowedUses: LoadBalancer cannot be combined with {', '.join(others)}")
        if self.ipip_mode != "Never" or self.vxlan_mode != "Never":
            raise ValueError("allowedUses: a LoadBalancer pool must have ipipMode and vxlanMode Never")
        if self.node_selector.strip() != "all()":
            raise ValueError("nodeSelector: a LoadBalancer pool must use all()")
        if self.disable_bgp_export:
            raise ValueError("disableBGPExport: a LoadBalancer pool must be exported over BGP")

    def allows(self, use: str) -> bool:
        """Whether addresses of this pool may serve ``use`` (Workload, Tunnel, LoadBalancer);
        Calico's default is [Workload, Tunnel]."""
        return use in (self.allowed_uses or ("Workload", "Tunnel"))

    @property
    def effective_block_size(self) -> int:
        if self.block_size is not None:
            return self.block_size
        return 26 if ipaddress.ip_network(self.cidr, strict=False).version == 4 else 122

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)


class IPPool(Resource):
    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "IPPool"
    PLURAL: ClassVar[str] = "ippools"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ippool", "pool")
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["IPPool"] = "IPPool"
    spec: IPPoolSpec


class BGPConfigurationSpec(Model):
    as_number: int | None = None
    node_to_node_mesh_enabled: bool | None = None
    log_severity_screen: Literal["Debug", "Info", "Warning", "Error", "Fatal"] | None = None
    service_cluster_ips: list[dict[str, str]] | None = Field(default=None, alias="serviceClusterIPs")
    service_external_ips: list[dict[str, str]] | None = Field(default=None, alias="serviceExternalIPs")
    service_load_balancer_ips: list[dict[str, str]] | None = Field(default=None, alias="serviceLoadBalancerIPs")
    service_load_balancer_aggregation: Literal["Enabled", "Disabled"] | None = Field(
        default=None, alias="serviceLoadBalancerAggregation")
    listen_port: int | None = None
    node_mesh_password: dict[str, Any] | None = None
    communities: list[dict[str, Any]] | None = None
    prefix_advertisements: list[dict[str, Any]] | None = None

    _check_asn = v.field_check("as_number", v.check_as_number)

    @property
    def effective_as_number(self) -> int:
        return self.as_number if self.as_number is not None else 64512

    @property
    def mesh_enabled(self) -> bool:
        return self.node_to_node_mesh_enabled is not False


class BGPConfiguration(Resource):
    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "BGPConfiguration"
    PLURAL: ClassVar[str] = "bgpconfigurations"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("bgpconfig", "bgpconfiguration")
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["BGPConfiguration"] = "BGPConfiguration"
    spec: BGPConfigurationSpec = Field(default_factory=BGPConfigurationSpec)

    @model_validator(mode="after")
    def _global_only_fields(self) -> "BGPConfiguration":
        """As Calico: the mesh switch and the cluster AS number live only in ``default``."""
        if self.metadata.name and self.metadata.name != "default":
            for alias, value in (("nodeToNodeMeshEnabled", self.spec.node_to_node_mesh_enabled),
                                 ("asNumber", self.spec.as_number)):
                if value is not None:
                    raise ValueError(f"spec: {alias} may only be set in the BGPConfiguration named 'default' "
                                     f"(this one is {self.metadata.name!r})")
        return self


class BGPPeerSpec(Model):
    node: str | None = None
    node_selector: str | None = None
    peer_ip: str | None = Field(default=None, alias="peerIP")
    peer_selector: str | None = None
    as_number: int | None = None
    keep_original_next_hop: bool | None = None
    password: dict[str, Any] | None = None
    source_address: str | None = None
    max_restart_time: str | None = None

    _check_node_selector = v.field_check("node_selector", check_selector)
    _check_peer_selector = v.field_check("peer_selector", check_selector)
    _check_asn = v.field_check("as_number", v.check_as_number)

    @model_validator(mode="after")
    def _peer_rules(self) -> "BGPPeerSpec":
        if self.node and self.node_selector:
            raise ValueError("node and nodeSelector cannot both be set")
        if self.peer_ip and self.peer_selector:
            raise ValueError("peerIP and peerSelector cannot both be set")
        if not self.peer_ip and not self.peer_selector:
            raise ValueError("one of peerIP or peerSelector must be set")
        if self.peer_ip:
            try:
                v.check_ip(_peer_address(self.peer_ip))
            except ValueError as exc:
                raise ValueError(f"peerIP: {exc}") from None
            if self.as_number is None:
                raise ValueError("asNumber: required with peerIP")
        if self.peer_selector and self.as_number is not None:
            raise ValueError("asNumber: must be empty when peerSelector is set (the peers' own AS numbers are used)")
        return self


def _peer_address(text: str) -> str:
    """The address part of peerIP, which may carry a port: ``10.0.0.1:179``, ``[fd00::1]:179``."""
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:
        return text.rsplit(":", 1)[0]
    return text


class BGPPeer(Resource):
    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "BGPPeer"
    PLURAL: ClassVar[str] = "bgppeers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("bgppeer",)
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec


class CalicoNodeBGP(Model):
    ipv4_address: str | None = Field(default=None, alias="ipv4Address")
    ipv6_address: str | None = Field(default=None, alias="ipv6Address")
    as_number: int | None = None
    route_reflector_cluster_id: str | None = Field(default=None, alias="routeReflectorClusterID")
    ipv4_ipip_tunnel_addr: str | None = Field(default=None, alias="ipv4IPIPTunnelAddr")

    _check_asn = v.field_check("as_number", v.check_as_number)

    _check_ipv4 = v.field_check("ipv4_address", lambda text: _check_node_address(text, 4))
    _check_ipv6 = v.field_check("ipv6_address", lambda text: _check_node_address(text, 6))
    _check_cluster_id = v.field_check("route_reflector_cluster_id", v.check_ip)


def _check_node_address(text: str, version: int) -> None:
    """A node's BGP address: an address with its prefix (``192.168.0.2/24``) or a bare address."""
    if not text:
        return
    (v.check_cidr if "/" in text else v.check_ip)(text)
    if ipaddress.ip_interface(text).version != version:
        raise ValueError(f"{text!r} is not an IPv{version} address")


class CalicoNodeSpec(Model):
    bgp: CalicoNodeBGP | None = None
    ipv4_vxlan_tunnel_addr: str | None = Field(default=None, alias="ipv4VXLANTunnelAddr")
    vxlan_tunnel_mac_addr: str | None = Field(default=None, alias="vxlanTunnelMACAddr")
    addresses: list[dict[str, str]] | None = None
    orch_refs: list[dict[str, str]] | None = None


class CalicoNode(Resource):
    """Calico's view of a node (``calicoctl get node``); same name as the v1 Node."""

    API_VERSION: ClassVar[str] = CALICO_V3
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "caliconodes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("caliconode", "cnode")
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["projectcalico.org/v3"] = CALICO_V3
    kind: Literal["Node"] = "Node"
    spec: CalicoNodeSpec = Field(default_factory=CalicoNodeSpec)
    status: dict[str, Any] | None = None
