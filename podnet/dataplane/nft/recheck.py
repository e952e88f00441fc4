"""Which tracked flows a committed policy change must cut, and how (pure).

The forward chain accepts ``ct state established,related`` before any policy, so a flow the old
rules allowed would keep flowing after they tighten until its conntrack entry times out (30 s
of silence for UDP and ICMP, days for TCP). After a commit the policy loop therefore holds the
tracked flows of the pods whose rules changed to the new policy:

1. ``pods_to_recheck``: which of this node's pods' rules the commit changed. A pod's rules are
   its dispatch entries (its elements in the membership sets ``from-<h>``/``to-<h>``, or in the
   tiered table's ``from-pod``/``to-pod`` maps, and in ``pod-ifaces``) and every chain
   reachable from their verdicts, with the sets those chains look up; so: the pods whose
   dispatch entries the change replaced or removed (a new pod's first entries name nobody: its
   packets were dropped until then, so it has no flows), and those whose verdict reaches a chain that was
   rewritten, added or removed or that looks up a set whose elements changed. The dispatch
   chains themselves (``from-wl``, ``to-wl``) are rewritten when a signature chain comes or
   goes; what that changes for a pod is its dispatch entry, so they do not count as changed
   chains. A change the table's shape does not localise (the table replaced, a base chain
   rewritten) names every pod of the node.
2. ``judge_flows``: each tracked flow to or from those pods, held to the policy engine's
   decision for it (the decision the rules make for a new connection): denied ones get
   ``FLOW_DENIED_MARK`` (the forward chain's first rule drops their packets both ways), marked
   ones the policy allows again are released, flows of pods that are gone are deleted.

Deleting a denied flow's entry instead would not cut it: with ``nf_conntrack_tcp_loose`` the
responder's next packet (a delayed ACK, a retransmission, a UDP answer) opens a new entry in
the reverse direction, which the responder's own (often open) egress policy accepts, and the
initiator's packets then pass as its replies. The mark keeps the entry and its direction.
Allowed flows are not touched at all.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podnet.policy.cluster import ClusterState
from podnet.policy.evaluate import evaluate

from .dispatch import FROM_MAP, FROM_WL, POD_IFACES, TO_WL, DispatchIndex, is_dispatch, is_member_set
from .flows import FlowVerdicts, TrackedFlow
from .model import MapKey, NftChain, Verdict

_TARGET = re.compile(r'"(?:jump|goto)":\{"target":"([^"]+)"\}')
_SET_REF = re.compile(r'"@([^"]+)"')
#: the dispatch chains: a pod's part of them is its dispatch entry
_DISPATCH_CHAINS = frozenset((FROM_WL, TO_WL))


@dataclass(frozen=True)
class ChangedObjects:
    """What one committed transaction touched, by name."""

    chains: frozenset[str]
    sets: frozenset[str]
    #: interface names and addresses in the dispatch entries (and anti-spoofing interface
    #: set elements) deleted (or replaced)
    dispatch_keys: frozenset[str]
    #: the table itself was created, deleted or flushed: nothing can be localised
    whole_table: bool


def changed_objects(commands: Iterable[Mapping[str, Any]]) -> ChangedObjects:
    """Read the names a transaction's commands (nftables JSON, as ``plan_sync`` and the live
    table's updates write them) change."""
    chains: set[str] = set()
    sets: set[str] = set()
    keys: set[str] = set()
    #: pods entering a membership set: (their interface, the element's strings)
    entering: list[tuple[str, list[str]]] = []
    new_ifaces: set[str] = set()
    whole = False
    for cmd in commands:
        for verb, body in cmd.items():
            for kind, obj in body.items():
                if kind == "table":
                    whole = True
                elif kind == "chain":
                    if obj["name"] not in _DISPATCH_CHAINS:
                        chains.add(obj["name"])
                elif kind == "rule":
                    if obj["chain"] not in _DISPATCH_CHAINS:
                        chains.add(obj["chain"])
                elif kind in ("set", "map"):
                    if not is_dispatch(obj["name"]):
                        sets.add(obj["name"])
                elif kind == "element":
                    if is_dispatch(obj["name"]):
                        # a pod's entries changed are deleted and added again; only added: a
                        # new pod, whose packets were dropped until now (no flows to hold)
                        if verb == "delete":
                            keys.update(_key_strings(obj.get("elem", ())))
                        elif obj["name"] == POD_IFACES:
                            new_ifaces.update(_key_strings(obj.get("elem", ())))
                        elif is_member_set(obj["name"]):
                            # a pod whose old membership set went away with its chain is only
                            # added to its new set; a new pod also enters pod-ifaces
                            for elem in obj.get("elem", ()):
                                strings = list(_key_strings(elem))
                                entering.append((strings[0], strings))
                    else:
                        sets.add(obj["name"])
    for ifname, strings in entering:
        if ifname not in new_ifaces:
            keys.update(strings)
    return ChangedObjects(frozenset(chains), frozenset(sets), frozenset(keys), whole)


def _key_strings(value: Any) -> Iterable[str]:
    """Every string in a dispatch element (its key and verdict): interface names and addresses
    among them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _key_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _key_strings(v)


#: id(chain) → (the chain, its refs): chains are frozen values kept by the table, so a chain
#: seen before is found by identity (hashing a chain's rules costs more than the lookup)
_REFS: dict[int, tuple[NftChain, tuple[frozenset[str], frozenset[str]]]] = {}


def _refs(chain: NftChain) -> tuple[frozenset[str], frozenset[str]]:
    """(chains jumped or gone to, sets looked up) by a chain's rules, parsed once per chain."""
    hit = _REFS.get(id(chain))
    if hit is not None and hit[0] is chain:
        return hit[1]
    if len(_REFS) >= 1 << 16:
        _REFS.clear()
    refs = _REFS[id(chain)] = (chain, _parse_refs(chain))
    return refs[1]


def _parse_refs(chain: NftChain) -> tuple[frozenset[str], frozenset[str]]:
    targets: set[str] = set()
    sets: set[str] = set()
    for r in chain.rules:
        targets.update(_TARGET.findall(r.expr_json))
        sets.update(_SET_REF.findall(r.expr_json))
    return frozenset(targets), frozenset(s for s in sets if not is_dispatch(s))


def _tainted(chains: Mapping[str, NftChain], changed: ChangedObjects) -> set[str]:
    """Chains whose behaviour may differ: changed ones, those looking up a changed set, and
    (to a fixed point) those that reach either."""
    tainted = set(changed.chains)
    callers: dict[str, list[str]] = {}
    for name, chain in chains.items():
        if name in _DISPATCH_CHAINS:  # reached through the pods' dispatch entries instead
            continue
        targets, sets = _refs(chain)
        if sets & changed.sets:
            tainted.add(name)
        for t in targets:
            callers.setdefault(t, []).append(name)
    todo = list(tainted)
    while todo:
        for caller in callers.get(todo.pop(), ()):
            if caller not in tainted:
                tainted.add(caller)
                todo.append(caller)
    return tainted


def _target(verdict: Verdict) -> str | None:
    return verdict[1] if len(verdict) == 2 and verdict[0] in ("jump", "goto") else None


def pods_to_recheck(changed: ChangedObjects, chains: Mapping[str, NftChain],
                  from_pod: Mapping[MapKey, Verdict], to_pod: Mapping[MapKey, Verdict],
                  index: DispatchIndex | None = None) -> list[str]:
    """The addresses of the node's pods whose tracked flows must be cut after ``changed`` was
    committed, given the table after the commit (its chains and dispatch entries; ``index``, the
    same entries indexed, spares a visit of every pod). Sorted."""
    if not (changed.chains or changed.sets or changed.dispatch_keys or changed.whole_table):
        return []
    iface_ip = index.iface_ip if index is not None else {key[0]: key[1] for key in from_pod if len(key) == 2}
    out: set[str] = set()
    if changed.whole_table or any(chains[n].hook for n in changed.chains if n in chains):
        out.update(iface_ip.values())
    else:
        tainted = _tainted(chains, changed) if changed.chains or changed.sets else set()
        if any(chains[n].hook for n in tainted if n in chains):
            out.update(iface_ip.values())
        elif index is not None:
            for which, by_verdict in index.members.items():
                for verdict, keys in by_verdict.items():
                    if _target(verdict) in tainted:
                        out.update(ip for ip in (_address(which, key, iface_ip) for key in keys) if ip)
        else:
            for key, verdict in from_pod.items():
                if len(key) == 2 and _target(verdict) in tainted:
                    out.add(key[1])
            for key, verdict in to_pod.items():
                if key and key[0] in iface_ip and _target(verdict) in tainted:
                    out.add(iface_ip[key[0]])
    for s in changed.dispatch_keys:  # entries added or deleted: the pod's address or its veth
        if s in iface_ip:
            out.add(iface_ip[s])
        elif _is_ipv4(s):
            out.add(s)
    return sorted(out, key=socket.inet_aton)  # address order (IPv4Address parses ~20x slower)


def _address(which: str, key: MapKey, iface_ip: Mapping[str, str]) -> str | None:
    """A dispatch key's pod address: in the key (egress), or its interface's (ingress)."""
    return key[1] if which == FROM_MAP and len(key) == 2 else iface_ip.get(key[0]) if key else None


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def pods_to_recheck_after(commands: Sequence[Mapping[str, Any]], chains: Mapping[str, NftChain],
                     from_pod: Mapping[MapKey, Verdict], to_pod: Mapping[MapKey, Verdict],
                     index: DispatchIndex | None = None) -> list[str]:
    """``pods_to_recheck`` for one committed transaction's commands."""
    if not commands:
        return []
    return pods_to_recheck(changed_objects(commands), chains, from_pod, to_pod, index)


# --- the tracked flows of those pods ------------------------------------------------------------

#: IP protocol numbers the policy engine decides
PROTOCOLS = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}


def judge_flows(flows: Iterable[TrackedFlow], state: ClusterState, pods: Iterable[str],
                node_ips: Iterable[str] = ()) -> FlowVerdicts:
    """Hold each tracked flow to or from one of ``pods`` (the addresses ``pods_to_recheck`` named)
    to the policy engine's decision for it in ``state``: the same decision the table's rules make
    for a new connection (``podnet verify`` holds the two equal). Flows of other protocols and
    flows between a pod and its own node (the input chain's business) are left alone."""
    wanted, own = frozenset(pods), frozenset(node_ips)
    cache: dict[tuple[str, str, int | None, str], bool] = {}
    deny: list[TrackedFlow] = []
    allow: list[TrackedFlow] = []
    gone: list[TrackedFlow] = []
    for f in flows:
        protocol = PROTOCOLS.get(f.protocol)
        if protocol is None or (f.src not in wanted and f.dst not in wanted) or f.src in own or f.dst in own:
            continue
        if any(a in wanted and a not in state.by_ip for a in (f.src, f.dst)):
            gone.append(f)
            continue
        key = (f.src, f.dst, f.port, protocol)
        ok = cache.get(key)
        if ok is None:
            ok = cache[key] = evaluate(state, state.endpoint(f.src), state.endpoint(f.dst), f.port, protocol).allowed
        if not ok and not f.denied:
            deny.append(f)
        elif ok and f.denied:
            allow.append(f)
    return FlowVerdicts(tuple(deny), tuple(allow), tuple(gone))
