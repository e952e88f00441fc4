"""How the Kubernetes-only policy table finds a pod's chains: one rule per signature chain,
looking the pod up in a plain named set of that chain's members (pure).

::

    from-wl   iifname . ip saddr @from-<h> goto egress-<h>     one per egress signature chain
              iifname . ip saddr @from-open goto egress-ok     pods no policy isolates (egress)
              iifname @pod-ifaces counter drop                 a known veth, a wrong source
              counter drop                                     an unknown cali*: fail closed
    to-wl     oifname @to-open accept                          pods no policy isolates (ingress)
              oifname @to-<h> goto ingress-<h>                 one per ingress signature chain
              counter drop

Why not verdict maps keyed on the pod (``iifname . ip saddr vmap @from-pod``, what the tiered
table keeps): on any commit that adds a rule or an element with a verdict, nf_tables checks the
table's jump graph, and that walk visits every element of every verdict map, two per local pod,
so a policy change cost more on a node with more pods. Plain set elements carry no verdict:
moving a pod between existing signature chains is an element delete and add, and adding a rule
(a policy change, a new signature) walks chains and rules only. A new connection (established
packets never get here) meets at most one set lookup per signature chain of the node, which
shares one chain among all pods the same policies isolate.

The per-pod view ("dispatch entries": the pod's key, its interface and address or its
interface, to the verdict its packets get) is what the live planner and the flow recheck read;
``dispatch_entries`` derives it from a rendered or read-back table (either layout).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from .expr import ACCEPT, COUNTER, DROP, concat, goto, match, meta, payload
from .model import Element, MapKey, NftChain, NftRule, NftTable, Verdict

#: the per-direction names of the dispatch (the tiered table's verdict maps have these names)
FROM_MAP, TO_MAP, POD_IFACES = "from-pod", "to-pod", "pod-ifaces"
FROM_WL, TO_WL, EGRESS_OK = "from-wl", "to-wl", "egress-ok"
#: membership set name prefixes: egress (interface and address), ingress (interface)
FROM_SET, TO_SET = "from-", "to-"
OPEN = "open"
#: the key types of a membership set, per direction name
KEY_TYPES: Mapping[str, tuple[str, ...]] = {FROM_MAP: ("ifname", "ipv4_addr"), TO_MAP: ("ifname",)}
_PREFIX = {FROM_MAP: FROM_SET, TO_MAP: TO_SET}
_CHAIN_PREFIX = {FROM_MAP: "egress-", TO_MAP: "ingress-"}
_OPEN_VERDICT: Mapping[str, Verdict] = {FROM_MAP: ("goto", EGRESS_OK), TO_MAP: ("accept",)}


def member_set(which: str, verdict: Verdict) -> str:
    """The membership set of the pods whose ``which`` (FROM_MAP / TO_MAP) dispatch gives
    ``verdict``: ``from-<h>`` for ``goto egress-<h>``, ``from-open`` for ``goto egress-ok``,
    ``to-<h>`` for ``goto ingress-<h>``, ``to-open`` for ``accept``."""
    if verdict == _OPEN_VERDICT[which]:
        return _PREFIX[which] + OPEN
    prefix = _CHAIN_PREFIX[which]
    if verdict[0] != "goto" or not verdict[1].startswith(prefix):
        raise ValueError(f"no membership set for the {which} verdict {verdict}")
    return _PREFIX[which] + verdict[1][len(prefix):]


def set_verdict(which: str, name: str) -> Verdict:
    """The verdict of a membership set's dispatch rule (``member_set`` backwards)."""
    tail = name[len(_PREFIX[which]):]
    return _OPEN_VERDICT[which] if tail == OPEN else ("goto", _CHAIN_PREFIX[which] + tail)


def is_member_set(name: str) -> bool:
    """Whether a set of the policy table is a dispatch membership set."""
    return name.startswith(FROM_SET) or name.startswith(TO_SET)


def is_dispatch(name: str) -> bool:
    """Whether a set or map is keyed by pod (its elements concern one pod each)."""
    return name in (FROM_MAP, TO_MAP, POD_IFACES) or is_member_set(name)


def member_element(which: str, key: MapKey) -> Element:
    """A dispatch key as a membership set element (the canonical form)."""
    if which == FROM_MAP:
        n = int(ipaddress.IPv4Address(key[1]))
        return (key[0], (n, n))
    return (key[0],)


def element_key(which: str, elem: Element) -> MapKey:
    """A membership set element back as a dispatch key."""
    if which == FROM_MAP:
        span = elem[1]
        assert isinstance(span, tuple) and isinstance(elem[0], str)
        return (elem[0], str(ipaddress.IPv4Address(span[0])))
    return (str(elem[0]),)


_KEY_EXPR: Mapping[str, Any] = {FROM_MAP: concat(meta("iifname"), payload("ip", "saddr")), TO_MAP: meta("oifname")}


def dispatch_rule(which: str, name: str) -> NftRule:
    """``iifname . ip saddr @from-<h> goto egress-<h>`` / ``oifname @to-<h> goto ingress-<h>``."""
    verdict = set_verdict(which, name)
    stmt = ACCEPT if verdict == ("accept",) else goto(verdict[1])
    direction = "egress" if which == FROM_MAP else "ingress"
    text = (f"dispatch: pods no policy isolates for {direction}" if name.endswith(OPEN)
            else f"dispatch: pods of {verdict[1]}")
    return NftRule.make([match(_KEY_EXPR[which], "@" + name), stmt], text)


def dispatch_chains(names: Iterable[str]) -> dict[str, NftChain]:
    """``from-wl`` and ``to-wl`` for the membership sets ``names``: the open ones first (a pod
    no policy isolates meets one lookup), then by name. The rules are disjoint, so their order
    does not change any verdict."""
    ordered = sorted(set(names), key=lambda n: (not n.endswith(OPEN), n))
    from_wl = NftChain(FROM_WL, (
        *[dispatch_rule(FROM_MAP, n) for n in ordered if n.startswith(FROM_SET)],
        NftRule.make([match(meta("iifname"), "@" + POD_IFACES), COUNTER, DROP],
                     "anti-spoofing: source is not the pod's address"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    to_wl = NftChain(TO_WL, (
        *[dispatch_rule(TO_MAP, n) for n in ordered if n.startswith(TO_SET)],
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    return {FROM_WL: from_wl, TO_WL: to_wl}


def dispatch_entries(table: NftTable, which: str) -> dict[MapKey, Verdict]:
    """Every local pod's ``which`` (FROM_MAP / TO_MAP) dispatch key with its verdict: the
    verdict map's entries (the tiered table), else the membership sets' elements."""
    m = table.maps.get(which)
    if m is not None:
        return dict(m.elements)
    prefix = _PREFIX[which]
    out: dict[MapKey, Verdict] = {}
    for name, s in table.sets.items():
        if name.startswith(prefix):
            verdict = set_verdict(which, name)
            for elem in s.elements:
                out[element_key(which, elem)] = verdict
    return out


class DispatchIndex:
    """Every local pod's dispatch entries, indexed both ways, kept current change by change:
    key → verdict per direction, the keys of each verdict (the members of a signature chain's
    set), and interface → address. What the flow recheck needs to find the pods behind a
    changed chain without visiting every pod of the node."""

    def __init__(self, entries: Mapping[str, Mapping[MapKey, Verdict]]) -> None:
        self.entries: dict[str, dict[MapKey, Verdict]] = {w: dict(e) for w, e in entries.items()}
        self.members: dict[str, dict[Verdict, set[MapKey]]] = {w: {} for w in self.entries}
        for which, by_key in self.entries.items():
            for key, verdict in by_key.items():
                self.members[which].setdefault(verdict, set()).add(key)
        self.iface_ip: dict[str, str] = {k[0]: k[1] for k in self.entries.get(FROM_MAP, {}) if len(k) == 2}

    def put(self, which: str, key: MapKey, verdict: Verdict | None) -> None:
        """Give ``key`` its new verdict (None: the pod's entry is gone)."""
        by_key, members = self.entries[which], self.members[which]
        was = by_key.get(key)
        if was is not None:
            keys = members[was]
            keys.discard(key)
            if not keys:
                del members[was]
        if verdict is None:
            by_key.pop(key, None)
            if which == FROM_MAP and len(key) == 2 and self.iface_ip.get(key[0]) == key[1]:
                del self.iface_ip[key[0]]
            return
        by_key[key] = verdict
        members.setdefault(verdict, set()).add(key)
        if which == FROM_MAP and len(key) == 2:
            self.iface_ip[key[0]] = key[1]
