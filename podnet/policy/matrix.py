"""The connectivity matrix (rows = sources, columns = destinations) without pair-by-pair work.

Pods fall into equivalence classes: same policies applying (after selector evaluation), same
membership in every peer of every rule (which depends on labels and, for ipBlocks, networks,
nodes and Calico entities, on the address), same named ports. The work is split where tiers
need it:

1. ``_groups``: pods by (namespace, labels, service account): every selector decides a group
   alike, so which policies apply is computed once per group;
2. ``_peers``: every distinct peer (and Calico rule end) becomes one bit; each pod gets the set
   of peers it belongs to (per group for label-only peers, per address for the others);
3. ``_classes``: pods with the same applying policies, peer bits and named ports (those some
   rule refers to);
4. ``_class_rows(key)``: per traffic key, the walk (``walk_bits``) over source classes for each
   destination class's ingress and over destination classes for each source class's egress,
   tier by tier, keeping per tier which classes it allowed, denied and passed on. Equal rule
   programs share one walk. Rows are Python ints over classes (bit d: destination class d);
   ``class_rows.ClassRows`` expands them to pods when a row is printed or asked for.

``reference_matrix`` computes the same table pair by pair with ``walk.allowed``; property tests
hold the two equal.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import ipaddress
import json
import operator
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from .bits import bitset, set_bits
from .class_rows import ClassRows, PodRows
from .cluster import ICMP, ClusterState, Endpoint, rule_protocol_matches
from .ir import (
    DIRECTIONS,
    EntityPeer,
    IPBlockPeer,
    IPNetwork,
    NetworkPeer,
    NodePeer,
    Peer,
    PodPeer,
    PolicyIR,
    PortMatch,
    Rule,
)
from .order import TierInfo
from .walk import allowed


@dataclass(frozen=True)
class Matrix:
    """Truth tables per ``"PORT/PROTO"`` key (``"ICMP"`` for ICMP); rows as int bitsets.

    ``compute_matrix`` fills ``by_class`` (rows per equivalence class) and ``rows`` expands a
    key's pod rows when asked for; the printers and ``allowed`` read ``by_class`` directly, so
    a 100,000-pod matrix is printed row by row without ever holding its n² bits."""

    pods: tuple[str, ...]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    rows: Mapping[str, Sequence[int]]
    #: how many equivalence classes the pods fell into (0 for the reference evaluator), and each
    #: pod's class (pods of one class have equal rows but for themselves and their node)
    classes: int = 0
    class_of: tuple[int, ...] = ()
    by_class: ClassRows | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_classes(cls, pods: tuple[str, ...], ports: tuple[int, ...], protocols: tuple[str, ...],
                     by_class: ClassRows) -> Matrix:
        return cls(pods, ports, protocols, PodRows(by_class), by_class.count, by_class.class_of, by_class)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def allowed(self, key: str, src: int, dst: int) -> bool:
        if self.by_class is not None:
            return self.by_class.allowed(key, src, dst)
        return bool((self.rows[key][src] >> dst) & 1)

    def row_bits(self, key: str, i: int) -> str:
        """Row i as text: character j is ``1`` when pod i reaches pod j."""
        if self.by_class is not None:
            return self.by_class.bits(key, i)
        n = len(self.pods)
        return format(self.rows[key][i], f"0{n}b")[::-1] if n else ""

    def row(self, key: str, i: int) -> int:
        if self.by_class is not None:
            return self.by_class.row(key, i)
        return self.rows[key][i]

    def count_allowed(self, key: str) -> int:
        """How many (source, destination) pairs are allowed (at class level when it can)."""
        if self.by_class is not None:
            return self.by_class.count_allowed(key)
        return sum(row.bit_count() for row in self.rows[key])

    def table(self, key: str) -> list[list[bool]]:
        return [[b == "1" for b in self.row_bits(key, i)] for i in range(len(self.pods))]

    def to_json(self) -> dict[str, object]:
        """The contract: pods sorted, row index = source, column index = destination."""
        return {
            "pods": list(self.pods),
            "ports": list(self.ports),
            "protocols": list(self.protocols),
            "allowed": {key: self.table(key) for key in self.keys},
        }

    def iter_json(self) -> Iterator[str]:
        """``json.dumps(self.to_json())`` in pieces, one per row: the same text without building
        the nested lists of booleans (at 100,000 pods the lists, not the matrix, filled memory
        and time). Each row is turned into text at C speed from its bit string."""
        yield (f'{{"pods": {json.dumps(list(self.pods))}, "ports": {json.dumps(list(self.ports))}, '
               f'"protocols": {json.dumps(list(self.protocols))}, "allowed": {{')
        for k, key in enumerate(self.keys):
            yield f'{", " if k else ""}{json.dumps(key)}: ['
            for i in range(len(self.pods)):
                cells = ", ".join(self.row_bits(key, i)).replace("1", "true").replace("0", "false")
                yield f"{', ' if i else ''}[{cells}]"
            yield "]"
        yield "}}"

    def iter_table(self, key: str) -> Iterator[str]:
        """The Kubernetes e2e truth table, line by line: ``.`` allowed, ``X`` denied."""
        names = list(self.pods)
        width = max([len(p) for p in names] + [2])
        yield f"{key}".ljust(width) + "  " + " ".join(names)
        for i, src in enumerate(names):
            bits = self.row_bits(key, i)
            cells = " ".join(("." if bit == "1" else "X").center(len(names[j])) for j, bit in enumerate(bits))
            yield src.ljust(width) + "  " + cells

    def render_table(self, key: str) -> str:
        return "\n".join(self.iter_table(key))

    def iter_csv(self) -> Iterator[str]:
        """``render_csv`` in pieces, one per row."""
        yield "key,from,to,allowed\n"
        for key in self.keys:
            for i, src in enumerate(self.pods):
                prefix = f"{key},{src},"
                yield "".join(f"{prefix}{dst},{'true' if bit == '1' else 'false'}\n"
                              for dst, bit in zip(self.pods, self.row_bits(key, i)))

    def render_csv(self) -> str:
        return "".join(self.iter_csv())

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def traffic_keys(ports: Sequence[int], protocols: Sequence[str]) -> list[tuple[str, int | None, str]]:
    """(key, port, protocol) per combination; ICMP has no port and appears once."""
    out: list[tuple[str, int | None, str]] = []
    for proto in protocols:
        proto = proto.upper()
        if proto == ICMP:
            out.append((ICMP, None, ICMP))
            continue
        for port in ports:
            out.append((f"{port}/{proto}", port, proto))
    return out


def _select(state: ClusterState, pods: Iterable[Endpoint] | None) -> list[Endpoint]:
    return sorted(state.pods if pods is None else pods, key=lambda e: e.key)


def reference_matrix(state: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                     pods: Iterable[Endpoint] | None = None) -> Matrix:
    """Pair by pair with the reference evaluator (slow; the definition the fast path must equal)."""
    eps = _select(state, pods)
    rows: dict[str, tuple[int, ...]] = {}
    for key, port, proto in traffic_keys(ports, protocols):
        out = []
        for src in eps:
            row = 0
            for j, dst in enumerate(eps):
                if allowed(state, src, dst, port, proto):
                    row |= 1 << j
            out.append(row)
        rows[key] = tuple(out)
    return Matrix(tuple(e.key for e in eps), tuple(ports), tuple(p.upper() for p in protocols), rows)


# --- the walk over bitsets -------------------------------------------------------------------

#: one tier of a rule program: the tier, then (rule id, action) for the rules in walk order
TierProgram = tuple[TierInfo, tuple[tuple[int, str], ...]]


@dataclass(frozen=True)
class TierBits:
    """What one tier did to the classes that reached it: allowed, denied, passed on."""

    tier: TierInfo
    allowed: int
    denied: int
    passed: int


def walk_bits(program: Sequence[TierProgram], peer_bits: Callable[[int], int], universe: int) -> tuple[TierBits, ...]:
    """The walk (``walk.walk``) for every class of ``universe`` at once: ``peer_bits(rule)`` are
    the classes a rule's peers match. What the last tier passed on reaches the profile (allow)."""
    undecided = universe
    out: list[TierBits] = []
    for tier, rules in program:
        pending, allow, deny, passed = undecided, 0, 0, 0
        for rule_id, action in rules:
            if action == "Log" or not pending:
                continue
            hit = pending & peer_bits(rule_id)
            if not hit:
                continue
            pending &= ~hit
            if action == "Allow":
                allow |= hit
            elif action == "Deny":
                deny |= hit
            else:
                passed |= hit
        if tier.default_action == "Pass":
            passed |= pending
        else:
            deny |= pending
        out.append(TierBits(tier, allow, deny, passed))
        undecided = passed
        if not undecided:
            break
    return tuple(out)


def allowed_bits(tiers: Sequence[TierBits], universe: int) -> int:
    """The classes a walk allowed (an empty walk allows everything)."""
    if not tiers:
        return universe
    out = tiers[-1].passed
    for t in tiers:
        out |= t.allowed
    return out


# --- 1. label groups -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Groups:
    of_pod: list[int]
    reps: list[Endpoint]
    #: per group, the policies applying (indexes into ``policies``), in evaluation order
    applying: list[tuple[int, ...]]
    policies: tuple[PolicyIR, ...]


def _groups(state: ClusterState, eps: Sequence[Endpoint]) -> _Groups:
    ids: dict[tuple[object, ...], int] = {}
    of_pod: list[int] = []
    reps: list[Endpoint] = []
    for ep in eps:
        key = (ep.namespace, frozenset(ep.labels.items()), ep.selectable, ep.service_account)
        gid = ids.get(key)
        if gid is None:
            gid = ids[key] = len(reps)
            reps.append(ep)
        of_pod.append(gid)
    applying = [state.applying_positions(rep) for rep in reps]
    return _Groups(of_pod, reps, applying, state.ordered)


# --- 2. peers ---------------------------------------------------------------------------------


def _peer_key(peer: Peer) -> tuple[object, ...]:
    if isinstance(peer, PodPeer):
        scope = (("ns", peer.namespace) if peer.namespace_selector is None
                 else ("sel", json.dumps(peer.namespace_selector.to_dict(), sort_keys=True)))
        return ("pods", scope, json.dumps(peer.pod_selector.to_dict(), sort_keys=True))
    if isinstance(peer, IPBlockPeer):
        return ("block", peer.cidr, peer.excepts)
    if isinstance(peer, NetworkPeer):
        return ("networks", peer.cidrs)
    if isinstance(peer, NodePeer):
        return ("nodes", json.dumps(peer.node_selector.to_dict(), sort_keys=True))
    return ("entity", peer.key)


def _masks(nets: Sequence[IPNetwork]) -> list[tuple[int, int, int]]:
    """Each network as (version, first address, last address), as integers."""
    return [(n.version, int(n.network_address), int(n.broadcast_address)) for n in nets]


def _address_int(ip: str) -> tuple[int, int]:
    """(IP version, the address as an integer); ``inet_pton`` first, as it is many times
    faster than ``ipaddress`` for the 100,000 addresses of a large cluster."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except OSError:
        addr = ipaddress.ip_address(ip)
        return addr.version, int(addr)


class _Addresses:
    """The pods' addresses, sorted, so "which pods lie in this network" is two bisections."""

    def __init__(self, eps: Sequence[Endpoint]) -> None:
        self.sorted: dict[int, tuple[list[int], list[int]]] = {}
        pairs: dict[int, list[tuple[int, int]]] = {}
        self.by_ip: dict[str, list[int]] = {}
        for i, ep in enumerate(eps):
            if not ep.ip:
                continue
            version, value = _address_int(ep.ip)
            pairs.setdefault(version, []).append((value, i))
            self.by_ip.setdefault(ep.ip, []).append(i)
        for version, items in pairs.items():
            items.sort()
            self.sorted[version] = ([a for a, _ in items], [i for _, i in items])
        self._memo: dict[tuple[int, int, int], frozenset[int]] = {}

    def within(self, nets: Sequence[IPNetwork]) -> set[int]:
        """The pods (indexes) whose address lies in any of ``nets``."""
        out: set[int] = set()
        for key in _masks(nets):
            hit = self._memo.get(key)
            if hit is None:
                found = self.sorted.get(key[0])
                if found is None:
                    hit = frozenset()
                else:
                    addrs, idx = found
                    hit = frozenset(idx[bisect.bisect_left(addrs, key[1]):bisect.bisect_right(addrs, key[2])])
                self._memo[key] = hit
            out |= hit
        return out

    def at(self, ips: Iterable[str]) -> set[int]:
        out: set[int] = set()
        for ip in ips:
            out.update(self.by_ip.get(ip, ()))
        return out


@dataclass(frozen=True)
class _Peers:
    """Every distinct peer gets a bit; ``of_pod[i]`` is the set of peers pod i belongs to."""

    ids: dict[tuple[object, ...], int]
    of_pod: list[int]


def _peers(state: ClusterState, eps: Sequence[Endpoint], groups: _Groups, rules: Sequence[Rule]) -> _Peers:
    """Label-only peers are decided once per group (and a pod selector once per namespace it
    is asked in); the others (ipBlocks, networks, nodes, Calico entities with addresses) per
    pod, from the sorted addresses."""
    ids: dict[tuple[object, ...], int] = {}
    found: list[tuple[tuple[object, ...], Peer]] = []
    for rule in rules:
        for peer in (*(rule.peers or ()), *((rule.local,) if rule.local is not None else ())):
            key = _peer_key(peer)
            if key not in ids:
                ids[key] = len(found)
                found.append((key, peer))
    by_group = [0] * len(groups.reps)
    group_members: list[list[int]] = [[] for _ in groups.reps]
    for i, gid in enumerate(groups.of_pod):
        group_members[gid].append(i)
    addresses = _Addresses(eps)
    members: list[tuple[int, set[int]]] = []  # (peer bit, its pods) for the address-decided peers

    def groups_where(test: Callable[[Endpoint], bool]) -> set[int]:
        out: set[int] = set()
        for gid, rep in enumerate(groups.reps):
            if test(rep):
                out.update(group_members[gid])
        return out

    by_ns: dict[str, list[int]] = {}
    for gid, rep in enumerate(groups.reps):
        if rep.selectable:
            by_ns.setdefault(rep.namespace or "", []).append(gid)
    selected: dict[tuple[str, object], list[int]] = {}  # (namespace, pod selector) → its groups
    for pid, (key, peer) in enumerate(found):
        bit = 1 << pid
        if isinstance(peer, PodPeer):
            namespaces = ((peer.namespace,) if peer.namespace_selector is None
                          else state.namespaces_matching(peer.namespace_selector))
            everything = peer.pod_selector.is_empty
            for ns in namespaces:
                hit = selected.get((ns, key[2]))
                if hit is None:
                    hit = selected[(ns, key[2])] = [
                        gid for gid in by_ns.get(ns, ()) if everything or peer.pod_selector.matches(groups.reps[gid].labels)]
                for gid in hit:
                    by_group[gid] |= bit
        elif isinstance(peer, IPBlockPeer):
            pods = addresses.within((peer.network,)) - addresses.within(peer.except_networks)
            if not state.ipblock_matches_pods:
                pods = {i for i in pods if not eps[i].selectable}
            members.append((bit, pods))
        elif isinstance(peer, NetworkPeer):
            members.append((bit, addresses.within(peer.networks)))
        elif isinstance(peer, NodePeer):
            members.append((bit, addresses.at(state.node_addresses(peer.node_selector))))
        else:
            pos_sets = state.set_networks(peer, False) if peer.has_positive else ()
            neg_sets = state.set_networks(peer, True) if peer.not_selector is not None else ()
            if not (peer.nets or peer.not_nets or pos_sets or neg_sets):
                for gid, rep in enumerate(groups.reps):
                    if state.entity_matches(peer, rep):
                        by_group[gid] |= bit
                continue
            pods = set(range(len(eps)))
            if peer.nets:
                pods &= addresses.within(peer.networks)
            if peer.not_nets:
                pods -= addresses.within(peer.not_networks)
            if peer.has_positive:
                pods &= groups_where(partial(state.entity_pod_positive, peer)) | addresses.within(pos_sets)
            if peer.not_selector is not None:
                pods -= groups_where(partial(_not_selected, state, peer)) | addresses.within(neg_sets)
            members.append((bit, pods))
    of_pod = [by_group[gid] for gid in groups.of_pod]
    for bit, found_pods in members:
        for i in found_pods:
            of_pod[i] |= bit
    return _Peers(ids, of_pod)


def _not_selected(state: ClusterState, peer: EntityPeer, rep: Endpoint) -> bool:
    """Whether a pod's labels match the entity's notSelector."""
    return rep.selectable and peer.not_selector is not None and peer.not_selector.matches(state.calico_labels(rep))


# --- 3. classes -------------------------------------------------------------------------------


NamedPorts = frozenset[tuple[tuple[str, str], int]]


def _named(ep: Endpoint, wanted: Sequence[tuple[str, str]]) -> NamedPorts:
    """The pod's named ports that some rule refers to (``wanted``: their (name, protocol)
    pairs); the others cannot tell pods apart."""
    declared = ep.named_ports
    if not declared:
        return frozenset()
    return frozenset((k, declared[k]) for k in wanted if k in declared)


@dataclass(frozen=True)
class _Classes:
    of_pod: list[int]
    reps: list[int]  # a pod index per class
    count: int
    named: list[NamedPorts]  # per class, its named ports that some rule refers to

    @property
    def universe(self) -> int:
        return (1 << self.count) - 1


def _classes(eps: Sequence[Endpoint], groups: _Groups, peers: _Peers, names: Sequence[tuple[str, str]]) -> _Classes:
    ids: dict[tuple[object, ...], int] = {}
    of_pod: list[int] = []
    reps: list[int] = []
    named_of: list[NamedPorts] = []
    for i, ep in enumerate(eps):
        named = _named(ep, names)
        key = (groups.applying[groups.of_pod[i]], peers.of_pod[i], named, ep.ip_version)
        cid = ids.get(key)
        if cid is None:
            cid = ids[key] = len(reps)
            reps.append(i)
            named_of.append(named)
        of_pod.append(cid)
    return _Classes(of_pod, reps, len(reps), named_of)


# --- 4. rows ------------------------------------------------------------------------------------


#: the tiers of a class in one direction, each with the ids of its rules, in walk order
Program = tuple[tuple[TierInfo, tuple[int, ...]], ...]


class _Build:
    """What every traffic key shares: the rules, which classes their peers and ends match, and
    each class's tiers per direction."""

    def __init__(self, state: ClusterState, eps: Sequence[Endpoint]) -> None:
        self.eps = eps
        self.groups = groups = _groups(state, eps)
        used = sorted({p for applying in groups.applying for p in applying})
        self.rules: list[Rule] = []
        #: (policy index, direction) → its rule ids
        self.rules_of: dict[tuple[int, str], list[int]] = {}
        for p in used:
            for direction in DIRECTIONS:
                ids = self.rules_of.setdefault((p, direction), [])
                for rule in groups.policies[p].rules(direction):
                    ids.append(len(self.rules))
                    self.rules.append(rule)
        names = sorted({(pm.port, pm.protocol) for r in self.rules for pm in (*(r.ports or ()), *r.not_ports)
                        if isinstance(pm.port, str)})
        self.peers = peers = _peers(state, eps, groups, self.rules)
        self.classes = classes = _classes(eps, groups, peers, names)
        all_classes = classes.universe
        peer_members: list[list[int]] = [[] for _ in peers.ids]
        for cid, rep in enumerate(classes.reps):
            for pid in set_bits(peers.of_pod[rep]):
                peer_members[pid].append(cid)
        peer_classes = [bitset(m) for m in peer_members]

        def classes_of(rule_peers: Sequence[Peer] | None) -> int:
            if rule_peers is None:
                return all_classes
            bits = 0
            for peer in rule_peers:
                bits |= peer_classes[peers.ids[_peer_key(peer)]]
            return bits

        self.peers_c = [classes_of(r.peers) for r in self.rules]
        self.local_c = [all_classes if r.local is None else classes_of((r.local,)) for r in self.rules]
        #: rules whose applicability differs between subject classes (their own end, the IP
        #: version) or between destination classes (named ports)
        self.by_subject = [r.local is not None or r.ip_version is not None for r in self.rules]
        self.named_ports = [any(pm.is_named for pm in (*(r.ports or ()), *r.not_ports)) for r in self.rules]
        # What a class-dependent rule's answer depends on: the class's named ports, its address
        # family and which rule ends (Calico ``local`` entities) it belongs to.
        self.local_bit = [0 if r.local is None else 1 << peers.ids[_peer_key(r.local)] for r in self.rules]
        named_ids: dict[NamedPorts, int] = {}
        named_members: list[list[int]] = []
        self.profile: list[tuple[int, int, int]] = []
        for cid, rep in enumerate(classes.reps):
            named = classes.named[cid]
            nid = named_ids.setdefault(named, len(named_ids))
            if nid == len(named_members):
                named_members.append([])
            named_members[nid].append(cid)
            self.profile.append((nid, eps[rep].ip_version, peers.of_pod[rep]))
        #: each distinct set of (referenced) named ports, with the classes that declare it
        self.named_profiles = [(dict(named), bitset(named_members[nid])) for named, nid in named_ids.items()]
        self.tiers = {t.name: t for t in state.tiers}
        self._programs: dict[tuple[tuple[int, ...], str], Program] = {}
        self._group_programs: dict[tuple[int, str], Program] = {}  # (group, direction): the same
        self._dependent: dict[tuple[int, str], tuple[tuple[int, ...], bool, bool, int]] = {}
        self._slots: dict[str, list[tuple[Program, list[int], int]]] = {}

    def program(self, cid: int, direction: str) -> Program:
        """The tiers that apply to class ``cid`` in ``direction``, each with its rule ids in
        order; classes of one group share the same object."""
        groups = self.groups
        gid = groups.of_pod[self.classes.reps[cid]]
        hit = self._group_programs.get((gid, direction))
        if hit is not None:
            return hit
        applying = groups.applying[gid]
        key = (applying, direction)
        hit = self._programs.get(key)
        if hit is None:
            by_tier: dict[str, list[int]] = {}
            for p in applying:
                pol = groups.policies[p]
                if direction in pol.isolates:
                    by_tier.setdefault(pol.tier, []).extend(self.rules_of[(p, direction)])
            hit = self._programs[key] = tuple((self.tiers[t], tuple(ids)) for t, ids in by_tier.items())
        self._group_programs[(gid, direction)] = hit
        return hit

    def dependent(self, base: Program, direction: str) -> tuple[tuple[int, ...], bool, bool, int]:
        """A base program's class-dependent rules, and what they test: named ports (ingress),
        the IP version, which rule ends (as a mask of peer bits)."""
        slot = (id(base), direction)
        hit = self._dependent.get(slot)
        if hit is None:
            ingress = direction == "ingress"
            ids = [r for _, rule_ids in base for r in rule_ids
                   if self.by_subject[r] or (ingress and self.named_ports[r])]
            hit = self._dependent[slot] = (
                tuple(ids), ingress and any(self.named_ports[r] for r in ids),
                any(self.rules[r].ip_version is not None for r in ids),
                functools.reduce(operator.or_, (self.local_bit[r] for r in ids), 0))
        return hit

    def slots(self, direction: str) -> list[tuple[Program, list[int], int]]:
        """The classes grouped by what decides their rule program at any key: the base program
        and what its class-dependent rules test. Each slot is (base program, its classes, the
        same as a bitset), so a key costs one filter per slot, not per class."""
        hit = self._slots.get(direction)
        if hit is None:
            found: dict[tuple[object, ...], tuple[Program, list[int]]] = {}
            for cid in range(self.classes.count):
                base = self.program(cid, direction)
                key: tuple[object, ...] = ()
                if base:
                    ids, named, family, ends = self.dependent(base, direction)
                    named_id, version, members = self.profile[cid]
                    key = (id(base), named_id if named else None, version if family else None, members & ends)
                found.setdefault(key, (base, []))[1].append(cid)
            hit = self._slots[direction] = [(base, cids, bitset(cids)) for base, cids in found.values()]
        return hit


def compute_matrix(state: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                   pods: Iterable[Endpoint] | None = None) -> Matrix:
    """The full matrix over equivalence classes (see module docstring); pod rows are expanded
    from it only when printed or asked for (``Matrix.rows``, ``row``, ``row_bits``)."""
    eps = _select(state, pods)
    with _cyclic_gc_paused():
        build = _Build(state, eps)
        rows = {key: _class_rows(build, port, proto) for key, port, proto in traffic_keys(ports, protocols)}
        by_class = ClassRows(tuple(build.classes.of_pod), build.classes.count, rows, _always(eps))
    return Matrix.from_classes(tuple(e.key for e in eps), tuple(ports), tuple(p.upper() for p in protocols), by_class)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the matrix is computed: it makes millions of
    small lists, tuples and dicts, none in a cycle (reference counting frees them all), and
    each collection they trigger walks the whole heap: a third of the time at 100,000 pods."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _always(eps: Sequence[Endpoint]) -> dict[int, frozenset[int]]:
    """Per source pod, the other pods it always reaches: a node's own pods, from the node's
    hostNetwork pods (every pod also reaches itself)."""
    by_host_ip: dict[str, list[int]] = {}
    for j, ep in enumerate(eps):
        if ep.selectable and ep.host_ip:
            by_host_ip.setdefault(ep.host_ip, []).append(j)
    return {i: frozenset(by_host_ip[ep.ip]) for i, ep in enumerate(eps)
            if not ep.selectable and ep.ip and ep.ip in by_host_ip}


def _port_mask(build: _Build, port: int | None, proto: str) -> list[int]:
    """Per rule: the destination classes at which its ports (and notPorts, protocol matches)
    admit (port, proto)."""
    all_classes = build.classes.universe
    cache: dict[tuple[object, ...], int] = {}

    def mask(pms: Sequence[PortMatch]) -> int:
        key = tuple((pm.protocol, pm.port, pm.end_port) for pm in pms)
        hit = cache.get(key)
        if hit is not None:
            return hit
        bits = 0
        named = []
        for pm in pms:
            if pm.is_named:
                named.append(pm)
            elif pm.matches(port, proto, None):
                bits = all_classes
                break
        if bits != all_classes and named:
            for declared, classes in build.named_profiles:
                if any(pm.matches(port, proto, declared) for pm in named):
                    bits |= classes
        cache[key] = bits
        return bits

    out = []
    for rule in build.rules:
        bits = all_classes if rule.ports is None else mask(rule.ports)
        if rule.not_ports and bits:
            bits &= ~mask(rule.not_ports)
        if not rule.is_plain and bits:
            # ipVersion is the subject's; the rest does not depend on the class
            if not rule_protocol_matches(rule, proto, 4) and not rule_protocol_matches(rule, proto, 6):
                bits = 0
        out.append(bits)
    return out


def _transpose(by_sources: Mapping[int, int], count: int, everyone: int) -> list[int]:
    """Per source class, the destination classes whose ingress admits it, from "these source
    classes → these destination classes" (``everyone``: destinations admitting every source).

    Each source class first collects which of those sets it is in (a set with more than half
    the classes is listed by its complement, so this costs the smaller side), then the
    destination bitsets are ORed once per distinct collection: far fewer than the classes."""
    universe = (1 << count) - 1
    sets = list(by_sources.items())
    member_of: list[list[int]] = [[] for _ in range(count)]  # k: in set k; ~k: not in dense set k
    dense = 0
    for k, (sources, dst) in enumerate(sets):
        if sources == universe:
            everyone |= dst
        elif 2 * sources.bit_count() > count:
            dense |= dst
            for s in set_bits(universe & ~sources):
                member_of[s].append(~k)
        else:
            for s in set_bits(sources):
                member_of[s].append(k)
    done: dict[tuple[int, ...], int] = {}
    out = []
    for ks in member_of:
        key = tuple(ks)
        row = done.get(key)
        if row is None:
            listed = excluded = 0
            for k in key:
                if k >= 0:
                    listed |= sets[k][1]
                else:
                    excluded |= sets[~k][1]
            row = done[key] = everyone | listed | (dense & ~excluded)
        out.append(row)
    return out


def _class_rows(build: _Build, port: int | None, proto: str) -> tuple[int, ...]:
    """One key: per source class, the destination classes it reaches (egress walk of the
    source's program AND ingress walks of the destinations' programs). Equal rows share one
    int."""
    eps, classes, rules = build.eps, build.classes, build.rules
    universe = classes.universe
    pm = _port_mask(build, port, proto)
    filtered: dict[tuple[int, str, tuple[int, ...]], tuple[TierProgram, ...]] = {}

    def usable(rule_id: int, cid: int) -> bool:
        rule = rules[rule_id]
        if not (build.local_c[rule_id] >> cid) & 1:
            return False
        return rule.ip_version is None or rule.ip_version == eps[classes.reps[cid]].ip_version

    def admits(r: int, cid: int, ingress: bool) -> bool:
        if not ((pm[r] >> cid) & 1 if ingress else pm[r]):
            return False
        return not build.by_subject[r] or usable(r, cid)

    def program_at(base: Program, cid: int, direction: str) -> tuple[TierProgram, ...]:
        """``base`` without the rules that cannot match this key at class ``cid`` (and every
        class of its slot). Only rules with named ports (at the destination) or a Calico rule's
        own end or IP version depend on the class; the base is filtered once per answer."""
        ingress = direction == "ingress"
        answer = tuple(r for r in build.dependent(base, direction)[0] if admits(r, cid, ingress))
        key = (id(base), direction, answer)
        hit = filtered.get(key)
        if hit is None:
            keep = set(answer)
            hit = filtered[key] = tuple(
                (tier, tuple((r, rules[r].action) for r in ids
                             if (r in keep if build.by_subject[r] or (ingress and build.named_ports[r])
                                 else bool(pm[r]))))
                for tier, ids in base)
        return hit

    # ingress: destination classes grouped by their program, each program walked over sources.
    by_program: dict[tuple[TierProgram, ...], int] = {}
    always_in = 0
    for base, cids, cbits in build.slots("ingress"):
        if not base:
            always_in |= cbits
            continue
        program = program_at(base, cids[0], "ingress")
        by_program[program] = by_program.get(program, 0) | cbits
    by_sources: dict[int, int] = {}
    for program, dst_classes in by_program.items():
        sources = allowed_bits(walk_bits(program, build.peers_c.__getitem__, universe), universe)
        by_sources[sources] = by_sources.get(sources, 0) | dst_classes
    admitted = _transpose(by_sources, classes.count, always_in)
    # egress: each source class's program, walked over destination classes.
    walked: dict[tuple[TierProgram, ...], int] = {}
    rows = [0] * classes.count
    distinct: dict[int, int] = {}
    for base, cids, _ in build.slots("egress"):
        dests = universe
        if base:
            program = program_at(base, cids[0], "egress")
            hit = walked.get(program)
            if hit is None:
                hit = walked[program] = allowed_bits(
                    walk_bits(program, lambda r: build.peers_c[r] & pm[r], universe), universe)
            dests = hit
        for cid in cids:
            row = dests & admitted[cid]
            rows[cid] = distinct.setdefault(row, row)
    return tuple(rows)
