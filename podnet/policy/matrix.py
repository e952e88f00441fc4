"""The connectivity matrix (rows = sources, columns = destinations) without pair-by-pair work.

Pods fall into equivalence classes: same policies applying (after selector evaluation), same
membership in every peer of every rule (which depends on labels and, for ipBlocks, networks,
nodes and Calico entities, on the address), same named ports. The work is split where tiers
need it:

1. ``_groups``: pods by (namespace, labels, service account): every selector decides a group
   alike, so which policies apply is computed once per group;
2. ``_peers``: every distinct peer (and Calico rule end) becomes one bit; each pod gets the set
   of peers it belongs to (per group for label-only peers, per address for the others);
3. ``_classes``: pods with the same applying policies, peer bits and named ports;
4. ``_rows_for(key)``: per traffic key, the walk (``walk_bits``) over source classes for each
   destination class's ingress and over destination classes for each source class's egress,
   tier by tier, keeping per tier which classes it allowed, denied and passed on. Equal rule
   programs share one walk. Rows are Python ints (bit j: destination pod j).

``reference_matrix`` computes the same table pair by pair with ``walk.allowed``; property tests
hold the two equal.
"""
from __future__ import annotations

import bisect
import functools
import ipaddress
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

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
    """Truth tables per ``"PORT/PROTO"`` key (``"ICMP"`` for ICMP); rows as int bitsets."""

    pods: tuple[str, ...]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    rows: dict[str, tuple[int, ...]]
    #: how many equivalence classes the pods fell into (0 for the reference evaluator), and each
    #: pod's class (pods of one class have equal rows but for themselves and their node)
    classes: int = 0
    class_of: tuple[int, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def allowed(self, key: str, src: int, dst: int) -> bool:
        return bool((self.rows[key][src] >> dst) & 1)

    def table(self, key: str) -> list[list[bool]]:
        n = len(self.pods)
        out = []
        for row in self.rows[key]:
            bits = format(row, f"0{n}b")[::-1] if n else ""
            out.append([b == "1" for b in bits])
        return out

    def to_json(self) -> dict[str, object]:
        """The contract: pods sorted, row index = source, column index = destination."""
        return {
            "pods": list(self.pods),
            "ports": list(self.ports),
            "protocols": list(self.protocols),
            "allowed": {key: self.table(key) for key in self.rows},
        }

    def iter_json(self) -> Iterator[str]:
        """``json.dumps(self.to_json())`` in pieces, one per row: the same text without building
        the nested lists of booleans (at 100,000 pods the lists, not the matrix, filled memory
        and time). Each row is turned into text at C speed from its bit string."""
        n = len(self.pods)
        yield (f'{{"pods": {json.dumps(list(self.pods))}, "ports": {json.dumps(list(self.ports))}, '
               f'"protocols": {json.dumps(list(self.protocols))}, "allowed": {{')
        for k, key in enumerate(self.rows):
            yield f'{", " if k else ""}{json.dumps(key)}: ['
            for i, row in enumerate(self.rows[key]):
                bits = format(row, f"0{n}b")[::-1] if n else ""
                cells = ", ".join(bits).replace("1", "true").replace("0", "false")
                yield f"{', ' if i else ''}[{cells}]"
            yield "]"
        yield "}}"

    def render_table(self, key: str) -> str:
        """The Kubernetes e2e truth table: ``.`` allowed, ``X`` denied."""
        names = list(self.pods)
        width = max([len(p) for p in names] + [2])
        lines = [f"{key}".ljust(width) + "  " + " ".join(names)]
        for i, row in enumerate(self.table(key)):
            cells = " ".join(("." if ok else "X").center(len(names[j])) for j, ok in enumerate(row))
            lines.append(names[i].ljust(width) + "  " + cells)
        return "\n".join(lines)

    def render_csv(self) -> str:
        lines = ["key,from,to,allowed"]
        for key in self.rows:
            table = self.table(key)
            for i, src in enumerate(self.pods):
                for j, dst in enumerate(self.pods):
                    lines.append(f"{key},{src},{dst},{str(table[i][j]).lower()}")
        return "\n".join(lines) + "\n"

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


def set_bits(value: int) -> list[int]:
    """The positions of the 1 bits, lowest first (``str.find`` skips the zeros at C speed)."""
    text = bin(value)[:1:-1]
    out = []
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


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
    index = {id(p): i for i, p in enumerate(state.ordered)}
    applying = [tuple(index[id(p)] for p in state.applying(rep)) for rep in reps]
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


class _Addresses:
    """The pods' addresses, sorted, so "which pods lie in this network" is two bisections."""

    def __init__(self, eps: Sequence[Endpoint]) -> None:
        self.sorted: dict[int, tuple[list[int], list[int]]] = {}
        pairs: dict[int, list[tuple[int, int]]] = {}
        self.by_ip: dict[str, int] = {}
        for i, ep in enumerate(eps):
            if not ep.ip:
                continue
            addr = ipaddress.ip_address(ep.ip)
            pairs.setdefault(addr.version, []).append((int(addr), i))
            self.by_ip[ep.ip] = self.by_ip.get(ep.ip, 0) | (1 << i)
        for version, items in pairs.items():
            items.sort()
            self.sorted[version] = ([a for a, _ in items], [i for _, i in items])
        self._memo: dict[tuple[int, int, int], int] = {}

    def within(self, nets: Sequence[IPNetwork]) -> int:
        """The pods (as a bitset) whose address lies in any of ``nets``."""
        out = 0
        for version, first, last in _masks(nets):
            key = (version, first, last)
            hit = self._memo.get(key)
            if hit is None:
                hit = 0
                found = self.sorted.get(version)
                if found is not None:
                    addrs, idx = found
                    for k in range(bisect.bisect_left(addrs, first), bisect.bisect_right(addrs, last)):
                        hit |= 1 << idx[k]
                self._memo[key] = hit
            out |= hit
        return out

    def at(self, ips: Iterable[str]) -> int:
        out = 0
        for ip in ips:
            out |= self.by_ip.get(ip, 0)
        return out


@dataclass(frozen=True)
class _Peers:
    """Every distinct peer gets a bit; ``of_pod[i]`` is the set of peers pod i belongs to."""

    ids: dict[tuple[object, ...], int]
    of_pod: list[int]


def _peers(state: ClusterState, eps: Sequence[Endpoint], groups: _Groups, rules: Sequence[Rule]) -> _Peers:
    """Label-only peers are decided once per group; the others (ipBlocks, networks, nodes, Calico
    entities with addresses) as bitsets over pods, from the sorted addresses."""
    ids: dict[tuple[object, ...], int] = {}
    found: list[Peer] = []
    for rule in rules:
        for peer in (*(rule.peers or ()), *((rule.local,) if rule.local is not None else ())):
            key = _peer_key(peer)
            if key not in ids:
                ids[key] = len(found)
                found.append(peer)
    by_group = [0] * len(groups.reps)
    group_pods = [0] * len(groups.reps)
    for i, gid in enumerate(groups.of_pod):
        group_pods[gid] |= 1 << i
    selectable = 0
    for i, ep in enumerate(eps):
        if ep.selectable:
            selectable |= 1 << i
    addresses = _Addresses(eps)
    members: list[tuple[int, int]] = []  # (peer bit, its pods) for the address-decided peers

    def groups_where(test: Callable[[Endpoint], bool]) -> int:
        out = 0
        for gid, rep in enumerate(groups.reps):
            if test(rep):
                out |= group_pods[gid]
        return out

    by_ns: dict[str, list[int]] = {}
    for gid, rep in enumerate(groups.reps):
        if rep.selectable:
            by_ns.setdefault(rep.namespace or "", []).append(gid)
    for pid, peer in enumerate(found):
        bit = 1 << pid
        if isinstance(peer, PodPeer):
            namespaces = ((peer.namespace,) if peer.namespace_selector is None
                          else state.namespaces_matching(peer.namespace_selector))
            everything = peer.pod_selector.is_empty
            for ns in namespaces:
                for gid in by_ns.get(ns, ()):
                    if everything or peer.pod_selector.matches(groups.reps[gid].labels):
                        by_group[gid] |= bit
        elif isinstance(peer, IPBlockPeer):
            pods = addresses.within((peer.network,)) & ~addresses.within(peer.except_networks)
            if not state.ipblock_matches_pods:
                pods &= ~selectable
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
            pods = (1 << len(eps)) - 1
            if peer.nets:
                pods &= addresses.within(peer.networks)
            if peer.not_nets:
                pods &= ~addresses.within(peer.not_networks)
            if peer.has_positive:
                pods &= groups_where(partial(state.entity_pod_positive, peer)) | addresses.within(pos_sets)
            if peer.not_selector is not None:
                pods &= ~(groups_where(partial(_not_selected, state, peer)) | addresses.within(neg_sets))
            members.append((bit, pods))
    of_pod = [by_group[gid] for gid in groups.of_pod]
    for bit, pods in members:
        for i in set_bits(pods):
            of_pod[i] |= bit
    return _Peers(ids, of_pod)


def _not_selected(state: ClusterState, peer: EntityPeer, rep: Endpoint) -> bool:
    """Whether a pod's labels match the entity's notSelector."""
    return rep.selectable and peer.not_selector is not None and peer.not_selector.matches(state.calico_labels(rep))


# --- 3. classes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Classes:
    of_pod: list[int]
    reps: list[int]  # a pod index per class
    pods: list[int]  # per class, its pods as a bitset
    count: int

    @property
    def universe(self) -> int:
        return (1 << self.count) - 1


def _classes(eps: Sequence[Endpoint], groups: _Groups, peers: _Peers) -> _Classes:
    ids: dict[tuple[object, ...], int] = {}
    of_pod: list[int] = []
    reps: list[int] = []
    pods: list[int] = []
    for i, ep in enumerate(eps):
        key = (groups.applying[groups.of_pod[i]], peers.of_pod[i], frozenset(ep.named_ports.items()), ep.ip_version)
        cid = ids.get(key)
        if cid is None:
            cid = ids[key] = len(reps)
            reps.append(i)
            pods.append(0)
        pods[cid] |= 1 << i
        of_pod.append(cid)
    return _Classes(of_pod, reps, pods, len(reps))


# --- 4. rows ------------------------------------------------------------------------------------


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
        self.peers = peers = _peers(state, eps, groups, self.rules)
        self.classes = classes = _classes(eps, groups, peers)
        all_classes = classes.universe
        peer_classes = [0] * len(peers.ids)
        for cid, rep in enumerate(classes.reps):
            for pid in set_bits(peers.of_pod[rep]):
                peer_classes[pid] |= 1 << cid

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
        self.named = [dict(eps[rep].named_ports) for rep in classes.reps]
        # What a class-dependent rule's answer depends on: the class's named ports, its address
        # family and which rule ends (Calico ``local`` entities) it belongs to.
        self.local_bit = [0 if r.local is None else 1 << peers.ids[_peer_key(r.local)] for r in self.rules]
        named_ids: dict[frozenset[tuple[tuple[str, str], int]], int] = {}
        self.profile = [(named_ids.setdefault(frozenset(eps[rep].named_ports.items()), len(named_ids)),
                         eps[rep].ip_version, peers.of_pod[rep]) for rep in classes.reps]
        self.tiers = {t.name: t for t in state.tiers}
        self._programs: dict[tuple[tuple[int, ...], str], Program] = {}
        self._dependent: dict[tuple[int, str], tuple[tuple[int, ...], bool, bool, int]] = {}

    def program(self, cid: int, direction: str) -> Program:
        """The tiers that apply to class ``cid`` in ``direction``, each with its rule ids in
        order; classes of one group share the same object."""
        groups = self.groups
        applying = groups.applying[groups.of_pod[self.classes.reps[cid]]]
        key = (applying, direction)
        hit = self._programs.get(key)
        if hit is None:
            by_tier: dict[str, list[int]] = {}
            for p in applying:
                pol = groups.policies[p]
                if direction in pol.isolates:
                    by_tier.setdefault(pol.tier, []).extend(self.rules_of[(p, direction)])
            hit = self._programs[key] = tuple((self.tiers[t], tuple(ids)) for t, ids in by_tier.items())
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


#: the tiers of a class in one direction, each with the ids of its rules, in walk order
Program = tuple[tuple[TierInfo, tuple[int, ...]], ...]


def compute_matrix(state: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                   pods: Iterable[Endpoint] | None = None) -> Matrix:
    """The full matrix over equivalence classes (see module docstring)."""
    eps = _select(state, pods)
    build = _Build(state, eps)
    rows = {key: _rows_for(build, port, proto) for key, port, proto in traffic_keys(ports, protocols)}
    return Matrix(tuple(e.key for e in eps), tuple(ports), tuple(p.upper() for p in protocols), rows,
                  build.classes.count, tuple(build.classes.of_pod))


def _always(eps: Sequence[Endpoint]) -> list[int]:
    """Per source pod: the destinations it always reaches (itself; a node's own pods)."""
    extra = [1 << i for i in range(len(eps))]
    by_host_ip: dict[str, int] = {}
    for j, ep in enumerate(eps):
        if ep.selectable and ep.host_ip:
            by_host_ip[ep.host_ip] = by_host_ip.get(ep.host_ip, 0) | (1 << j)
    for i, ep in enumerate(eps):
        if not ep.selectable and ep.ip and ep.ip in by_host_ip:
            extra[i] |= by_host_ip[ep.ip]
    return extra


def _port_mask(build: _Build, port: int | None, proto: str) -> list[int]:
    """Per rule: the destination classes at which its ports (and notPorts, protocol matches)
    admit (port, proto)."""
    classes = build.classes
    all_classes = classes.universe
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
            for cid in range(classes.count):
                if any(pm.matches(port, proto, build.named[cid]) for pm in named):
                    bits |= 1 << cid
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


def _rows_for(build: _Build, port: int | None, proto: str) -> tuple[int, ...]:
    eps, classes, rules = build.eps, build.classes, build.rules
    n, universe = len(eps), classes.universe
    all_pods = (1 << n) - 1
    pm = _port_mask(build, port, proto)
    filtered: dict[tuple[tuple[int, str], tuple[int, ...]], tuple[TierProgram, ...]] = {}

    def usable(rule_id: int, cid: int) -> bool:
        rule = rules[rule_id]
        if not (build.local_c[rule_id] >> cid) & 1:
            return False
        return rule.ip_version is None or rule.ip_version == eps[classes.reps[cid]].ip_version

    answers: dict[tuple[object, ...], tuple[int, ...]] = {}

    def program_at(base: Program, cid: int, direction: str) -> tuple[TierProgram, ...]:
        """``base`` without the rules that cannot match this key at class ``cid``. Only rules
        with named ports (at the destination) or a Calico rule's own end or IP version depend on
        the class, and only through what they test (the class's named ports, family, membership
        of those rule ends): their answer is computed once per distinct such profile, and the
        base filtered once per distinct answer."""
        ingress = direction == "ingress"
        slot = (id(base), direction)
        deps = build.dependent(base, direction)
        named_id, family, members = build.profile[cid]
        profile = (slot, named_id if deps[1] else None, family if deps[2] else None, members & deps[3])
        answer = answers.get(profile)
        if answer is None:
            answer = answers[profile] = tuple(r for r in deps[0] if admits(r, cid, ingress))
        key = (slot, answer)
        hit = filtered.get(key)
        if hit is None:
            keep = set(answer)
            hit = filtered[key] = tuple(
                (tier, tuple((r, rules[r].action) for r in ids
                             if (r in keep if build.by_subject[r] or (ingress and build.named_ports[r])
                                 else bool(pm[r]))))
                for tier, ids in base)
        return hit

    def admits(r: int, cid: int, ingress: bool) -> bool:
        if not ((pm[r] >> cid) & 1 if ingress else pm[r]):
            return False
        return not build.by_subject[r] or usable(r, cid)

    # ingress: destination classes grouped by their program, each program walked over sources.
    by_program: dict[tuple[TierProgram, ...], int] = {}
    always_in = 0
    for cid in range(classes.count):
        base = build.program(cid, "ingress")
        if not base:
            always_in |= classes.pods[cid]
            continue
        program = program_at(base, cid, "ingress")
        by_program[program] = by_program.get(program, 0) | classes.pods[cid]
    # Destination pods by the source classes they admit (many programs admit the same sources);
    # each distinct set is transposed once, listed when it is small, else as "every source but
    # these", so the transposition costs the smaller side.
    by_sources: dict[int, int] = {}
    for program, dst_pods in by_program.items():
        sources = allowed_bits(walk_bits(program, lambda r: build.peers_c[r], universe), universe)
        by_sources[sources] = by_sources.get(sources, 0) | dst_pods
    in_t: dict[int, int] = {}
    dense_pods = 0
    not_in: dict[int, int] = {}
    for sources, dst_pods in by_sources.items():
        if sources == universe:
            always_in |= dst_pods
        elif 2 * sources.bit_count() > classes.count:
            dense_pods |= dst_pods
            for s in set_bits(universe & ~sources):
                not_in[s] = not_in.get(s, 0) | dst_pods
        else:
            for s in set_bits(sources):
                in_t[s] = in_t.get(s, 0) | dst_pods
    # egress: each source class's program, walked over destination classes.
    expand_cache: dict[int, int] = {}

    def expand(cbits: int) -> int:
        if cbits == universe:
            return all_pods
        hit = expand_cache.get(cbits)
        if hit is None:
            hit = 0
            for c in set_bits(cbits):
                hit |= classes.pods[c]
            expand_cache[cbits] = hit
        return hit

    eg_cache: dict[tuple[TierProgram, ...], int] = {}
    class_row: list[int] = []
    for cid in range(classes.count):
        base = build.program(cid, "egress")
        if base:
            program = program_at(base, cid, "egress")
            e_pods = eg_cache.get(program)
            if e_pods is None:
                dests = allowed_bits(walk_bits(program, lambda r: build.peers_c[r] & pm[r], universe), universe)
                e_pods = eg_cache[program] = expand(dests)
        else:
            e_pods = all_pods
        admitted = always_in | in_t.get(cid, 0) | (dense_pods & ~not_in.get(cid, 0))
        class_row.append(e_pods & admitted)
    extra = _always(eps)
    return tuple(class_row[classes.of_pod[i]] | extra[i] for i in range(n))
