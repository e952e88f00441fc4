"""Routes podnet installs for routing backends: read back, diff, apply the smallest change.

Only routes tagged with podnet's route protocol number (``proto 81`` in ``ip route``) in the
main table are ever read or changed; BIRD's ``proto bird`` routes, kernel routes and pod /32
routes are left alone."""
from __future__ import annotations

import gzip
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.dataplane.routes import RouteSpec, diff

ROUTE_PROTO = 81  # podnet routing backends (host-gw, vxlan); see docs/cluster.md
RTNH_F_ONLINK = 4
MAIN_TABLE = 254


def read_routes(ipr: IPRoute, proto: int = ROUTE_PROTO) -> set[RouteSpec]:
    """podnet's routes as RouteSpec values."""
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    out: set[RouteSpec] = set()
    for r in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE, proto=proto):
        if r["proto"] != proto or r.get_attr("RTA_TABLE", MAIN_TABLE) != MAIN_TABLE:
            continue
        dst = r.get_attr("RTA_DST") or "0.0.0.0"
        oif = r.get_attr("RTA_OIF")
        out.add(RouteSpec(dst=f"{dst}/{r['dst_len']}", gateway=r.get_attr("RTA_GATEWAY"),
                          dev=names.get(oif, str(oif)), onlink=bool(r["flags"] & RTNH_F_ONLINK)))
    return out


def _route_args(ipr: IPRoute, spec: RouteSpec, proto: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"dst": spec.dst, "proto": proto, "table": MAIN_TABLE}
    if spec.gateway:
        kw["gateway"] = spec.gateway
    found = ipr.link_lookup(ifname=spec.dev)
    if found:
        kw["oif"] = found[0]
    if spec.onlink:
        kw["flags"] = RTNH_F_ONLINK
    return kw


def apply_routes(ipr: IPRoute, desired: set[RouteSpec] | frozenset[RouteSpec],
                 proto: int = ROUTE_PROTO) -> tuple[list[RouteSpec], list[RouteSpec], list[str]]:
    """Make podnet's routes equal ``desired``. Returns (added, removed, errors); one bad route
    does not stop the others (the error names it and the kernel's reason)."""
    to_add, to_remove = diff(desired, read_routes(ipr, proto))
    errors: list[str] = []
    removed: list[RouteSpec] = []
    for spec in to_remove:
        try:
            ipr.route("del", **_route_args(ipr, spec, proto))
            removed.append(spec)
        except NetlinkError as exc:
            if exc.code != 3:  # ESRCH: already gone
                errors.append(f"delete route {spec.dst} via {spec.gateway}: {exc.args[1] if len(exc.args) > 1 else exc}")
    added: list[RouteSpec] = []
    for spec in to_add:
        try:
            ipr.route("replace", **_route_args(ipr, spec, proto))
            added.append(spec)
        except NetlinkError as exc:
            errors.append(f"route {spec.dst} via {spec.gateway} dev {spec.dev}: "
                          f"{exc.args[1] if len(exc.args) > 1 else exc}")
    return added, removed, errors


def kernel_has_ipip() -> bool:
    """Whether this kernel can make ipip devices (Calico ipipMode): CONFIG_NET_IPIP y or m."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_NET_IPIP="):
                    return line.strip().split("=", 1)[1] in ("y", "m")
        return False
    except OSError:
        import os

        return os.path.exists("/sys/module/ipip")
