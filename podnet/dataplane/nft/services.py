"""A node's proxy plan → the ``ip podnet-svc`` nftables table (pure: plan in, values out).

kube-proxy's nftables layout, in podnet's table::

    filter-prerouting / filter-output   (filter, dstnat-10)  ct state new jump firewall-check,
                                                             ct state new jump service-endpoints-check
    nat-prerouting / nat-output         (nat, dstnat)        jump services
    filter-prerouting-post-dnat /
    filter-output-post-dnat             (filter, dstnat+10)  ct state new jump cluster-ips-check
    nat-postrouting                     (nat, srcnat-10)     jump masquerading

    firewall-check           ip daddr . meta l4proto . th dport vmap @firewall-ips
    firewall-<h>-ns/name     loadBalancerSourceRanges: ip saddr <range> return …; drop
    services                 ip daddr . meta l4proto . th dport vmap @service-ips
                             ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
    service-endpoints-check  the same keys in @no-endpoint-services / @no-endpoint-nodeports
                             → goto reject-chain (no usable endpoint: refused at once)
    cluster-ips-check        ip daddr @cluster-ips reject (an allocated ClusterIP, a port it
                             does not define); ip daddr <service CIDR> drop (unallocated)
    service-<h>-ns/name/proto/port   [ClusterIP from outside the pods: mark for masquerade]
                             [ip saddr @affinity-… goto endpoint-…]; one endpoint at random:
                             numgen random mod N == 0 goto e1; … mod 2 == 0 goto eN-1; goto eN
    local-<h>-…              the same over this node's endpoints (Local policies), or drop
    external-<h>-…           NodePort, externalIP and LoadBalancer traffic: Cluster marks for
                             masquerade then the service chain; Local lets pods and the node
                             through to the service chain and the rest to the local chain
    endpoint-<h>-…__ip/port  ip saddr <ip> jump mark-for-masquerade (hairpin);
                             [update @affinity-…]; meta l4proto P dnat to ip:port
    mark-for-masquerade / masquerading   the 0x4000 packet mark, then masquerade fully-random

Priorities (explicit, so the tables of a node compose): the no-endpoint check (dstnat-10)
rejects before any DNAT; services DNAT at dstnat (-100), so the policy table ``inet podnet``
(filter, 0) sees the endpoint's address and enforces the endpoint pod's policy after DNAT, as
Kubernetes specifies; the post-DNAT check (dstnat+10) sees only what no Service translated;
masquerade runs at srcnat-10 (90), before natOutgoing's ``ip podnet-nat`` (srcnat, 100): a
connection this table masqueraded has its NAT bound and natOutgoing never sees it again, so
nothing is masqueraded twice.

*Chosen differently from kube-proxy*: it picks an endpoint with ``numgen random mod N vmap {
0 : goto …, … }``, an anonymous map per Service. Each anonymous set makes the kernel look its
id up through the whole pending transaction, so loading ten thousand Services at once is
quadratic (minutes); the cascade of ``numgen`` compares gives each endpoint the same 1/N and
loads in seconds.

Every Service renders to a ``Fragment`` (its chains, affinity sets, map entries and ClusterIP)
that depends on its plan alone: the live planner (``services_live``) re-renders only the
Services a change touches.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from podnet.services.proxy import PortPlan, ProxyPlan, ServicePlan, Target

from .expr import (
    COUNTER,
    DROP,
    Expr,
    concat,
    dnat,
    goto,
    jump,
    match,
    meta,
    numgen_random,
    payload,
    vmap,
)
from .model import (
    PRIORITIES,
    Element,
    MapKey,
    NftChain,
    NftMap,
    NftRule,
    NftSet,
    NftTable,
    TableId,
    Verdict,
    interval_of,
    merge_intervals,
    short_hash,
)

SERVICE_TABLE = TableId("ip", "podnet-svc")
#: the packet mark bit that asks nat-postrouting to masquerade (kube-proxy's default bit)
MASQUERADE_MARK = 0x4000
SERVICE_IPS, SERVICE_NODEPORTS = "service-ips", "service-nodeports"
NO_EP_SERVICES, NO_EP_NODEPORTS = "no-endpoint-services", "no-endpoint-nodeports"
CLUSTER_IPS, NODEPORT_IPS, POD_CIDRS = "cluster-ips", "nodeport-ips", "pod-cidrs"
SERVICES, EP_CHECK, CIP_CHECK = "services", "service-endpoints-check", "cluster-ips-check"
FIREWALL_IPS, FIREWALL_CHECK = "firewall-ips", "firewall-check"
MARK, MASQUERADING, REJECT = "mark-for-masquerade", "masquerading", "reject-chain"
#: the base chains' priorities (see the module docstring)
PRIO_FILTER = PRIORITIES["dstnat"] - 10
PRIO_NAT = PRIORITIES["dstnat"]
PRIO_POST_DNAT = PRIORITIES["dstnat"] + 10
PRIO_MASQUERADE = PRIORITIES["srcnat"] - 10

_IP_KEY = ("ipv4_addr", "inet_proto", "inet_service")
_PORT_KEY = ("inet_proto", "inet_service")
_DADDR, _SADDR = payload("ip", "daddr"), payload("ip", "saddr")
_L4_DPORT = concat(meta("l4proto"), payload("th", "dport"))
_CT_NEW = match({"ct": {"key": "state"}}, "new", "in")
_MARK = meta("mark")
_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@dataclass(frozen=True)
class NodeContext:
    """What the table needs from the node and the cluster besides the Services."""

    #: the node's own addresses NodePorts answer on (never 127.0.0.1)
    node_ips: tuple[str, ...] = ()
    #: the pods' CIDRs: traffic from them is not masqueraded on its way to a ClusterIP
    pod_cidrs: tuple[str, ...] = ()
    service_cidr: str | None = None


@dataclass(frozen=True)
class Fragment:
    """Everything one Service puts in the table."""

    chains: Mapping[str, NftChain] = field(default_factory=lambda: _EMPTY)
    #: its affinity sets (filled by the packet path)
    sets: Mapping[str, NftSet] = field(default_factory=lambda: _EMPTY)
    #: map name → its entries in that map
    entries: Mapping[str, Mapping[MapKey, Verdict]] = field(default_factory=lambda: _EMPTY)
    cluster_ip: Element | None = None


# --- names -----------------------------------------------------------------------------------


def _port_id(svc: ServicePlan, port: PortPlan) -> str:
    return f"{svc.namespace}/{svc.name}/{port.protocol}/{port.name}"


def _named(kind: str, text: str) -> str:
    """kube-proxy's chain names: kind, a hash of the text, the text (readable in `nft list`)."""
    return f"{kind}-{short_hash(kind, text, size=8)}-{text}"


def service_chain(svc: ServicePlan, port: PortPlan) -> str:
    return _named("service", _port_id(svc, port))


def local_chain(svc: ServicePlan, port: PortPlan) -> str:
    return _named("local", _port_id(svc, port))


def external_chain(svc: ServicePlan, port: PortPlan) -> str:
    return _named("external", _port_id(svc, port))


def endpoint_chain(svc: ServicePlan, port: PortPlan, ep: Target) -> str:
    return _named("endpoint", f"{_port_id(svc, port)}__{ep[0]}/{ep[1]}")


def firewall_chain(svc: ServicePlan) -> str:
    return _named("firewall", svc.key)


def affinity_set(svc: ServicePlan, port: PortPlan, ep: Target) -> str:
    return _named("affinity", f"{_port_id(svc, port)}__{ep[0]}/{ep[1]}")


# --- one Service ---------------------------------------------------------------------------------


def _rule(expr: list[Expr], text: str) -> NftRule:
    return NftRule.make(expr, text)


def _balance(svc: ServicePlan, port: PortPlan, endpoints: tuple[Target, ...], what: str) -> list[NftRule]:
    """Sticky endpoints first (session affinity), then one endpoint at random."""
    rules = []
    if svc.affinity:
        rules += [_rule([match(_SADDR, "@" + affinity_set(svc, port, ep)), goto(endpoint_chain(svc, port, ep))],
                        f"{what}: back to {ep[0]}:{ep[1]} (session affinity)") for ep in endpoints]
    # One of N at random, as a cascade: rule i takes 1 of the N-i left (1/N each in all).
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        pick = [] if i == n - 1 else [match(numgen_random(n - i), 0)]
        rules.append(_rule([*pick, goto(endpoint_chain(svc, port, ep))],
                           f"{what}: endpoint {i + 1} of {n}, {ep[0]}:{ep[1]}"))
    return rules


def _endpoint(svc: ServicePlan, port: PortPlan, ep: Target) -> NftChain:
    ip, number = ep
    rules = [_rule([match(_SADDR, ip), jump(MARK)], f"{ip} reaching itself through its Service (hairpin)")]
    if svc.affinity:
        rules.append(_rule([{"set": {"op": "update", "elem": _SADDR, "set": "@" + affinity_set(svc, port, ep)}}],
                           "remember the client (session affinity)"))
    rules.append(_rule([match(meta("l4proto"), port.protocol), COUNTER, dnat(ip, number)],
                       f"{svc.key}:{port.name or port.port} to {ip}:{number}"))
    return NftChain(endpoint_chain(svc, port, ep), tuple(rules))


def render_service(svc: ServicePlan) -> Fragment:
    """One Service's chains, affinity sets, map entries and ClusterIP (depends on ``svc`` only)."""
    chains: dict[str, NftChain] = {}
    sets: dict[str, NftSet] = {}
    entries: dict[str, dict[MapKey, Verdict]] = {SERVICE_IPS: {}, SERVICE_NODEPORTS: {}, NO_EP_SERVICES: {},
                                                  NO_EP_NODEPORTS: {}, FIREWALL_IPS: {}}
    reject: Verdict = ("goto", REJECT)
    uses_local = svc.internal_local or svc.external_local
    if svc.firewall_ips:
        chain = _firewall(svc)
        chains[chain.name] = chain
        entries[FIREWALL_IPS] = {(ip, p.protocol, str(p.port)): ("goto", chain.name)
                                 for ip in svc.firewall_ips for p in svc.ports}
    for port in svc.ports:
        proto, number = port.protocol, str(port.port)
        vips = [(ip, proto, number) for ip in svc.external_ips]
        node_port = (proto, str(port.node_port)) if port.node_port else None
        if not port.cluster:
            entries[NO_EP_SERVICES].update({k: reject for k in [(svc.cluster_ip, proto, number), *vips]})
            if node_port:
                entries[NO_EP_NODEPORTS][node_port] = reject
            continue
        cluster = service_chain(svc, port)
        masq = _rule([match(_DADDR, svc.cluster_ip), match(_SADDR, "@" + POD_CIDRS, "!="), jump(MARK)],
                     f"{svc.key}:{port.name or port.port} from outside the pod network: masquerade")
        chains[cluster] = NftChain(cluster, (masq, *_balance(svc, port, port.cluster, svc.key)))
        if uses_local:
            local = local_chain(svc, port)
            body = (_balance(svc, port, port.local, f"{svc.key} (this node)") if port.local
                    else [_rule([COUNTER, DROP], f"{svc.key}: no endpoint on this node (Local policy)")])
            chains[local] = NftChain(local, tuple(body))
        for ep in sorted({*port.cluster, *(port.local if uses_local else ())}):
            chain = _endpoint(svc, port, ep)
            chains[chain.name] = chain
            if svc.affinity:
                name = affinity_set(svc, port, ep)
                sets[name] = NftSet(name, ("ipv4_addr",), False, frozenset(), svc.affinity)
        entries[SERVICE_IPS][(svc.cluster_ip, proto, number)] = ("goto", local_chain(svc, port) if svc.internal_local
                                                                 else cluster)
        if vips or node_port:
            external = external_chain(svc, port)
            chains[external] = NftChain(external, tuple(_external_rules(svc, port)))
            entries[SERVICE_IPS].update({k: ("goto", external) for k in vips})
            if node_port:
                entries[SERVICE_NODEPORTS][node_port] = ("goto", external)
    cluster_ip = interval_of(svc.cluster_ip)
    return Fragment(chains, sets, {k: v for k, v in entries.items() if v}, (cluster_ip,))


def _firewall(svc: ServicePlan) -> NftChain:
    """loadBalancerSourceRanges: the allowed sources go back to the base chain, the rest drop."""
    rules = []
    for cidr in svc.source_ranges:
        addr, _, length = cidr.partition("/")
        right: Any = addr if length == "32" else {"prefix": {"addr": addr, "len": int(length)}}
        rules.append(_rule([match(_SADDR, right), {"return": None}], f"{svc.key}: from {cidr}, allowed"))
    rules.append(_rule([COUNTER, DROP], f"{svc.key}: loadBalancerSourceRanges do not hold the source"))
    return NftChain(firewall_chain(svc), tuple(rules))


def _external_rules(svc: ServicePlan, port: PortPlan) -> list[NftRule]:
    cluster = service_chain(svc, port)
    if not svc.external_local:
        return [_rule([jump(MARK)], "external traffic, Cluster policy: masquerade"),
                _rule([goto(cluster)], "to any endpoint")]
    fib_local = match({"fib": {"result": "type", "flags": ["saddr"]}}, "local")
    return [_rule([match(_SADDR, "@" + POD_CIDRS), goto(cluster)], "from a pod: any endpoint (Local policy)"),
            _rule([fib_local, jump(MARK)], "from this node: masquerade"),
            _rule([fib_local, goto(cluster)], "from this node: any endpoint"),
            _rule([goto(local_chain(svc, port))], "external traffic, Local policy: this node's endpoints")]


# --- the table ---------------------------------------------------------------------------------


def _cidr_set(name: str, cidrs: Iterable[str]) -> NftSet:
    return NftSet(name, ("ipv4_addr",), True, frozenset((i,) for i in merge_intervals(interval_of(c) for c in cidrs)))


def base_table(ctx: NodeContext) -> NftTable:
    """The fixed part: hooks, dispatch, checks, masquerading; every map and set empty but the
    node's own (node addresses, pod CIDRs)."""
    def chain(name: str, rules: list[NftRule], **base: Any) -> NftChain:
        return NftChain(name, tuple(rules), **base)

    if ctx.node_ips:
        local_dst = [match(_DADDR, "@" + NODEPORT_IPS)]
    else:  # no address known: every local address but loopback
        local_dst = [match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
                     match(_DADDR, {"prefix": {"addr": "127.0.0.0", "len": 8}}, "!=")]
    services = chain(SERVICES, [
        _rule([vmap(concat(_DADDR, meta("l4proto"), payload("th", "dport")), "@" + SERVICE_IPS)],
              "dispatch by Service address, protocol and port"),
        _rule([*local_dst, vmap(_L4_DPORT, "@" + SERVICE_NODEPORTS)], "NodePorts on this node's addresses")])
    ep_check = chain(EP_CHECK, [
        _rule([vmap(concat(_DADDR, meta("l4proto"), payload("th", "dport")), "@" + NO_EP_SERVICES)],
              "a Service without endpoints"),
        _rule([*local_dst, vmap(_L4_DPORT, "@" + NO_EP_NODEPORTS)], "a NodePort without endpoints")])
    cip_rules = [_rule([match(_DADDR, "@" + CLUSTER_IPS), goto(REJECT)], "a ClusterIP on a port it does not define")]
    if ctx.service_cidr:
        addr, _, length = ctx.service_cidr.partition("/")
        cip_rules.append(_rule([match(_DADDR, {"prefix": {"addr": addr, "len": int(length)}}), COUNTER, DROP],
                               "an unallocated address of the service CIDR"))
    new_check = [_CT_NEW, jump(EP_CHECK)]
    firewall = _rule([_CT_NEW, jump(FIREWALL_CHECK)], "new connections to guarded LoadBalancer addresses")
    post_check = [_CT_NEW, jump(CIP_CHECK)]
    chains = [
        chain("filter-prerouting", [firewall, _rule(new_check, "new connections to Services")],
              hook="prerouting", prio=PRIO_FILTER),
        chain("filter-output", [firewall, _rule(new_check, "new connections to Services")], hook="output",
              prio=PRIO_FILTER),
        chain("filter-prerouting-post-dnat", [_rule(post_check, "what no Service translated")],
              hook="prerouting", prio=PRIO_POST_DNAT),
        chain("filter-output-post-dnat", [_rule(post_check, "what no Service translated")],
              hook="output", prio=PRIO_POST_DNAT),
        chain("nat-prerouting", [_rule([jump(SERVICES)], "Services")], hook="prerouting", prio=PRIO_NAT, type="nat"),
        chain("nat-output", [_rule([jump(SERVICES)], "Services")], hook="output", prio=PRIO_NAT, type="nat"),
        chain("nat-postrouting", [_rule([jump(MASQUERADING)], "masquerade what was marked")],
              hook="postrouting", prio=PRIO_MASQUERADE, type="nat"),
        services, ep_check, chain(CIP_CHECK, cip_rules),
        chain(FIREWALL_CHECK, [_rule([vmap(concat(_DADDR, meta("l4proto"), payload("th", "dport")), "@" + FIREWALL_IPS)],
                                     "LoadBalancer addresses with loadBalancerSourceRanges")]),
        chain(MARK, [_rule([{"mangle": {"key": _MARK, "value": {"|": [_MARK, MASQUERADE_MARK]}}}], "mark")]),
        chain(MASQUERADING, [
            _rule([match({"&": [_MARK, MASQUERADE_MARK]}, 0), {"return": None}], "not marked"),
            _rule([{"mangle": {"key": _MARK, "value": {"^": [_MARK, MASQUERADE_MARK]}}}], "clear the mark"),
            _rule([COUNTER, {"masquerade": {"flags": "fully-random"}}], "masquerade")]),
        chain(REJECT, [
            _rule([match(meta("l4proto"), "tcp"), COUNTER, {"reject": {"type": "tcp reset"}}], "TCP: reset"),
            _rule([COUNTER, {"reject": {"type": "icmp", "expr": "port-unreachable"}}], "others: port unreachable")]),
    ]
    sets = [NftSet(CLUSTER_IPS, ("ipv4_addr",), False, frozenset()),
            NftSet(NODEPORT_IPS, ("ipv4_addr",), False, frozenset((interval_of(ip),) for ip in ctx.node_ips)),
            _cidr_set(POD_CIDRS, ctx.pod_cidrs)]
    maps = [NftMap(SERVICE_IPS, _IP_KEY), NftMap(NO_EP_SERVICES, _IP_KEY),
            NftMap(SERVICE_NODEPORTS, _PORT_KEY), NftMap(NO_EP_NODEPORTS, _PORT_KEY), NftMap(FIREWALL_IPS, _IP_KEY)]
    return NftTable(SERVICE_TABLE.family, SERVICE_TABLE.name, {s.name: s for s in sets}, {m.name: m for m in maps},
                    {c.name: c for c in chains})


def merge(base: NftTable, fragments: Iterable[Fragment]) -> NftTable:
    """The base table with the fragments in it. Where two Services claim one map key (the same
    externalIP and port twice), the first fragment keeps it."""
    chains = dict(base.chains)
    sets = dict(base.sets)
    entries: dict[str, dict[MapKey, Verdict]] = {name: dict(m.elements) for name, m in base.maps.items()}
    cluster_ips = set(base.sets[CLUSTER_IPS].elements)
    for frag in fragments:
        chains.update(frag.chains)
        sets.update(frag.sets)
        for name, items in frag.entries.items():
            target = entries[name]
            for key, verdict in items.items():
                target.setdefault(key, verdict)
        if frag.cluster_ip is not None:
            cluster_ips.add(frag.cluster_ip)
    sets[CLUSTER_IPS] = NftSet(CLUSTER_IPS, ("ipv4_addr",), False, frozenset(cluster_ips))
    maps = {name: NftMap(name, m.key_types, entries[name]) for name, m in base.maps.items()}
    return NftTable(base.family, base.name, sets, maps, chains)


def render(plan: ProxyPlan, ctx: NodeContext) -> NftTable:
    """The whole ``ip podnet-svc`` table of one node."""
    return merge(base_table(ctx), (render_service(s) for _, s in sorted(plan.services.items())))
