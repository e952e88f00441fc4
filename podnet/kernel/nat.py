"""natOutgoing masquerade in its own nftables table ``ip podnet-nat`` (policy enforcement
keeps its ``podnet`` table separate).

Pod traffic from a natOutgoing pool to an address outside every pool leaves with the node's
address; pod-to-pod traffic never does. One atomic transaction replaces the table whenever
what the kernel has differs from what is wanted."""
from __future__ import annotations

import json
from typing import Any

from podnet.dataplane.routes import NatSpec
from podnet.errors import PodnetError

TABLE = "podnet-nat"
FAMILY = "ip"


def _nft():
    import nftables

    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(False)
    return nft


def _run(nft, cmds: list[dict[str, Any]]) -> dict:
    rc, out, err = nft.json_cmd({"nftables": cmds})
    if rc != 0:
        raise PodnetError(f"nftables rejected the {TABLE} update: {err.strip()}")
    return out or {}


def _prefix(cidr: str) -> dict:
    addr, _, plen = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(plen or 32)}}


def desired_commands(spec: NatSpec) -> list[dict[str, Any]]:
    """The table as nftables JSON commands (without the flush/delete that precedes them)."""
    t = {"family": FAMILY, "table": TABLE}
    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"set": {**t, "name": "masq_src", "type": "ipv4_addr", "flags": ["interval"],
                         "elem": [_prefix(c) for c in spec.masquerade]}}},
        {"add": {"set": {**t, "name": "all_pools", "type": "ipv4_addr", "flags": ["interval"],
                         "elem": [_prefix(c) for c in spec.all_pools]}}},
        {"add": {"chain": {**t, "name": "postrouting", "type": "nat", "hook": "postrouting",
                           "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {**t, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@masq_src"}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@all_pools"}},
            {"counter": None},
            {"masquerade": None}]}}},
    ]


def _observed(nft) -> tuple | None:
    """A comparable summary of the live table, or None when it is absent."""
    rc, out, _ = nft.json_cmd({"nftables": [{"list": {"table": {"family": FAMILY, "name": TABLE}}}]})
    if rc != 0:
        return None
    sets: dict[str, list] = {}
    rules = []
    for item in (out or {}).get("nftables", []):
        if "set" in item:
            sets[item["set"]["name"]] = sorted(json.dumps(e, sort_keys=True) for e in item["set"].get("elem", []))
        if "rule" in item:
            expr = [e for e in item["rule"]["expr"] if "counter" not in e]
            rules.append(json.dumps(expr, sort_keys=True))
    return (sets.get("masq_src"), sets.get("all_pools"), tuple(rules))


def _summary(spec: NatSpec) -> tuple:
    def elems(cidrs):
        out = []
        for c in cidrs:
            addr, _, plen = c.partition("/")
            out.append(json.dumps(addr if plen in ("", "32") else {"prefix": {"addr": addr, "len": int(plen)}},
                                  sort_keys=True))
        return sorted(out)

    rule = [e for e in desired_commands(spec)[-1]["add"]["rule"]["expr"] if "counter" not in e]
    return (elems(spec.masquerade), elems(spec.all_pools), (json.dumps(rule, sort_keys=True),))


def apply_nat(spec: NatSpec | None) -> bool:
    """Make ``ip podnet-nat`` match ``spec`` in the calling thread's namespace (None: no table).
    Returns True when something changed."""
    nft = _nft()
    observed = _observed(nft)
    if spec is None:
        if observed is None:
            return False
        _run(nft, [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
        return True
    if observed == _summary(spec):
        return False
    cmds = desired_commands(spec)
    if observed is not None:
        cmds = [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}] + cmds
    _run(nft, cmds)
    return True


def remove_nat() -> bool:
    return apply_nat(None)
