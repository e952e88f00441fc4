"""Calico v3 NetworkPolicy and GlobalNetworkPolicy → PolicyIR.

A rule becomes one ``Rule``: the remote end (an ingress rule's ``source``, an egress rule's
``destination``) is its one peer, the subject's own end its ``local`` entity; ``destination``
ports are the destination ports in both directions. Calico's matching rules for entities are
in ``ir.EntityPeer`` and docs/policy.md.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from podnet.model.calico_policy import (
    PORT_PROTOCOLS,
    CalicoNetworkPolicy,
    CalicoRule,
    EntityRule,
    GlobalNetworkPolicy,
    ICMPFields,
    parse_port,
    protocol_name,
)
from podnet.model.calico_selector import Selector as CalicoSelector
from podnet.model.calico_selector import parse_selector
from podnet.model.selectors import EVERYTHING

from .ir import (
    SOURCE_ANNOTATION,
    CalicoSubject,
    Direction,
    EntityPeer,
    IcmpMatch,
    Locator,
    PolicyIR,
    PortMatch,
    Provenance,
    Rule,
    _networks,
)
from .order import canonical_tier
from .tiers import DEFAULT_TIER

CalicoPolicy = CalicoNetworkPolicy | GlobalNetworkPolicy
#: the label a namespace selector sees on every namespaced entity (how ``all()`` and ``global()``
#: tell namespaced entities from global ones); no Kubernetes label can collide with it
NAMESPACED_MARK = "podnet.internal/namespaced"
NAME_LABEL = "projectcalico.org/name"
#: named ports without a protocol match the name on any of these
NAMED_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
_QUOTED = re.compile(r"('[^']*'|\"[^\"]*\")")
_ALL = re.compile(r"(?<![A-Za-z0-9_./-])all\(\)")
_GLOBAL = re.compile(r"(?<![A-Za-z0-9_./-])global\(\)")
Path = tuple[str | int, ...]


def selector(text: str | None) -> CalicoSelector | None:
    """A selector field (None or empty: not given)."""
    return parse_selector(text) if text and text.strip() else None


def namespace_selector(text: str) -> CalicoSelector:
    """A namespaceSelector, evaluated on a namespace's labels (see ``namespace_labels``):
    ``all()`` holds for every namespaced entity and ``global()`` for every entity outside a
    namespace, as Calico rewrites them; empty means ``all()``."""
    if not text.strip():
        text = "all()"
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside quotes
        parts[i] = _GLOBAL.sub(f"!has({NAMESPACED_MARK})", _ALL.sub(f"has({NAMESPACED_MARK})", parts[i]))
    return parse_selector("".join(parts))


def compile_calico(policy: CalicoPolicy, source: str | None = None, locate: Locator | None = None) -> PolicyIR:
    """A Calico NetworkPolicy or GlobalNetworkPolicy → PolicyIR (tier, order, subject, rules)."""
    is_global = isinstance(policy, GlobalNetworkPolicy)
    namespace = "" if is_global else (policy.metadata.namespace or "default")
    name = policy.metadata.name
    kind = "gnp" if is_global else "calico"
    source = source or policy.metadata.annotations.get(SOURCE_ANNOTATION)
    spec = policy.spec

    def at(*path: str | int) -> str | None:
        return (locate(path) if locate else None) or source

    types = {t.lower() for t in spec.effective_types}
    compiled: dict[Direction, tuple[Rule, ...]] = {"ingress": (), "egress": ()}
    ignored: list[str] = []
    sections: tuple[tuple[Direction, list[CalicoRule] | None], ...] = (("ingress", spec.ingress), ("egress", spec.egress))
    for direction, rules in sections:
        if direction in types:
            compiled[direction] = tuple(_rule(rule, direction, i, namespace or None, name, kind, at)
                                        for i, rule in enumerate(rules or ()))
        elif rules:
            ignored.append(direction)
    ns_sel_text: str | None
    if isinstance(policy, GlobalNetworkPolicy):
        gspec = policy.spec
        ns_sel_text = gspec.namespace_selector if gspec.namespace_selector and gspec.namespace_selector.strip() else None
        host_only = bool(gspec.do_not_track or gspec.pre_dnat)
    else:
        ns_sel_text, host_only = None, False
    subject = CalicoSubject(
        selector=parse_selector(spec.selector or "all()"),
        namespace=namespace or None,
        namespace_selector=namespace_selector(ns_sel_text) if ns_sel_text is not None else None,
        namespace_selector_text=ns_sel_text,
        service_account_selector=selector(spec.service_account_selector),
        host_only=host_only,
    )
    return PolicyIR(
        namespace=namespace,
        name=name,
        pod_selector=EVERYTHING,
        isolates=frozenset(types),
        ingress=compiled["ingress"],
        egress=compiled["egress"],
        source=source,
        ignored_directions=tuple(ignored),
        declared_types=tuple(spec.types) if spec.types else None,
        sections=tuple(d for d, rules in sections if rules is not None),
        kind=kind,
        tier=canonical_tier(spec.tier or DEFAULT_TIER),
        order=spec.order,
        subject=subject,
    )


def _rule(rule: CalicoRule, direction: Direction, index: int, namespace: str | None, name: str, kind: str,
          at: Callable[..., str | None]) -> Rule:
    base: Path = ("spec", direction, index)

    def prov(*rest: str | int, peer: int | None = None, port: int | None = None) -> Provenance:
        path = base + rest
        return Provenance(namespace or "", name, direction, index, peer=peer, port=port, source=at(*path),
                          kind=kind, path=path)

    remote_name, local_name = ("source", "destination") if direction == "ingress" else ("destination", "source")
    remote = getattr(rule, remote_name)
    local = getattr(rule, local_name)
    peer = _entity(remote, namespace, prov(remote_name, peer=0))
    proto = protocol_name(rule.protocol) if rule.protocol is not None else None
    ports = _ports(rule.destination.ports, proto, lambda k: prov("destination", "ports", k, port=k))
    if ports is None and proto is not None:
        ports = (PortMatch(proto, None, None, prov("protocol")),)
    not_ports = _ports(rule.destination.not_ports, proto, lambda k: prov("destination", "notPorts", k, port=k)) or ()
    return Rule(
        direction=direction,
        index=index,
        peers=None if peer is None else (peer,),
        ports=ports,
        provenance=prov(),
        action=rule.action,
        local=_entity(local, namespace, prov(local_name)),
        not_ports=not_ports,
        not_protocol=protocol_name(rule.not_protocol) if rule.not_protocol is not None else None,
        icmp=_icmp(rule.icmp),
        not_icmp=_icmp(rule.not_icmp),
        ip_version=rule.ip_version,
    )


def _icmp(fields: ICMPFields | None) -> IcmpMatch | None:
    return None if fields is None else IcmpMatch(fields.type, fields.code)


def _ports(values: list[int | str] | None, proto: str | None,
           prov: Callable[[int], Provenance]) -> tuple[PortMatch, ...] | None:
    """Destination ports: each number or range on the rule's protocol; a name on the rule's
    protocol, or on TCP, UDP and SCTP when the rule names none."""
    if not values:
        return None
    out: list[PortMatch] = []
    for k, value in enumerate(values):
        parsed = parse_port(value)
        protocols = (proto,) if proto in PORT_PROTOCOLS else NAMED_PORT_PROTOCOLS
        for p in protocols:
            assert p is not None
            if isinstance(parsed, str):
                out.append(PortMatch(p, parsed, None, prov(k)))
            else:
                lo, hi = parsed
                out.append(PortMatch(p, lo, hi if hi != lo else None, prov(k)))
    return tuple(out)


def _entity(entity: EntityRule, namespace: str | None, prov: Provenance) -> EntityPeer | None:
    """The non-port fields of one end of a rule, or None when it has none."""
    sel = selector(entity.selector)
    not_sel = selector(entity.not_selector)
    ns_text = entity.namespace_selector if entity.namespace_selector is not None else None
    ns_sel = namespace_selector(ns_text) if ns_text is not None else None
    accounts = entity.service_accounts
    sa_names = tuple(accounts.names) if accounts is not None and accounts.names else None
    sa_sel = selector(accounts.selector) if accounts is not None else None
    nets = tuple(entity.nets or ())
    not_nets = tuple(entity.not_nets or ())
    if not (sel or not_sel or ns_sel or sa_names is not None or sa_sel or nets or not_nets):
        return None
    selects = bool(sel or not_sel or sa_names is not None or sa_sel)
    scope = namespace if namespace is not None and ns_sel is None and selects else None
    return EntityPeer(
        provenance=prov, nets=nets, not_nets=not_nets, selector=sel, not_selector=not_sel,
        namespace_selector=ns_sel, namespace_selector_text=ns_text, service_accounts=sa_names,
        service_account_selector=sa_sel, scope=scope,
        networks=_networks(nets), not_networks=_networks(not_nets),
    )
