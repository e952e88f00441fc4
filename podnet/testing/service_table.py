"""A small Service proxy table in kube-proxy's nftables layout, built from the dataplane model.

It shows, and the tests hold, that the model expresses what a Service proxy needs: NAT base
chains at the dstnat and srcnat priorities, a verdict map keyed on ``ipv4_addr . inet_proto .
inet_service``, ``numgen random mod N vmap`` over the endpoints, ``dnat to`` and
``masquerade``; the same diff and applier then keep it like any other table.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from podnet.dataplane.nft.expr import (
    COUNTER,
    MASQUERADE,
    anonymous_vmap,
    concat,
    dnat,
    match,
    meta,
    numgen_random,
    payload,
    vmap,
)
from podnet.dataplane.nft.model import PRIORITIES, NftChain, NftMap, NftRule, NftTable, TableId, short_hash

SERVICE_TABLE = TableId("ip", "podnet-svc")
SERVICE_IPS = "service-ips"
#: a Service port: (cluster IP, protocol in lower case, port)
ServicePort = tuple[str, str, int]
#: an endpoint: (address, port)
Endpoint = tuple[str, int]

_SERVICE_KEY = concat(payload("ip", "daddr"), meta("l4proto"), payload("th", "dport"))


def _service_chain(port: ServicePort) -> str:
    return "svc-" + short_hash("svc", port)


def _endpoint_chain(port: ServicePort, ep: Endpoint) -> str:
    return "sep-" + short_hash("sep", port, ep)


def service_table(services: Mapping[ServicePort, Sequence[Endpoint]], pod_cidr: str) -> NftTable:
    """Each Service port DNATs to one of its endpoints, picked at random; connections a
    Service sent to a pod from outside ``pod_cidr`` leave with the node's address."""
    dispatch = NftRule.make([vmap(_SERVICE_KEY, "@" + SERVICE_IPS)], "dispatch by Service IP, protocol and port")
    chains = [
        NftChain("nat-prerouting", (dispatch,), hook="prerouting", prio=PRIORITIES["dstnat"], type="nat"),
        NftChain("nat-output", (dispatch,), hook="output", prio=PRIORITIES["dstnat"], type="nat"),
        NftChain("nat-postrouting", (NftRule.make([
            match({"ct": {"key": "status"}}, "dnat", "in"),
            match(payload("ip", "saddr"), _prefix(pod_cidr), "!="), COUNTER, MASQUERADE],
            "Service traffic from outside the pod network"),), hook="postrouting", prio=PRIORITIES["srcnat"], type="nat"),
    ]
    entries: dict[tuple[str, ...], tuple[str, ...]] = {}
    for port, endpoints in sorted(services.items()):
        svc = _service_chain(port)
        entries[(port[0], port[1], str(port[2]))] = ("goto", svc)
        picks = {i: ("goto", _endpoint_chain(port, ep)) for i, ep in enumerate(endpoints)}
        chains.append(NftChain(svc, (NftRule.make([vmap(numgen_random(len(endpoints)), anonymous_vmap(picks))],
                                                   f"{port[0]}:{port[2]}/{port[1]}: one of {len(endpoints)}"),)))
        # ``dnat to addr:port`` needs the transport protocol matched first in the rule.
        chains += [NftChain(_endpoint_chain(port, ep), (NftRule.make(
            [match(meta("l4proto"), port[1]), COUNTER, dnat(ep[0], ep[1])], f"to {ep[0]}:{ep[1]}"),))
            for ep in endpoints]
    service_ips = NftMap(SERVICE_IPS, ("ipv4_addr", "inet_proto", "inet_service"), entries)
    return NftTable(SERVICE_TABLE.family, SERVICE_TABLE.name, maps={SERVICE_IPS: service_ips},
                    chains={c.name: c for c in chains})


def _prefix(cidr: str) -> dict[str, object]:
    addr, _, length = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(length or 32)}}
