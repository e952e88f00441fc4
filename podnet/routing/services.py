"""Which Service addresses each node announces over BGP, as Calico does
(``confd/pkg/backends/calico/routes.go``): the default BGPConfiguration lists the blocks
(``serviceClusterIPs``, ``serviceExternalIPs``, ``serviceLoadBalancerIPs``); every node announces
the blocks, and a Service with ``externalTrafficPolicy: Local`` is announced as a /32 only by
the nodes holding a ready endpoint of it, so a router's ECMP sends its traffic nowhere else.
Addresses outside the configured blocks are never announced; headless and ExternalName
Services have none to announce.

Pure: values in, prefixes out. The node never routes these prefixes itself (the service proxy
answers them); the BIRD configuration keeps them out of the kernel."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from podnet.model import BGPConfiguration, EndpointSlice, Service

AddressKind = Literal["cluster", "external", "loadbalancer"]


@dataclass(frozen=True)
class ServiceAddresses:
    """One Service as the BGP announcement sees it."""

    key: str  # namespace/name
    addresses: tuple[tuple[str, AddressKind], ...]
    local: bool  # externalTrafficPolicy: Local
    ready_nodes: frozenset[str] = frozenset()  # nodes with a ready, not terminating endpoint


@dataclass(frozen=True)
class ServiceAdvertisement:
    """The configured blocks and the Services whose addresses fall in them."""

    cluster_cidrs: tuple[str, ...] = ()
    external_cidrs: tuple[str, ...] = ()
    lb_cidrs: tuple[str, ...] = ()
    lb_aggregation: bool = True
    services: tuple[ServiceAddresses, ...] = field(default_factory=tuple)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Every configured block: what a node must never route through its own kernel."""
        return tuple(dict.fromkeys([*self.cluster_cidrs, *self.external_cidrs, *self.lb_cidrs]))

    def _cidrs(self, kind: AddressKind) -> tuple[str, ...]:
        return {"cluster": self.cluster_cidrs, "external": self.external_cidrs, "loadbalancer": self.lb_cidrs}[kind]

    def prefixes(self, node: str) -> tuple[str, ...]:
        """What ``node`` announces: the blocks (the LoadBalancer ones whole only with
        aggregation), and /32s for Local Services it holds a ready endpoint of, for
        LoadBalancer addresses without aggregation, and for /32 blocks' own addresses."""
        out = [*self.cluster_cidrs, *self.external_cidrs]
        if self.lb_aggregation:
            out += self.lb_cidrs
        for svc in self.services:
            for ip, kind in svc.addresses:
                if not _inside(ip, self._cidrs(kind)):
                    continue
                if svc.local:
                    if node in svc.ready_nodes:
                        out.append(f"{ip}/32")
                elif kind == "loadbalancer" and not self.lb_aggregation:
                    out.append(f"{ip}/32")
        return tuple(sorted(set(out), key=_net_key))


def _inside(ip: str, cidrs: Iterable[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _net_key(cidr: str) -> tuple[int, int]:
    net = ipaddress.ip_network(cidr, strict=False)
    return int(net.network_address), net.prefixlen


def _cidrs(entries: list[dict[str, str]] | None) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(e["cidr"], strict=False)) for e in entries or () if e.get("cidr"))


def service_addresses(service: Service, slices: Iterable[EndpointSlice]) -> ServiceAddresses | None:
    """The addresses a Service could announce, or None (headless, ExternalName, no ClusterIP)."""
    spec = service.spec
    if spec.type == "ExternalName" or spec.headless or not spec.cluster_ip:
        return None
    addresses: list[tuple[str, AddressKind]] = [(ip, "cluster") for ip in (spec.cluster_ips or [spec.cluster_ip])]
    addresses += [(ip, "external") for ip in spec.external_ips or ()]
    addresses += [(ip, "loadbalancer") for ip in service.ingress_addresses if _is_ip(ip)]
    ready = frozenset(ep.node_name for sl in slices for ep in sl.endpoints
                      if ep.node_name and ep.conditions.ready is not False and not ep.conditions.terminating)
    return ServiceAddresses(key=f"{service.namespace or 'default'}/{service.name}", addresses=tuple(addresses),
                            local=spec.external_traffic_policy == "Local", ready_nodes=ready)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def service_advertisement(configs: Iterable[BGPConfiguration], services: Iterable[Service],
                          slices_by_service: Mapping[str, list[EndpointSlice]]) -> ServiceAdvertisement:
    """The announcement the default BGPConfiguration asks for (no blocks without one), with
    every Service's addresses."""
    default = next((c for c in configs if c.name == "default"), None)
    adv = ServiceAdvertisement()
    if default is not None:
        spec = default.spec
        adv = ServiceAdvertisement(cluster_cidrs=_cidrs(spec.service_cluster_ips),
                                   external_cidrs=_cidrs(spec.service_external_ips),
                                   lb_cidrs=_cidrs(spec.service_load_balancer_ips),
                                   lb_aggregation=spec.service_load_balancer_aggregation != "Disabled")
    found = []  # also without blocks: the L2 announcement (routing/l2.py) reads them
    for svc in services:
        addrs = service_addresses(svc, slices_by_service.get(f"{svc.namespace or 'default'}/{svc.name}", ()))
        if addrs is not None:
            found.append(addrs)
    return ServiceAdvertisement(adv.cluster_cidrs, adv.external_cidrs, adv.lb_cidrs, adv.lb_aggregation,
                                tuple(sorted(found, key=lambda s: s.key)))
