"""Pod changes applied to the last rendered table without rendering it again (pure).

A pod that is created, deleted, relabelled or readdressed changes only elements: its IP in the
pod-selector sets whose selector it (no longer) matches, and, on its own node, its two dispatch
map entries and its interface in ``pod-ifaces``. ``update_for_pods`` computes exactly those,
so the cost of one pod change does not grow with the cluster. It returns None whenever the
result could differ from a full ``render`` (a chain that would appear or disappear, named-port
or pod-excluding sets, an unknown node address), and the caller renders in full instead.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Mapping, Sequence

from podnet.policy.cluster import Endpoint, peer_matches
from podnet.policy.ir import PolicyIR

from .nft_model import FAMILY, TABLE, NftMap, NftSet, NftTable, element_json, verdict_json
from .nft_render import (EGRESS_OK, FROM_MAP, POD_IFACES, TO_MAP, RenderIndex, _sig_chain, workload_ifname)

_T = {"family": FAMILY, "table": TABLE}
PodChange = tuple[Endpoint | None, Endpoint | None]


class _Labels:
    """The one thing ``peer_matches`` asks of the cluster for pod peers: namespace labels."""

    def __init__(self, ns_labels: Callable[[str | None], Mapping[str, str]]) -> None:
        self.ns_labels = ns_labels
        self.ipblock_matches_pods = True


def _programmed(ep: Endpoint | None) -> bool:
    return bool(ep is not None and ep.selectable and ep.ip and ":" not in ep.ip)


def update_for_pods(table: NftTable, index: RenderIndex, changes: Sequence[PodChange],
                    policies_by_ns: Mapping[str, Sequence[PolicyIR]],
                    ns_labels: Callable[[str | None], Mapping[str, str]]) -> tuple[NftTable, list[dict[str, Any]]] | None:
    """(new table, the element commands that turn ``table`` into it), or None: render in full."""
    if index.pod_dependent_extras:
        return None
    shim = _Labels(ns_labels)
    #: per set, element → wanted (last change wins: changes come in store order)
    wanted: dict[str, dict[Any, bool]] = {}
    from_map = dict(table.maps[FROM_MAP].elements)
    to_map = dict(table.maps[TO_MAP].elements)
    ifaces = set(table.sets[POD_IFACES].elements)
    released: set[tuple[str, ...]] = set()
    touched: dict[str, set[tuple[str, ...]]] = {FROM_MAP: set(), TO_MAP: set()}
    for old, new in changes:
        for ep in (old, new):
            if ep is not None and ep.is_pod and ep.selectable and ep.ip and ":" in ep.ip:
                return None  # IPv6 pods are not programmed; let the full render decide
        for name, peer in index.pod_sets.items():
            if _programmed(old) and peer_matches(peer, old, shim):  # type: ignore[arg-type]
                wanted.setdefault(name, {})[((_int(old.ip), _int(old.ip)),)] = False  # type: ignore[union-attr]
            if _programmed(new) and peer_matches(peer, new, shim):  # type: ignore[arg-type]
                wanted.setdefault(name, {})[((_int(new.ip), _int(new.ip)),)] = True  # type: ignore[union-attr]
        if _programmed(old) and old.node == index.node:  # type: ignore[union-attr]
            ifname = _ifname(index, old)  # type: ignore[arg-type]
            touched[FROM_MAP].add((ifname, str(old.ip)))  # type: ignore[union-attr]
            touched[TO_MAP].add((ifname,))
            released.add(from_map.pop((ifname, str(old.ip)), ("accept",)))  # type: ignore[union-attr]
            released.add(to_map.pop((ifname,), ("accept",)))
            ifaces.discard((ifname,))
        if _programmed(new) and new.node == index.node:  # type: ignore[union-attr]
            assert new is not None
            if new.host_ip and new.host_ip not in index.own:
                return None
            ifname = _ifname(index, new)
            selecting = [p for p in policies_by_ns.get(new.namespace or "", ()) if p.pod_selector.matches(new.labels)]
            touched[FROM_MAP].add((ifname, str(new.ip)))
            touched[TO_MAP].add((ifname,))
            for direction, target, key, allow in (("egress", from_map, (ifname, str(new.ip)), ("goto", EGRESS_OK)),
                                                  ("ingress", to_map, (ifname,), ("accept",))):
                isolating = tuple(p for p in selecting if direction in p.isolates)
                if not isolating:
                    target[key] = allow
                    continue
                sig = _sig_chain(direction, isolating)
                if sig not in table.chains:
                    return None  # a chain a full render would add
                target[key] = ("goto", sig)
            ifaces.add((ifname,))
    # A signature chain no pod uses any more would disappear in a full render.
    chains_left = [v for v in released if v[0] == "goto" and v[1] != EGRESS_OK]
    if chains_left:
        in_use = set(from_map.values()) | set(to_map.values())
        if any(v not in in_use for v in chains_left):
            return None
    sets = dict(table.sets)
    cmds: list[dict[str, Any]] = []
    for name in sorted(wanted):
        old_set = sets[name]
        gone = {e for e, keep in wanted[name].items() if not keep and e in old_set.elements}
        fresh = {e for e, keep in wanted[name].items() if keep and e not in old_set.elements}
        if gone:
            cmds.append({"delete": {"element": {**_T, "name": name,
                                                "elem": [element_json(e, old_set.types) for e in sorted(gone)]}}})
        if fresh:
            cmds.append({"add": {"element": {**_T, "name": name,
                                             "elem": [element_json(e, old_set.types) for e in sorted(fresh)]}}})
        sets[name] = NftSet(name, old_set.types, old_set.interval, (old_set.elements - gone) | fresh)
    old_ifaces = table.sets[POD_IFACES]
    if frozenset(ifaces) != old_ifaces.elements:
        gone_if, new_if = old_ifaces.elements - ifaces, ifaces - old_ifaces.elements
        if gone_if:
            cmds.append({"delete": {"element": {**_T, "name": POD_IFACES, "elem": sorted(k[0] for k in gone_if)}}})
        if new_if:
            cmds.append({"add": {"element": {**_T, "name": POD_IFACES, "elem": sorted(k[0] for k in new_if)}}})
        sets[POD_IFACES] = NftSet(POD_IFACES, old_ifaces.types, old_ifaces.interval, frozenset(ifaces))
    maps = dict(table.maps)
    for name, new_elems in ((FROM_MAP, from_map), (TO_MAP, to_map)):
        m = table.maps[name]
        changed = {k for k in touched[name] if m.elements.get(k) != new_elems.get(k)}
        stale = sorted(k for k in changed if k in m.elements)
        fresh_keys = sorted(k for k in changed if k in new_elems)
        if stale:
            cmds.append({"delete": {"element": {**_T, "name": name, "elem": [m.key_json(k) for k in stale]}}})
        if fresh_keys:
            cmds.append({"add": {"element": {**_T, "name": name,
                                             "elem": [[m.key_json(k), verdict_json(new_elems[k])] for k in fresh_keys]}}})
        maps[name] = NftMap(name, m.key_types, new_elems)
    return NftTable(sets=sets, maps=maps, chains=table.chains), cmds


def _ifname(index: RenderIndex, ep: Endpoint) -> str:
    return index.interfaces.get(ep.key) or workload_ifname(ep.namespace or "default", ep.name or "")


def _int(ip: str | None) -> int:
    return int(ipaddress.ip_address(ip))
