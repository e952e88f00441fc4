"""A node's host port forwards → the ``ip podnet-hostport`` table (pure: mappings in, table out).

What the CNI ``portmap`` plugin programs for ``hostPort``, in one table per node::

    prerouting   (nat, dstnat+5)   jump hostports      traffic from outside and from pods
    output       (nat, dstnat+5)   jump hostports      the node's own processes
    hostports                      per forward, on hostIP (or any local address for 0.0.0.0),
                                   protocol and hostPort:
                                     ip saddr <pod> → mark 0x2000   (a pod reaching itself: hairpin)
                                     ip saddr 127.0.0.0/8 → mark    (localhost, for 0.0.0.0 and 127.x)
                                     dnat to podIP:containerPort
    postrouting  (nat, srcnat-5)   marked → masquerade (the pod answers the node, not itself or lo)

Priorities: after the service proxy's DNAT (dstnat), as portmap's chain runs after
KUBE-SERVICES, so a NodePort wins a clash; before the policy table (filter, 0), which sees
the endpoint pod and the client's own address (external and pod clients are not
masqueraded); the masquerade runs before natOutgoing (srcnat), so nothing is masqueraded twice.
Bit 0x2000 is portmap's own masquerade mark and not the service proxy's 0x4000.
Localhost (``127.0.0.1:hostPort`` from the node) needs ``route_localnet`` on the node, which
the applier sets when a forward answers there.
"""
from __future__ import annotations

from collections.abc import Iterable

from podnet.services.hostports import ANY, HostPortMapping

from .expr import COUNTER, Expr, dnat, jump, match, meta, payload
from .model import PRIORITIES, NftChain, NftRule, NftTable, TableId

HOSTPORT_TABLE = TableId("ip", "podnet-hostport")
#: the packet mark bit that asks this table's postrouting chain to masquerade (portmap's bit 13)
HOSTPORT_MARK = 0x2000
HOSTPORTS = "hostports"
PRIO_DNAT = PRIORITIES["dstnat"] + 5
PRIO_MASQUERADE = PRIORITIES["srcnat"] - 5

_DADDR, _SADDR = payload("ip", "daddr"), payload("ip", "saddr")
_MARK = meta("mark")
_LOOPBACK = {"prefix": {"addr": "127.0.0.0", "len": 8}}
_SET_MARK: Expr = {"mangle": {"key": _MARK, "value": {"|": [_MARK, HOSTPORT_MARK]}}}


def answers_on_localhost(m: HostPortMapping) -> bool:
    """Whether the forward answers on 127.0.0.1 (hostIP 0.0.0.0 or a loopback address)."""
    return m.host_ip == ANY or m.host_ip.startswith("127.")


def _forward(m: HostPortMapping) -> list[NftRule]:
    where = ([match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")] if m.host_ip == ANY
             else [match(_DADDR, m.host_ip)])
    sel = [*where, match(meta("l4proto"), m.protocol), match(payload("th", "dport"), m.host_port)]
    text = f"{m.owner} {m.host_ip}:{m.host_port}/{m.protocol} to {m.pod_ip}:{m.container_port}"
    rules = [NftRule.make([*sel, match(_SADDR, m.pod_ip), _SET_MARK], f"{text}: hairpin, masquerade")]
    if answers_on_localhost(m):
        rules.append(NftRule.make([*sel, match(_SADDR, _LOOPBACK), _SET_MARK], f"{text}: from localhost, masquerade"))
    rules.append(NftRule.make([*sel, COUNTER, dnat(m.pod_ip, m.container_port)], text))
    return rules


def render_hostports(mappings: Iterable[HostPortMapping]) -> NftTable:
    """The node's ``ip podnet-hostport`` table (the same base chains when it forwards nothing)."""
    forwards = [r for m in sorted(mappings) for r in _forward(m)]
    chains = [
        NftChain("prerouting", (NftRule.make([jump(HOSTPORTS)], "host ports"),), hook="prerouting",
                 prio=PRIO_DNAT, type="nat"),
        NftChain("output", (NftRule.make([jump(HOSTPORTS)], "host ports"),), hook="output", prio=PRIO_DNAT, type="nat"),
        NftChain(HOSTPORTS, tuple(forwards)),
        NftChain("postrouting", (
            NftRule.make([match({"&": [_MARK, HOSTPORT_MARK]}, 0), {"return": None}], "not marked"),
            NftRule.make([{"mangle": {"key": _MARK, "value": {"^": [_MARK, HOSTPORT_MARK]}}}], "clear the mark"),
            NftRule.make([COUNTER, {"masquerade": None}], "masquerade")),
            hook="postrouting", prio=PRIO_MASQUERADE, type="nat"),
    ]
    return NftTable(HOSTPORT_TABLE.family, HOSTPORT_TABLE.name, chains={c.name: c for c in chains})
