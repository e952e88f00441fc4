"""Rule statements in nftables' JSON, the pieces every renderer writes rules from.

Plain functions returning dicts, spelled as ``nft -j`` prints them back, so a rendered rule and
its read-back compare equal. Matches, loads and verdicts for filtering; ``dnat``, ``masquerade``
and ``numgen`` for NAT tables (natOutgoing, Service proxying).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Verdict, verdict_json

Expr = dict[str, Any]

ACCEPT: Expr = {"accept": None}
DROP: Expr = {"drop": None}
COUNTER: Expr = {"counter": None}
MASQUERADE: Expr = {"masquerade": None}


def match(left: Any, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def concat(*parts: Any) -> Expr:
    return {"concat": list(parts)}


def goto(chain: str) -> Expr:
    return {"goto": {"target": chain}}


def jump(chain: str) -> Expr:
    return {"jump": {"target": chain}}


def vmap(key: Any, data: Any) -> Expr:
    """A verdict map lookup: ``data`` is ``@name`` (a named map) or an anonymous map."""
    return {"vmap": {"key": key, "data": data}}


def anonymous_vmap(entries: Mapping[Any, Verdict]) -> Expr:
    """``{ key : verdict, … }`` written into the rule (the key order is the caller's)."""
    return {"set": [[key, verdict_json(v)] for key, v in entries.items()]}


def numgen_random(mod: int) -> Expr:
    """``numgen random mod N``: 0 … N-1, uniformly (how kube-proxy picks an endpoint)."""
    return {"numgen": {"mode": "random", "mod": mod, "offset": 0}}


def dnat(addr: str, port: int | None = None) -> Expr:
    """``dnat to addr[:port]`` (in an ``ip`` or ``ip6`` table)."""
    target: dict[str, Any] = {"addr": addr}
    if port is not None:
        target["port"] = port
    return {"dnat": target}
