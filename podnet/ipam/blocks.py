"""Calico-style IPAM values and the pure arithmetic on them.

A pool is cut into fixed-size blocks (blockSize 26 → 64 addresses). A block is affine to one
node, which routes the whole block, so most pods need no per-pod route between nodes. Inside a
block, each address ("ordinal") is free or held by one handle (a network + container id +
interface), so DEL frees exactly what ADD took. Everything here is pure: the allocator in
``allocator.py`` wraps these in store transactions.
"""
from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.ipnet import IPNetwork, subnet_of

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

PREFIX = "/podnet/ipam/"
BLOCKS = PREFIX + "blocks/"
AFFINITIES = PREFIX + "affinities/"
HANDLES = PREFIX + "handles/"
CONFIG_KEY = PREFIX + "config"
POOLS = "/registry/ippools/"
NODES = "/registry/nodes/"


@functools.lru_cache(maxsize=4096)
def parse_cidr(cidr: str, strict: bool = True) -> IPNetwork:
    """A parsed CIDR, parsed once: every assign asks about the same few block and pool CIDRs,
    and ``ipaddress`` parsing was a good part of an assign's CPU time (the objects are immutable)."""
    return ipaddress.ip_network(cidr, strict=strict)


def cidr_key(cidr: str) -> str:
    """A store-key-safe spelling of a CIDR: 10.244.0.0/26 → 10.244.0.0-26."""
    return cidr.replace("/", "-")


def block_key(cidr: str) -> str:
    return BLOCKS + cidr_key(cidr)


def affinity_key(node: str, cidr: str) -> str:
    return f"{AFFINITIES}{node}/{cidr_key(cidr)}"


def handle_key(handle_id: str) -> str:
    return HANDLES + handle_id


def handle_id_for(network: str, container_id: str, ifname: str) -> str:
    """One handle per attachment (CNI's key: network, container id, interface)."""
    return f"{network}.{container_id}.{ifname}"


@dataclass(frozen=True)
class Block:
    """One block: its CIDR, the node it is affine to (None when released) and the ordinals in use."""

    cidr: str
    affinity: str | None
    allocations: Mapping[int, str] = field(default_factory=dict)  # ordinal → handle id

    @property
    def network(self) -> IPNetwork:
        return parse_cidr(self.cidr)

    @property
    def size(self) -> int:
        return self.network.num_addresses

    @property
    def free(self) -> int:
        return self.size - len(self.allocations)

    @property
    def node(self) -> str | None:
        return self.affinity[5:] if self.affinity and self.affinity.startswith("host:") else None

    def address(self, ordinal: int) -> IPAddr:
        return self.network.network_address + ordinal

    def ordinal(self, addr: IPAddr) -> int:
        return int(addr) - int(self.network.network_address)

    def first_free(self) -> int | None:
        """The lowest free ordinal: allocation is deterministic and easy to reason about."""
        for i in range(self.size):
            if i not in self.allocations:
                return i
        return None

    def assign(self, ordinal: int, handle_id: str) -> Block:
        if ordinal in self.allocations:
            raise ValueError(f"{self.address(ordinal)} in block {self.cidr} is already in use")
        return Block(self.cidr, self.affinity, {**self.allocations, ordinal: handle_id})

    def release_handle(self, handle_id: str) -> tuple[Block, list[int]]:
        freed = sorted(o for o, h in self.allocations.items() if h == handle_id)
        kept = {o: h for o, h in self.allocations.items() if h != handle_id}
        return Block(self.cidr, self.affinity, kept), freed

    def to_dict(self) -> dict[str, Any]:
        return {"cidr": self.cidr, "affinity": self.affinity,
                "allocations": {str(o): h for o, h in sorted(self.allocations.items())}}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Block:
        return cls(value["cidr"], value.get("affinity"),
                   {int(o): h for o, h in (value.get("allocations") or {}).items()})


def pool_blocks(pool_cidr: str, block_size: int) -> Iterator[str]:
    """Every block CIDR of a pool, in address order."""
    net = ipaddress.ip_network(pool_cidr, strict=False)
    for sub in net.subnets(new_prefix=block_size):
        yield str(sub)


def next_free_block(pool_cidr: str, block_size: int, taken: Iterable[str]) -> str | None:
    """The first block of the pool that nobody has claimed, or None when the pool is full."""
    used = set(taken)
    for cidr in pool_blocks(pool_cidr, block_size):
        if cidr not in used:
            return cidr
    return None


@functools.lru_cache(maxsize=4096)
def block_in_pool(block_cidr: str, pool_cidr: str) -> bool:
    b = parse_cidr(block_cidr)
    p = parse_cidr(pool_cidr, strict=False)
    return subnet_of(b, p)


@dataclass(frozen=True)
class BlockUsage:
    """One row of ``podnet ipam show --show-blocks``."""

    cidr: str
    node: str | None
    used: int
    size: int

    @property
    def free(self) -> int:
        return self.size - self.used


@dataclass(frozen=True)
class PoolUsage:
    """One row of ``podnet ipam show``: a pool with its totals and (optionally) its blocks."""

    name: str
    cidr: str
    disabled: bool
    size: int
    used: int
    blocks: tuple[BlockUsage, ...]

    @property
    def free(self) -> int:
        return self.size - self.used


def usage(pools: Iterable[tuple[str, str, bool]], blocks: Iterable[Block]) -> list[PoolUsage]:
    """Per-pool usage from pools (name, cidr, disabled) and blocks: pure, for the CLI."""
    all_blocks = sorted(blocks, key=lambda b: (b.network.version, int(b.network.network_address)))
    out = []
    for name, cidr, disabled in pools:
        mine = [b for b in all_blocks if block_in_pool(b.cidr, cidr)]
        rows = tuple(BlockUsage(b.cidr, b.node, len(b.allocations), b.size) for b in mine)
        net = ipaddress.ip_network(cidr, strict=False)
        out.append(PoolUsage(name, cidr, disabled, net.num_addresses, sum(r.used for r in rows), rows))
    return out


def leaked_handles(handles: Mapping[str, Mapping[str, Any]], live: set[str]) -> set[str]:
    """Handles whose attachment is not live. Only handles carrying a container id are
    candidates: handles without one (tunnel addresses, manual reservations) are never leaks."""
    return {h for h, attrs in handles.items() if attrs.get("containerID") and h not in live}


@dataclass
class LeakTracker:
    """Frees an address only after it looked leaked for ``grace`` seconds AND a fresh re-check
    agrees: a pod in the middle of its CNI ADD has a handle before the runtime records it."""

    grace: float
    first_seen: dict[str, float] = field(default_factory=dict)

    def due(self, candidates: set[str], now: float) -> set[str]:
        """Update the observations; return the handles leaked for at least ``grace`` seconds."""
        for h in list(self.first_seen):
            if h not in candidates:
                del self.first_seen[h]
        for h in candidates:
            self.first_seen.setdefault(h, now)
        return {h for h, t in self.first_seen.items() if now - t >= self.grace}

    def forget(self, handle: str) -> None:
        self.first_seen.pop(handle, None)
