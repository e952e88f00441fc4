"""The emulated lab as a pure value: which namespaces, segments, addresses and routes exist.

Shaped like the seeds' cluster: nodes k8s-master01, k8s-node01, ... at 192.168.10.71, .72, ...
on one L2 segment (``l2``), or split over 192.168.10.0/24 and 192.168.20.0/24 joined by a
router (``l3``). The router also leads to an "outside" segment 192.168.94.0/24 with external
hosts (192.168.94.134 is the seeds' ipBlock exception), which have no route to pod addresses:
they only answer pods whose traffic was masqueraded (natOutgoing)."""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Literal

from podnet.errors import PodnetError

Underlay = Literal["l2", "l3"]
SEGMENT_CIDRS = ("192.168.10.0/24", "192.168.20.0/24")
EXTERNAL_CIDR = "192.168.94.0/24"
EXTERNAL_HOSTS = ("192.168.94.134", "192.168.94.135")
FIRST_HOST = 71  # k8s-master01 = .71, as in the seeds
MAX_NODES = 150


@dataclass(frozen=True)
class Segment:
    name: str  # "a", "b", "ext"
    netns: str
    cidr: str
    gateway: str  # the router's address on this segment
    bridge: str = "br0"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    netns: str
    segment: str
    address: str
    prefixlen: int
    gateway: str
    port: str  # the node's link name on the segment bridge


@dataclass(frozen=True)
class ExternalHost:
    name: str
    netns: str
    address: str
    prefixlen: int
    gateway: str
    port: str


@dataclass(frozen=True)
class Topology:
    prefix: str
    underlay: Underlay
    router_netns: str
    segments: tuple[Segment, ...]
    nodes: tuple[NodeSpec, ...]
    externals: tuple[ExternalHost, ...]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise PodnetError(f"node {name!r} is not part of this cluster",
                          hint="nodes: " + ", ".join(n.name for n in self.nodes))

    def segment(self, name: str) -> Segment:
        return next(s for s in self.segments if s.name == name)

    def namespaces(self) -> list[str]:
        """Every namespace, in creation order (removal goes in reverse)."""
        return ([s.netns for s in self.segments] + [self.router_netns]
                + [n.netns for n in self.nodes] + [e.netns for e in self.externals])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Topology:
        return cls(prefix=d["prefix"], underlay=d["underlay"], router_netns=d["router_netns"],
                   segments=tuple(Segment(**s) for s in d["segments"]),
                   nodes=tuple(NodeSpec(**n) for n in d["nodes"]),
                   externals=tuple(ExternalHost(**e) for e in d["externals"]))


def node_names(count: int) -> list[str]:
    """k8s-master01, k8s-node01, k8s-node02, ... (the seeds' names)."""
    return ["k8s-master01"] + [f"k8s-node{i:02d}" for i in range(1, count)]


def plan_topology(nodes: int = 3, underlay: str = "l2", prefix: str = "", externals: int = 1) -> Topology:
    """The lab for ``nodes`` nodes. ``prefix`` is put in front of every namespace name so several
    labs (or tests) can exist side by side."""
    if underlay not in ("l2", "l3"):
        raise PodnetError(f"unknown underlay {underlay!r}", hint="use l2 (one segment) or l3 (two subnets and a router)")
    if not 1 <= nodes <= MAX_NODES:
        raise PodnetError(f"--nodes {nodes} is out of range", hint=f"use 1 to {MAX_NODES}")
    if underlay == "l3" and nodes < 2:
        raise PodnetError("an l3 underlay needs at least 2 nodes (one per subnet)")
    if not 0 <= externals <= len(EXTERNAL_HOSTS):
        raise PodnetError(f"at most {len(EXTERNAL_HOSTS)} external hosts")
    infra = prefix or "podnet-"
    seg_names = ["a"] if underlay == "l2" else ["a", "b"]
    segments = [Segment(name=s, netns=f"{infra}ul-{s}", cidr=c, gateway=_host(c, 2))
                for s, c in zip(seg_names, SEGMENT_CIDRS)]
    segments.append(Segment(name="ext", netns=f"{infra}ul-ext", cidr=EXTERNAL_CIDR, gateway=_host(EXTERNAL_CIDR, 1)))
    per_a = nodes if underlay == "l2" else (nodes + 1) // 2
    specs = []
    for i, name in enumerate(node_names(nodes)):
        seg = segments[0] if i < per_a else segments[1]
        host = FIRST_HOST + (i if i < per_a else i - per_a)
        specs.append(NodeSpec(name=name, netns=f"{prefix}{name}", segment=seg.name, address=_host(seg.cidr, host),
                              prefixlen=ipaddress.ip_network(seg.cidr).prefixlen, gateway=seg.gateway,
                              port=f"n{i}"))
    ext = segments[-1]
    hosts = tuple(ExternalHost(name=f"external{i + 1}", netns=f"{infra}ext{i + 1}", address=addr,
                               prefixlen=ipaddress.ip_network(ext.cidr).prefixlen, gateway=ext.gateway,
                               port=f"x{i}")
                  for i, addr in enumerate(EXTERNAL_HOSTS[:externals]))
    kind: Underlay = "l2" if underlay == "l2" else "l3"
    return Topology(prefix=prefix, underlay=kind, router_netns=f"{infra}router", segments=tuple(segments),
                    nodes=tuple(specs), externals=hosts)


def _host(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + n)
