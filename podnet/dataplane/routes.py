"""Desired kernel state for routing, as plain values, and the diff appliers use.

A routing plan becomes: routes podnet installs (tagged with podnet's route protocol), an
optional VXLAN device with its permanent neighbour and FDB entries, a NAT spec, and a
subnet.env text. BGP-learned routes are BIRD's to install, so they are not here."""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from podnet.routing.plan import RoutingPlan

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True, order=True)
class RouteSpec:
    dst: str  # "10.244.1.0/24"
    gateway: str | None
    dev: str
    onlink: bool = False


@dataclass(frozen=True)
class VxlanSpec:
    name: str
    vni: int
    port: int
    local: str
    underlay_dev: str
    mtu: int
    mac: str
    address: str | None  # /32 on the device


@dataclass(frozen=True, order=True)
class NeighSpec:
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class FdbSpec:
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class NatSpec:
    masquerade: tuple[str, ...]
    all_pools: tuple[str, ...]


@dataclass(frozen=True)
class DesiredRouting:
    routes: frozenset[RouteSpec]
    vxlan: VxlanSpec | None
    neighbours: frozenset[NeighSpec]
    fdb: frozenset[FdbSpec]
    nat: NatSpec | None
    subnet_env: str | None


def desired_routing(plan: RoutingPlan, underlay_dev: str = "eth0") -> DesiredRouting:
    """Turn a routing plan into the kernel objects that realise it."""
    routes = frozenset(RouteSpec(r.dst, r.via, r.dev, r.onlink) for r in plan.routes)
    vx = None
    neighs: set[NeighSpec] = set()
    fdb: set[FdbSpec] = set()
    if plan.vtep is not None:
        v = plan.vtep
        vx = VxlanSpec(name=v.name, vni=v.vni, port=v.port, local=v.local, underlay_dev=underlay_dev,
                       mtu=v.mtu, mac=v.mac, address=v.address)
        for p in plan.vxlan_peers:
            neighs.add(NeighSpec(v.name, p.vtep_address, p.vtep_mac))
            fdb.add(FdbSpec(v.name, p.vtep_mac, p.underlay))
    nat = NatSpec(plan.nat.masquerade, plan.nat.all_pools) if plan.nat.masquerade else None
    env = None
    if plan.subnet_env is not None:
        env = "".join(f"{k}={v}\n" for k, v in plan.subnet_env)
    return DesiredRouting(routes=routes, vxlan=vx, neighbours=frozenset(neighs), fdb=frozenset(fdb),
                          nat=nat, subnet_env=env)


def diff(desired: Iterable[T], observed: Iterable[T]) -> tuple[list[T], list[T]]:
    """(to add, to remove): the smallest change that makes observed equal desired."""
    want, have = set(desired), set(observed)
    return sorted(want - have), sorted(have - want)  # type: ignore[type-var]
