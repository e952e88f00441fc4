"""The VXLAN device (VTEP) of a node and its static neighbour and FDB entries, reconciled.

Flannel's layout: ``nolearning``, a fixed MAC published to the other nodes, a /32 address,
and per remote node one permanent ARP entry (remote VTEP address -> MAC) plus one FDB entry
(MAC -> remote underlay address). Only devices with podnet's VTEP names are touched."""
from __future__ import annotations

import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.dataplane.routes import FdbSpec, NeighSpec, VxlanSpec, diff

VTEP_NAMES = ("flannel.1", "vxlan.calico")
NUD_PERMANENT = 0x80
NTF_SELF = 0x02


def _lookup(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _matches(link: Any, spec: VxlanSpec, underlay_idx: int) -> bool:
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return False
    data = info.get_attr("IFLA_INFO_DATA")
    return (data.get_attr("IFLA_VXLAN_ID") == spec.vni
            and data.get_attr("IFLA_VXLAN_PORT") == spec.port
            and data.get_attr("IFLA_VXLAN_LOCAL") == spec.local
            and data.get_attr("IFLA_VXLAN_LINK") == underlay_idx
            and not data.get_attr("IFLA_VXLAN_LEARNING"))


def ensure_vtep(ipr: IPRoute, spec: VxlanSpec) -> list[str]:
    """Create or repair the VTEP; returns what changed (empty: nothing to do)."""
    if spec.name not in VTEP_NAMES:
        raise ValueError(f"{spec.name} is not a podnet VTEP name")
    changes: list[str] = []
    underlay = _lookup(ipr, spec.underlay_dev)
    if underlay is None:
        raise LookupError(f"underlay device {spec.underlay_dev} not found")
    idx = _lookup(ipr, spec.name)
    if idx is not None and not _matches(ipr.get_links(idx)[0], spec, underlay):
        ipr.link("del", index=idx)
        changes.append(f"recreated {spec.name} (parameters changed)")
        idx = None
    if idx is None:
        ipr.link("add", ifname=spec.name, kind="vxlan", vxlan_id=spec.vni, vxlan_local=spec.local,
                 vxlan_port=spec.port, vxlan_link=underlay, vxlan_learning=0)
        idx = _lookup(ipr, spec.name)
        assert idx is not None
        changes.append(f"created {spec.name}")
    link = ipr.get_links(idx)[0]
    if link.get_attr("IFLA_ADDRESS") != spec.mac or link.get_attr("IFLA_MTU") != spec.mtu:
        ipr.link("set", index=idx, address=spec.mac, mtu=spec.mtu)
        changes.append(f"{spec.name} mac {spec.mac} mtu {spec.mtu}")
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=socket.AF_INET)}
    want = {(spec.address, 32)} if spec.address else set()
    for addr, plen in have - want:
        ipr.addr("del", index=idx, address=addr, prefixlen=plen)
        changes.append(f"{spec.name} removed address {addr}/{plen}")
    for addr, plen in want - have:
        ipr.addr("add", index=idx, address=addr, prefixlen=plen)
        changes.append(f"{spec.name} address {addr}/{plen}")
    if not link["flags"] & 1:
        ipr.link("set", index=idx, state="up")
        changes.append(f"{spec.name} up")
    return changes


def remove_vteps(ipr: IPRoute, keep: str | None = None) -> list[str]:
    """Delete podnet VTEPs other than ``keep`` (backend switched or encapsulation turned off)."""
    out = []
    for name in VTEP_NAMES:
        if name == keep:
            continue
        idx = _lookup(ipr, name)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
                out.append(f"deleted {name}")
            except NetlinkError as exc:
                if exc.code != 19:
                    raise
    return out


def read_neighbours(ipr: IPRoute, dev: str) -> set[NeighSpec]:
    idx = _lookup(ipr, dev)
    if idx is None:
        return set()
    return {NeighSpec(dev, n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR"))
            for n in ipr.get_neighbours(family=socket.AF_INET, ifindex=idx)
            if n["state"] & NUD_PERMANENT and n.get_attr("NDA_LLADDR")}


def read_fdb(ipr: IPRoute, dev: str) -> set[FdbSpec]:
    idx = _lookup(ipr, dev)
    if idx is None:
        return set()
    out = set()
    for n in ipr.get_neighbours(family=socket.AF_BRIDGE, ifindex=idx):
        dst = n.get_attr("NDA_DST")
        mac = n.get_attr("NDA_LLADDR")
        if dst and mac and n["ifindex"] == idx:
            out.add(FdbSpec(dev, mac, dst))
    return out


def apply_neighbours(ipr: IPRoute, dev: str, desired: frozenset[NeighSpec] | set[NeighSpec]) -> list[str]:
    idx = _lookup(ipr, dev)
    if idx is None:
        return []
    add, remove = diff({n for n in desired if n.dev == dev}, read_neighbours(ipr, dev))
    out = []
    for n in remove:
        try:
            ipr.neigh("del", dst=n.ip, lladdr=n.mac, ifindex=idx)
        except NetlinkError as exc:
            if exc.code != 2:
                raise
        out.append(f"neigh -{n.ip}")
    for n in add:
        ipr.neigh("replace", dst=n.ip, lladdr=n.mac, ifindex=idx, state=NUD_PERMANENT)
        out.append(f"neigh +{n.ip} {n.mac}")
    return out


def apply_fdb(ipr: IPRoute, dev: str, desired: frozenset[FdbSpec] | set[FdbSpec]) -> list[str]:
    idx = _lookup(ipr, dev)
    if idx is None:
        return []
    add, remove = diff({f for f in desired if f.dev == dev}, read_fdb(ipr, dev))
    out = []
    for f in remove:
        try:
            ipr.fdb("del", ifindex=idx, lladdr=f.mac, dst=f.dst)
        except NetlinkError as exc:
            if exc.code != 2:
                raise
        out.append(f"fdb -{f.mac} {f.dst}")
    for f in add:
        ipr.fdb("append", ifindex=idx, lladdr=f.mac, dst=f.dst, state=NUD_PERMANENT, flags=NTF_SELF)
        out.append(f"fdb +{f.mac} {f.dst}")
    return out
