"""Desired kernel state for routing, as plain values, and the diff appliers use.

A node's routing is: routes podnet installs (tagged with podnet's route protocol), an
optional VXLAN device with its permanent neighbour and FDB entries, the natOutgoing table, and
a subnet.env text (``node_routing.desired_routing`` makes them from a plan). BGP-learned
routes are BIRD's to install, so they are not here."""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from .nft.model import NftTable

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
class DesiredRouting:
    routes: frozenset[RouteSpec]
    vxlan: VxlanSpec | None
    neighbours: frozenset[NeighSpec]
    fdb: frozenset[FdbSpec]
    #: the ``ip podnet-nat`` table (None: no pool has natOutgoing, no table)
    nat: NftTable | None
    subnet_env: str | None
    #: LoadBalancer addresses this node answers ARP for on the underlay (routing/l2.py)
    lb_addresses: frozenset[str] = frozenset()


def diff(desired: Iterable[T], observed: Iterable[T]) -> tuple[list[T], list[T]]:
    """(to add, to remove): the smallest change that makes observed equal desired."""
    want, have = set(desired), set(observed)
    return sorted(want - have), sorted(have - want)  # type: ignore[type-var]
