"""Who holds which Service address and node port: a pure working copy of the store's keys.

kube-apiserver keeps one allocation bitmap per range; podnet keeps one store key per taken
value (``/podnet/services/clusterips/<ip>``, ``…/nodeports/<port>``,
``…/loadbalancerips/<ip>``, each naming its Service), so two writers that pick the same value
collide on that key's compare and the loser re-plans, while writers picking different values
never conflict. The planner mutates an ``Allocations`` loaded from those keys and hands back
the difference as puts and deletes.

Picking follows the API server: ClusterIPs at random, from the upper (dynamic) part of the range
first so that the lower (static) band stays free for addresses people choose themselves (the
first address is the ``kubernetes`` Service, the tenth the cluster DNS); node ports the same
way over 30000-32767; LoadBalancer addresses lowest free first, as MetalLB assigns them.
"""
from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.model.calico import IPPool
from podnet.model.core import NODE_PORT_RANGE

PREFIX = "/podnet/services/"
CONFIG_KEY = PREFIX + "config"
CLUSTER_IPS = PREFIX + "clusterips/"
NODE_PORTS = PREFIX + "nodeports/"
LB_IPS = PREFIX + "loadbalancerips/"
POOLS = "/registry/ippools/"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
#: offsets in the service CIDR that are never picked at random: the ``kubernetes`` Service and DNS
KUBERNETES_OFFSET = 1
DNS_OFFSET = 10
RANDOM_TRIES = 32


class Refused(Exception):
    """The API server would answer 422: ``path`` names the field, ``message`` says why."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def service_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The service CIDR as a network; refuses one too small to hold the reserved addresses."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses < 16:
        raise ValueError(f"service CIDR {cidr} is too small: it needs at least 16 addresses (a /28)")
    return net


def static_band(size: int, step: int, most: int) -> int:
    """How many low offsets are kept for requested values (the API server's rangeOffset)."""
    least = 16
    if size < least:
        return 0
    return max(least, min(size // step, most))


@dataclass(frozen=True)
class LoadBalancerPool:
    """An IPPool with ``allowedUses: [LoadBalancer]``."""

    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    automatic: bool = True
    disabled: bool = False

    def addresses(self) -> Iterator[str]:
        """Usable addresses, lowest first (a /31 or /32 uses all; larger ones skip network and broadcast)."""
        hosts = self.network.hosts() if self.network.num_addresses > 2 else iter(self.network)
        return (str(a) for a in hosts)


def load_balancer_pools(pools: Iterable[IPPool]) -> tuple[LoadBalancerPool, ...]:
    return tuple(sorted(
        (LoadBalancerPool(p.name, p.spec.network, p.spec.assignment_mode != "Manual", p.spec.disabled)
         for p in pools if "LoadBalancer" in (p.spec.allowed_uses or ())), key=lambda p: p.name))


@dataclass
class Allocations:
    """The taken values and their owners (``namespace/name``), as one admission plans."""

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    cluster_ips: dict[str, str] = field(default_factory=dict)
    node_ports: dict[int, str] = field(default_factory=dict)
    lb_ips: dict[str, str] = field(default_factory=dict)
    pools: tuple[LoadBalancerPool, ...] = ()

    @classmethod
    def from_values(cls, values: Mapping[str, dict[str, Any]]) -> Allocations:
        """From the store's values under ``PREFIX`` and ``POOLS`` (key → value)."""
        config = values.get(CONFIG_KEY) or {}
        pools: list[IPPool] = []
        out = cls(service_network(str(config.get("serviceCIDR") or DEFAULT_SERVICE_CIDR)))
        for key, value in values.items():
            if key.startswith(CLUSTER_IPS):
                out.cluster_ips[key[len(CLUSTER_IPS):]] = str(value["service"])
            elif key.startswith(NODE_PORTS):
                out.node_ports[int(key[len(NODE_PORTS):])] = str(value["service"])
            elif key.startswith(LB_IPS):
                out.lb_ips[key[len(LB_IPS):]] = str(value["service"])
            elif key.startswith(POOLS):
                pools.append(IPPool.model_validate(value))
        out.pools = load_balancer_pools(pools)
        return out

    def copy(self) -> Allocations:
        return Allocations(self.cidr, dict(self.cluster_ips), dict(self.node_ports), dict(self.lb_ips), self.pools)

    def writes(self, before: Allocations) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """What changed since ``before``: (puts key → value, deleted keys)."""
        puts: dict[str, dict[str, Any]] = {}
        deletes: list[str] = []
        for prefix, now, then in self._tables(before):
            puts.update((f"{prefix}{value}", {"service": owner}) for value, owner in now.items()
                        if then.get(value) != owner)
            deletes += [f"{prefix}{value}" for value in then if value not in now]
        return puts, deletes

    def _tables(self, other: Allocations) -> list[tuple[str, dict[Any, str], dict[Any, str]]]:
        return [(CLUSTER_IPS, self.cluster_ips, other.cluster_ips), (NODE_PORTS, self.node_ports, other.node_ports),
                (LB_IPS, self.lb_ips, other.lb_ips)]

    # -- cluster IPs ---------------------------------------------------------------------------
    def _offset_range(self) -> tuple[int, int]:
        """First and last offset an address may have (network and broadcast excluded for IPv4)."""
        size = self.cidr.num_addresses
        return (1, size - 2) if self.cidr.version == 4 else (1, size - 1)

    def check_cluster_ip(self, ip: str, owner: str) -> None:
        """A requested ClusterIP: inside the range and not someone else's."""
        first, last = self._offset_range()
        addr = ipaddress.ip_address(ip)
        offset = int(addr) - int(self.cidr.network_address)
        if addr.version != self.cidr.version or not first <= offset <= last:
            raise Refused(("spec", "clusterIP"), f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                                                 f"valid range. The range of valid IPs is {self.cidr}")
        holder = self.cluster_ips.get(ip)
        if holder is not None and holder != owner:
            raise Refused(("spec", "clusterIP"), f"failed to allocate IP {ip}: provided IP is already allocated")

    def take_cluster_ip(self, owner: str, requested: str | None, rng: random.Random) -> str:
        if requested:
            self.check_cluster_ip(requested, owner)
            ip = requested
        else:
            ip = self._free_cluster_ip(rng)
        self.cluster_ips[ip] = owner
        return ip

    def _free_cluster_ip(self, rng: random.Random) -> str:
        first, last = self._offset_range()
        band = static_band(self.cidr.num_addresses, 16, 256)
        reserved = {KUBERNETES_OFFSET, DNS_OFFSET}
        base = int(self.cidr.network_address)

        def free(offset: int) -> bool:
            return offset not in reserved and str(ipaddress.ip_address(base + offset)) not in self.cluster_ips

        offset = _pick(rng, max(first, band), last, free) or _pick(rng, first, min(band, last + 1) - 1, free)
        if offset is None:
            raise Refused(("spec", "clusterIP"), f"failed to allocate a service IP: range {self.cidr} is full")
        return str(ipaddress.ip_address(base + offset))

    # -- node ports ----------------------------------------------------------------------------
    def take_node_port(self, owner: str, requested: int | None, path: tuple[str | int, ...],
                       rng: random.Random) -> int:
        low, high = NODE_PORT_RANGE
        if requested:
            holder = self.node_ports.get(requested)
            if holder is not None and holder != owner:
                raise Refused(path, f"{requested}: provided port is already allocated")
            port = requested
        else:
            band = static_band(high - low + 1, 32, 128)

            def free(offset: int) -> bool:
                return low + offset not in self.node_ports

            offset = _pick(rng, band, high - low, free)
            if offset is None:
                offset = _pick(rng, 0, band - 1, free)
            if offset is None:
                raise Refused(path, f"failed to allocate a node port: range {low}-{high} is full")
            port = low + offset
        self.node_ports[port] = owner
        return port

    # -- load-balancer addresses ---------------------------------------------------------------
    def take_lb_ip(self, owner: str, requested: str | None) -> str | None:
        """An address from the LoadBalancer pools: the requested one, the one the Service holds,
        or the lowest free in an automatic pool; None when every pool is full (Service pending)."""
        if requested:
            pool = next((p for p in self.pools if ipaddress.ip_address(requested) in p.network), None)
            if pool is None:
                raise Refused(("spec", "loadBalancerIP"),
                              f"{requested} is in no IPPool with allowedUses [LoadBalancer]"
                              + (f" (pools: {', '.join(f'{p.name} {p.network}' for p in self.pools)})"
                                 if self.pools else ""))
            holder = self.lb_ips.get(requested)
            if holder is not None and holder != owner:
                raise Refused(("spec", "loadBalancerIP"), f"{requested}: provided IP is already allocated")
            self.lb_ips[requested] = owner
            return requested
        held = [ip for ip, holder in self.lb_ips.items() if holder == owner]
        if held:
            return held[0]
        for pool in self.pools:
            if pool.disabled or not pool.automatic:
                continue
            for ip in pool.addresses():
                if ip not in self.lb_ips:
                    self.lb_ips[ip] = owner
                    return ip
        return None

    # -- release -------------------------------------------------------------------------------
    def keep_only(self, owner: str, cluster_ips: Iterable[str] = (), node_ports: Iterable[int] = (),
                  lb_ips: Iterable[str] = ()) -> None:
        """Release what ``owner`` holds beyond the given values (everything, by default)."""
        held: list[tuple[dict[Any, str], set[Any]]] = [
            (self.cluster_ips, set(cluster_ips)), (self.node_ports, set(node_ports)), (self.lb_ips, set(lb_ips))]
        for table, wanted in held:
            for value in [v for v, holder in table.items() if holder == owner and v not in wanted]:
                del table[value]


def _pick(rng: random.Random, low: int, high: int, free: Any) -> int | None:
    """A free offset in [low, high]: a few random tries, then a scan from a random start."""
    if high < low:
        return None
    for _ in range(RANDOM_TRIES):
        offset = rng.randint(low, high)
        if free(offset):
            return offset
    start = rng.randint(low, high)
    span = high - low + 1
    for step in range(span):
        offset = low + (start - low + step) % span
        if free(offset):
            return offset
    return None


def pending_load_balancers(services: Iterable[Any], pools: Iterable[IPPool],
                           raw: Mapping[str, dict[str, Any]]) -> list[Any]:
    """LoadBalancer Services of the default class still without an address, as many as the
    automatic pools have free addresses for (each write assigns one, so none is retried in vain)."""
    pending = [s for s in services if s.spec.type == "LoadBalancer" and s.spec.load_balancer_class is None
               and not s.ingress_addresses]
    if not pending:
        return []
    taken = {key[len(LB_IPS):] for key in raw if key.startswith(LB_IPS)}
    free = 0
    for pool in load_balancer_pools(pools):
        if pool.automatic and not pool.disabled:
            for ip in pool.addresses():
                if ip not in taken:
                    free += 1
                    if free >= len(pending):
                        return pending
    return pending[:free]
