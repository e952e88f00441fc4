"""Typed helpers over ``ipaddress`` for values of either family.

``ipaddress`` types a network as ``IPv4Network | IPv6Network`` and its comparisons only within
one family, so code that mixes families (a pool and a block, a CIDR and a node subnet) needs
the family check spelled out; here it is, once.
"""
from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def subnet_of(inner: IPNetwork, outer: IPNetwork) -> bool:
    """True when ``inner`` lies inside ``outer``; False across families (never a TypeError)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False
