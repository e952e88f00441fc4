"""nftables desired state as plain values, for any table, and the canonical form of set elements.

A renderer builds an ``NftTable`` (its family and name, sets, verdict maps, chains); the kernel
applier reads the live table back into the same shape (``parse_listing``) and ``diff`` compares
the two. Comparing JSON as nft prints it would be fragile (``10.0.0.1/32`` comes back as
``10.0.0.1``, ranges that align come back as prefixes), so elements are compared in a
canonical form: addresses and ports become ``(first, last)`` integer intervals, protocols stay
names, verdicts become tuples.

Rules are identified by their comment, which starts with a hash of the rule's expression (as
Calico marks its rules): a chain whose comments read back unchanged needs no rewrite.

Every value here is frozen, its collections included: the live-update planner keeps what
changes after a render in its own tracker (``tracker``), never in these values.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

#: a canonical element component: (first, last) for addresses/ports, a str for a protocol
Component = tuple[int, int] | str
#: a canonical set element: a 1-tuple for plain sets, an n-tuple for concatenations
Element = tuple[Component, ...]
#: a verdict: ("accept",), ("drop",), ("goto", chain), ("jump", chain)
Verdict = tuple[str, ...]
#: a verdict map key: one string per key type (an interface name, an address, a port)
MapKey = tuple[str, ...]
#: (key types, is a verdict map) of a plain set or map, (key types, False, True) of a
#: concatenated interval set: what an element encoder needs
KeyInfo = tuple[tuple[str, ...], bool] | tuple[tuple[str, ...], bool, bool]

#: base chain priorities by name, as nft spells them for the ip, ip6 and inet families
PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

_ADDR_TYPES = {"ipv4_addr": 4, "ipv6_addr": 6}
_EMPTY_MAP: Mapping[Any, Any] = MappingProxyType({})


def short_hash(*parts: object, size: int = 10) -> str:
    """A stable short name part (sha256, hex) for sets and rule marks."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:size]


@dataclass(frozen=True)
class TableId:
    """Which table: its family (``inet``, ``ip``, ``ip6``) and name."""

    family: str
    name: str

    def ref(self, **fields: Any) -> dict[str, Any]:
        """The ``family``/``table`` pair every object of the table carries in nft's JSON."""
        return {"family": self.family, "table": self.name, **fields}

    def __str__(self) -> str:
        return f"{self.family} {self.name}"


#: the tables podnet owns in a node's namespace: policy enforcement, natOutgoing
POLICY_TABLE = TableId("inet", "podnet")
NAT_TABLE = TableId("ip", "podnet-nat")


@dataclass(frozen=True)
class NftSet:
    """A named set; ``types`` has one entry, or several for a concatenation.

    A set with a ``timeout`` (seconds) is filled by the packet path (``update @set``, as
    session affinity does), so its elements are never desired state: none is rendered and
    none is read back."""

    name: str
    types: tuple[str, ...]
    interval: bool
    elements: frozenset[Element]
    timeout: int | None = None

    def to_json(self, table: TableId) -> dict[str, Any]:
        body = table.ref(name=self.name, type=self.types[0] if len(self.types) == 1 else list(self.types))
        if self.interval:
            body["flags"] = ["interval"]
        if self.timeout is not None:
            body["flags"] = [*body.get("flags", ()), "timeout"]
            body["timeout"] = self.timeout
        elif self.elements:
            body["elem"] = [element_json(e, self.types) for e in sorted(self.elements, key=_elem_key)]
        return {"set": body}


@dataclass(frozen=True)
class NftMap:
    """A verdict map; keys are tuples of strings, one per key type (an interface name; an
    interface name and an address; an address, a protocol and a port)."""

    name: str
    key_types: tuple[str, ...]
    elements: Mapping[MapKey, Verdict] = field(default_factory=lambda: _EMPTY_MAP)

    def __post_init__(self) -> None:
        if not isinstance(self.elements, MappingProxyType):
            object.__setattr__(self, "elements", MappingProxyType(dict(self.elements)))

    def key_json(self, key: MapKey) -> Any:
        return key[0] if len(key) == 1 else {"concat": list(key)}

    def to_json(self, table: TableId) -> dict[str, Any]:
        body = table.ref(name=self.name, type=self.key_types[0] if len(self.key_types) == 1 else list(self.key_types),
                         map="verdict")
        if self.elements:
            body["elem"] = [[self.key_json(k), verdict_json(v)] for k, v in sorted(self.elements.items())]
        return {"map": body}


def map_key_parse(value: Any) -> MapKey:
    return tuple(str(v) for v in value["concat"]) if isinstance(value, dict) else (str(value),)


@dataclass(frozen=True)
class NftRule:
    """One rule: its expression list (JSON text, so the value stays hashable) and comment."""

    expr_json: str
    comment: str

    @property
    def expr(self) -> list[Any]:
        loaded: list[Any] = json.loads(self.expr_json)
        return loaded

    @staticmethod
    def make(expr: list[Any], text: str) -> NftRule:
        """The comment is ``<hash8> <text>``: the hash covers the expression and the text."""
        expr_json = json.dumps(expr, sort_keys=True, separators=(",", ":"))
        mark = short_hash(expr_json, text, size=8)
        return NftRule(expr_json, f"{mark} {text}"[:127])


@dataclass(frozen=True)
class NftChain:
    """A chain; a base chain has a ``hook`` and with it a ``type`` (filter, nat, route), a
    priority (``PRIORITIES`` names the usual ones) and a ``policy``."""

    name: str
    rules: tuple[NftRule, ...]
    hook: str | None = None
    prio: int = 0
    policy: str = "accept"
    type: str = "filter"

    @property
    def base(self) -> tuple[str, str, int] | None:
        """(type, hook, priority) of a base chain: what cannot change without recreating it."""
        return (self.type, self.hook, self.prio) if self.hook else None

    @property
    def signature(self) -> tuple[Any, ...]:
        """What must match in the kernel for the chain to count as unchanged."""
        return (self.base, self.policy if self.hook else None, tuple(r.comment for r in self.rules))

    def to_json(self, table: TableId) -> dict[str, Any]:
        body = table.ref(name=self.name)
        if self.hook:
            body.update({"type": self.type, "hook": self.hook, "prio": self.prio, "policy": self.policy})
        return {"chain": body}

    def rules_json(self, table: TableId) -> list[dict[str, Any]]:
        return [{"rule": table.ref(chain=self.name, expr=r.expr, comment=r.comment)} for r in self.rules]


@dataclass(frozen=True)
class NftTable:
    """One whole table: ``inet podnet`` (policy), ``ip podnet-nat`` (natOutgoing), …"""

    family: str
    name: str
    sets: Mapping[str, NftSet] = field(default_factory=lambda: _EMPTY_MAP)
    maps: Mapping[str, NftMap] = field(default_factory=lambda: _EMPTY_MAP)
    chains: Mapping[str, NftChain] = field(default_factory=lambda: _EMPTY_MAP)

    def __post_init__(self) -> None:
        for name in ("sets", "maps", "chains"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

    @property
    def id(self) -> TableId:
        return TableId(self.family, self.name)

    def to_json(self) -> list[dict[str, Any]]:
        """The full table as ``add`` commands (for a first install and for golden files)."""
        t = self.id
        out: list[dict[str, Any]] = [{"add": {"table": {"family": self.family, "name": self.name}}}]
        out += [{"add": s.to_json(t)} for _, s in sorted(self.sets.items())]
        out += [{"add": c.to_json(t)} for _, c in sorted(self.chains.items())]
        out += [{"add": m.to_json(t)} for _, m in sorted(self.maps.items())]
        for _, c in sorted(self.chains.items()):
            out += [{"add": r} for r in c.rules_json(t)]
        return out

    def counts(self) -> dict[str, int]:
        """Sizes for benchmarks: rules, set elements, map elements, chains, sets."""
        return {
            "chains": len(self.chains),
            "rules": sum(len(c.rules) for c in self.chains.values()),
            "sets": len(self.sets),
            "set_elements": sum(len(s.elements) for s in self.sets.values()),
            "map_elements": sum(len(m.elements) for m in self.maps.values()),
        }

    # -- the applier's view of its model (``TableModel``) ----------------------------------

    def key_info(self, name: str) -> KeyInfo | None:
        return key_info(self.sets, self.maps, name)

    def snapshot(self) -> NftTable:
        return self


class TableModel(Protocol):
    """What an applier keeps as its model of the kernel's table after a commit: the rendered
    ``NftTable`` itself, or the live table that kept it current since."""

    @property
    def id(self) -> TableId: ...

    def key_info(self, name: str) -> KeyInfo | None:
        """(key types, is a map) of a plain set or map; None for interval sets and unknown names."""

    def snapshot(self) -> NftTable:
        """The table as a value (the live table freezes its current contents)."""


def key_info(sets: Mapping[str, NftSet], maps: Mapping[str, NftMap], name: str) -> KeyInfo | None:
    """``TableModel.key_info`` over a table's set and map definitions."""
    s = sets.get(name)
    if s is not None:
        if s.interval:  # a concatenation's elements carry their last key; a plain interval set's do not
            return (s.types, False, True) if len(s.types) > 1 else None
        return (s.types, False)
    m = maps.get(name)
    return None if m is None else (m.key_types, True)


# --- elements: canonical form <-> JSON -----------------------------------------------------


def interval_of(addr: str) -> tuple[int, int]:
    """An address or CIDR as an integer interval."""
    net = ipaddress.ip_network(addr, strict=False)
    return int(net.network_address), int(net.broadcast_address)


def cidr_minus(cidr: str, excepts: Iterable[str]) -> list[tuple[int, int]]:
    """``cidr`` without the ``excepts`` (same family only), as sorted disjoint intervals."""
    net = ipaddress.ip_network(cidr, strict=False)
    holes = sorted(interval_of(e) for e in excepts if ipaddress.ip_network(e, strict=False).version == net.version)
    out: list[tuple[int, int]] = []
    start, end = int(net.network_address), int(net.broadcast_address)
    for lo, hi in holes:
        if hi < start or lo > end:
            continue
        if lo > start:
            out.append((start, lo - 1))
        start = max(start, hi + 1)
        if start > end:
            break
    if start <= end:
        out.append((start, end))
    return out


def merge_intervals(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or adjacent intervals merged (nft refuses overlapping interval elements)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _addr(value: int, version: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def _addr_json(span: tuple[int, int], version: int) -> Any:
    lo, hi = span
    if lo == hi:
        return _addr(lo, version)
    size = hi - lo + 1
    bits = 32 if version == 4 else 128
    if size & (size - 1) == 0 and lo % size == 0:
        return {"prefix": {"addr": _addr(lo, version), "len": bits - size.bit_length() + 1}}
    return {"range": [_addr(lo, version), _addr(hi, version)]}


def _component_json(comp: Component, typ: str) -> Any:
    if isinstance(comp, str):
        return comp
    if typ in _ADDR_TYPES:
        return _addr_json(comp, _ADDR_TYPES[typ])
    if typ == "inet_service":
        lo, hi = comp
        return lo if lo == hi else {"range": [lo, hi]}
    return comp


def element_json(elem: Element, types: tuple[str, ...]) -> Any:
    parts = [_component_json(c, t) for c, t in zip(elem, types)]
    return parts[0] if len(parts) == 1 else {"concat": parts}


def _component_parse(value: Any, typ: str) -> Component:
    if typ in _ADDR_TYPES:
        if isinstance(value, str):
            n = int(ipaddress.ip_address(value))
            return (n, n)
        if "prefix" in value:
            return interval_of(f"{value['prefix']['addr']}/{value['prefix']['len']}")
        lo, hi = value["range"]
        return (int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi)))
    if typ == "inet_service":
        if isinstance(value, dict):
            lo, hi = value["range"]
            return (int(lo), int(hi))
        return (int(value), int(value))
    return str(value)


def element_parse(value: Any, types: tuple[str, ...]) -> Element:
    """A set element as nft prints it in JSON → canonical form."""
    if isinstance(value, dict) and "elem" in value:  # elements with options (counters, comments)
        value = value["elem"]["val"]
    parts = value["concat"] if isinstance(value, dict) and "concat" in value else [value]
    return tuple(_component_parse(p, t) for p, t in zip(parts, types))


def _elem_key(elem: Element) -> tuple[Any, ...]:
    return tuple((0, c, "") if isinstance(c, tuple) else (1, (0, 0), c) for c in elem)


def verdict_json(v: Verdict) -> dict[str, Any]:
    if v[0] in ("goto", "jump"):
        return {v[0]: {"target": v[1]}}
    return {v[0]: None}


def verdict_parse(value: dict[str, Any]) -> Verdict:
    (kind, arg), = value.items()
    return (kind, arg["target"]) if kind in ("goto", "jump") else (kind,)


# --- reading a listing back ------------------------------------------------------------------


def _types(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def parse_listing(table: TableId, items: Iterable[dict[str, Any]]) -> NftTable:
    """``nft -j list table <family> <name>`` items → NftTable (rules carry comments only)."""
    sets: dict[str, NftSet] = {}
    maps: dict[str, NftMap] = {}
    chains: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[NftRule]] = {}
    for item in items:
        if "set" in item:
            s = item["set"]
            types = _types(s["type"])
            timeout = s.get("timeout") if "timeout" in s.get("flags", ()) else None
            elems = frozenset() if timeout is not None else frozenset(element_parse(e, types) for e in s.get("elem", ()))
            sets[s["name"]] = NftSet(s["name"], types, "interval" in s.get("flags", ()), elems,
                                     None if timeout is None else int(timeout))
        elif "map" in item:
            m = item["map"]
            maps[m["name"]] = NftMap(m["name"], _types(m["type"]),
                                     {map_key_parse(k): verdict_parse(v) for k, v in m.get("elem", ())})
        elif "chain" in item:
            chains[item["chain"]["name"]] = item["chain"]
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault(r["chain"], []).append(NftRule("null", r.get("comment", "")))
    out_chains = {
        name: NftChain(name, tuple(rules.get(name, ())), c.get("hook"), int(c.get("prio", 0)),
                       c.get("policy", "accept"), c.get("type", "filter"))
        for name, c in chains.items()
    }
    return NftTable(table.family, table.name, sets, maps, out_chains)
