"""natOutgoing → the ``ip podnet-nat`` table of one node (pure).

Pod traffic from a natOutgoing pool to an address outside every pool leaves with the node's
address (masquerade at srcnat); pod-to-pod traffic never does. A table of its own, so policy
enforcement (``inet podnet``) and NAT change independently; the same diff and applier keep
both.
"""
from __future__ import annotations

from collections.abc import Iterable

from .expr import COUNTER, MASQUERADE, match, payload
from .model import NAT_TABLE, PRIORITIES, NftChain, NftRule, NftSet, NftTable, interval_of

MASQ_SOURCES, ALL_POOLS, POSTROUTING = "masq_src", "all_pools", "postrouting"


def _cidr_set(name: str, cidrs: Iterable[str]) -> NftSet:
    return NftSet(name, ("ipv4_addr",), True, frozenset((interval_of(c),) for c in cidrs))


def render_nat(masquerade: Iterable[str], all_pools: Iterable[str]) -> NftTable:
    """Masquerade sources in ``masquerade`` (CIDRs) toward destinations outside ``all_pools``."""
    rule = NftRule.make([match(payload("ip", "saddr"), "@" + MASQ_SOURCES),
                         match(payload("ip", "daddr"), "@" + ALL_POOLS, "!="), COUNTER, MASQUERADE],
                        "natOutgoing: pool traffic leaving the pools takes the node's address")
    chain = NftChain(POSTROUTING, (rule,), hook="postrouting", prio=PRIORITIES["srcnat"], type="nat")
    sets = [_cidr_set(MASQ_SOURCES, masquerade), _cidr_set(ALL_POOLS, all_pools)]
    return NftTable(NAT_TABLE.family, NAT_TABLE.name, sets={s.name: s for s in sets}, chains={chain.name: chain})
