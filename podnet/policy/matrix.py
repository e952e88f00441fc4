"""The connectivity matrix (rows = sources, columns = destinations) without pair-by-pair work.

Pods fall into equivalence classes: same namespace and labels (after selector evaluation,
only which policies select them and which peers match them counts), same named ports, same
ipBlock membership. Selectors are evaluated once per label group, peers become bitsets over
classes, and each row is assembled with a handful of big-integer AND/OR operations (Python
ints as bitsets: bit j of a pod-level row is destination pod j). ``reference_matrix`` computes
the same table pair by pair with ``cluster.allowed``; property tests hold the two equal.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .cluster import ICMP, ClusterState, Endpoint, allowed
from .ir import IPBlockPeer, PodPeer, PortMatch, Rule


@dataclass(frozen=True)
class Matrix:
    """Truth tables per ``"PORT/PROTO"`` key (``"ICMP"`` for ICMP); rows as int bitsets."""

    pods: tuple[str, ...]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    rows: dict[str, tuple[int, ...]]
    #: how many equivalence classes the pods fell into (0 for the reference evaluator)
    classes: int = 0

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


def _ip_int(ip: str | None) -> tuple[int, int] | None:
    if not ip:
        return None
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def _block_test(block: IPBlockPeer) -> Callable[[tuple[int, int]], bool]:
    net = block.network
    bits = net.max_prefixlen
    version, base, mask = net.version, int(net.network_address), ((1 << bits) - 1) ^ ((1 << (bits - net.prefixlen)) - 1)
    excepts = [(int(e.network_address), ((1 << bits) - 1) ^ ((1 << (bits - e.prefixlen)) - 1)) for e in block.except_networks]

    def test(ip: tuple[int, int]) -> bool:
        if ip[0] != version or ip[1] & mask != base:
            return False
        return not any(ip[1] & m == b for b, m in excepts)

    return test


def _set_bits(value: int) -> list[int]:
    s = bin(value)[:1:-1]
    return [i for i, ch in enumerate(s) if ch == "1"]


def compute_matrix(state: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                   pods: Iterable[Endpoint] | None = None) -> Matrix:
    """The full matrix over equivalence classes (see module docstring)."""
    eps = _select(state, pods)
    n = len(eps)
    all_pods = (1 << n) - 1
    policies = state.policies

    # 1. label groups: selectors are evaluated once per (namespace, labels) group.
    group_ids: dict[tuple, int] = {}
    group_of: list[int] = []
    group_labels: list[dict[str, str]] = []
    groups_by_ns: dict[str, list[int]] = {}
    for ep in eps:
        gkey = (ep.namespace, frozenset(ep.labels.items()), ep.selectable)
        gid = group_ids.get(gkey)
        if gid is None:
            gid = group_ids[gkey] = len(group_labels)
            group_labels.append(dict(ep.labels))
            if ep.selectable:
                groups_by_ns.setdefault(ep.namespace or "", []).append(gid)
        group_of.append(gid)
    ngroups = len(group_labels)
    sel_in: list[list[int]] = [[] for _ in range(ngroups)]
    sel_eg: list[list[int]] = [[] for _ in range(ngroups)]
    for j, pol in enumerate(policies):
        for gid in groups_by_ns.get(pol.namespace, ()):
            if pol.pod_selector.matches(group_labels[gid]):
                if "ingress" in pol.isolates:
                    sel_in[gid].append(j)
                if "egress" in pol.isolates:
                    sel_eg[gid].append(j)

    # 2. rules and their peers: pod peers become "terms" (scope, pod selector), ipBlocks "blocks".
    rules: list[Rule] = []
    rules_of: dict[tuple[int, str], list[int]] = {}
    term_ids: dict[tuple, int] = {}
    term_peers: list[PodPeer] = []
    block_ids: dict[tuple, int] = {}
    block_peers: list[IPBlockPeer] = []
    rule_terms: list[list[int]] = []
    rule_blocks: list[list[int]] = []
    for j, pol in enumerate(policies):
        for direction in ("ingress", "egress"):
            ids = rules_of.setdefault((j, direction), [])
            for rule in pol.rules(direction):  # type: ignore[arg-type]
                ids.append(len(rules))
                rules.append(rule)
                terms, blocks = [], []
                for peer in rule.peers or ():
                    if isinstance(peer, IPBlockPeer):
                        bkey = (peer.cidr, peer.excepts)
                        if bkey not in block_ids:
                            block_ids[bkey] = len(block_peers)
                            block_peers.append(peer)
                        blocks.append(block_ids[bkey])
                    else:
                        scope = (("ns", peer.namespace) if peer.namespace_selector is None
                                 else ("sel", json.dumps(peer.namespace_selector.to_dict(), sort_keys=True)))
                        tkey = (scope, json.dumps(peer.pod_selector.to_dict(), sort_keys=True))
                        if tkey not in term_ids:
                            term_ids[tkey] = len(term_peers)
                            term_peers.append(peer)
                        terms.append(term_ids[tkey])
                rule_terms.append(terms)
                rule_blocks.append(blocks)

    group_terms: list[set[int]] = [set() for _ in range(ngroups)]
    ns_cache: dict[str, list[str]] = {}
    for tid, peer in enumerate(term_peers):
        if peer.namespace_selector is None:
            namespaces = [peer.namespace]
        else:
            skey = json.dumps(peer.namespace_selector.to_dict(), sort_keys=True)
            if skey not in ns_cache:
                sel = peer.namespace_selector
                ns_cache[skey] = [ns for ns in groups_by_ns if sel.matches(state.ns_labels(ns))]
            namespaces = ns_cache[skey]
        everything = peer.pod_selector.is_empty
        for ns in namespaces:
            for gid in groups_by_ns.get(ns, ()):
                if everything or peer.pod_selector.matches(group_labels[gid]):
                    group_terms[gid].add(tid)

    block_tests = [_block_test(b) for b in block_peers]
    pod_blocks: list[int] = []
    for ep in eps:
        bits = 0
        ip = _ip_int(ep.ip)
        if ip is not None and block_tests and (state.ipblock_matches_pods or not ep.selectable):
            for bid, test in enumerate(block_tests):
                if test(ip):
                    bits |= 1 << bid
        pod_blocks.append(bits)

    # 3. equivalence classes.
    sig_ids: dict[tuple, int] = {}
    group_sig: list[int] = []
    for gid in range(ngroups):
        sig = (tuple(sel_in[gid]), tuple(sel_eg[gid]), frozenset(group_terms[gid]))
        group_sig.append(sig_ids.setdefault(sig, len(sig_ids)))
    class_ids: dict[tuple, int] = {}
    class_of: list[int] = []
    class_rep: list[int] = []
    class_pods: list[int] = []
    for i, ep in enumerate(eps):
        ckey = (group_sig[group_of[i]], frozenset(ep.named_ports.items()), pod_blocks[i])
        cid = class_ids.get(ckey)
        if cid is None:
            cid = class_ids[ckey] = len(class_rep)
            class_rep.append(i)
            class_pods.append(0)
        class_pods[cid] |= 1 << i
        class_of.append(cid)
    nclasses = len(class_rep)
    all_classes = (1 << nclasses) - 1

    term_classes = [0] * len(term_peers)
    block_classes = [0] * len(block_peers)
    for cid, rep in enumerate(class_rep):
        for tid in group_terms[group_of[rep]]:
            term_classes[tid] |= 1 << cid
        for bid in _set_bits(pod_blocks[rep]):
            block_classes[bid] |= 1 << cid
    peers_c: list[int] = []
    for r, rule in enumerate(rules):
        if rule.peers is None:
            peers_c.append(all_classes)
            continue
        bits = 0
        for tid in rule_terms[r]:
            bits |= term_classes[tid]
        for bid in rule_blocks[r]:
            bits |= block_classes[bid]
        peers_c.append(bits)

    expand_cache: dict[int, int] = {}

    def expand(cbits: int) -> int:
        """Class bitset → pod bitset."""
        if cbits == all_classes:
            return all_pods
        hit = expand_cache.get(cbits)
        if hit is None:
            hit = 0
            for cid in _set_bits(cbits):
                hit |= class_pods[cid]
            expand_cache[cbits] = hit
        return hit

    # self and node-to-own-pod are always allowed.
    extra = [1 << i for i in range(n)]
    by_host_ip: dict[str, int] = {}
    for j, ep in enumerate(eps):
        if ep.selectable and ep.host_ip:
            by_host_ip[ep.host_ip] = by_host_ip.get(ep.host_ip, 0) | (1 << j)
    for i, ep in enumerate(eps):
        if not ep.selectable and ep.ip in by_host_ip:
            extra[i] |= by_host_ip[ep.ip]  # type: ignore[index]

    class_named = [dict(eps[rep].named_ports) for rep in class_rep]
    iso_in_classes = [cid for cid, rep in enumerate(class_rep) if sel_in[group_of[rep]]]
    iso_in_pods = 0
    for cid in iso_in_classes:
        iso_in_pods |= class_pods[cid]
    open_in = all_pods & ~iso_in_pods

    rows: dict[str, tuple[int, ...]] = {}
    for key, port, proto in traffic_keys(ports, protocols):
        portmask_cache: dict[tuple, int] = {}

        def portmask(rule: Rule) -> int:
            """Destination classes at which ``rule``'s ports admit (port, proto)."""
            if rule.ports is None:
                return all_classes
            if proto == ICMP:
                return 0
            pkey = tuple((pm.protocol, pm.port, pm.end_port) for pm in rule.ports)
            hit = portmask_cache.get(pkey)
            if hit is not None:
                return hit
            bits = 0
            named: list[PortMatch] = []
            for pm in rule.ports:
                if pm.is_named:
                    named.append(pm)
                elif pm.matches(port, proto, None):
                    bits = all_classes
                    break
            if bits != all_classes and named:
                for cid in range(nclasses):
                    if any(pm.matches(port, proto, class_named[cid]) for pm in named):
                        bits |= 1 << cid
            portmask_cache[pkey] = bits
            return bits

        pm_rule = [portmask(rule) for rule in rules]

        # ingress: destination classes grouped by the set of rules that apply to them.
        in_sig: dict[tuple[int, ...], int] = {}
        for cid in iso_in_classes:
            bit = 1 << cid
            applicable = tuple(r for j in sel_in[group_of[class_rep[cid]]] for r in rules_of[(j, "ingress")]
                               if pm_rule[r] & bit)
            in_sig[applicable] = in_sig.get(applicable, 0) | class_pods[cid]
        always_in = open_in
        in_t: dict[int, int] = {}
        for applicable, dst_pods in in_sig.items():
            sources = 0
            for r in applicable:
                sources |= peers_c[r]
            if sources == all_classes:
                always_in |= dst_pods
                continue
            for s in _set_bits(sources):
                in_t[s] = in_t.get(s, 0) | dst_pods

        # egress: source classes grouped by the policies that isolate them.
        eg_cache: dict[tuple[int, ...], int] = {}
        out_rows: list[int] = []
        class_row: list[int] = []
        for cid, rep in enumerate(class_rep):
            sel = tuple(sel_eg[group_of[rep]])
            if sel:
                e_pods = eg_cache.get(sel)
                if e_pods is None:
                    bits = 0
                    for j in sel:
                        for r in rules_of[(j, "egress")]:
                            bits |= peers_c[r] & pm_rule[r]
                    e_pods = eg_cache[sel] = expand(bits)
            else:
                e_pods = all_pods
            class_row.append(e_pods & (always_in | in_t.get(cid, 0)))
        for i in range(n):
            out_rows.append(class_row[class_of[i]] | extra[i])
        rows[key] = tuple(out_rows)
    return Matrix(tuple(e.key for e in eps), tuple(ports), tuple(p.upper() for p in protocols), rows, nclasses)
