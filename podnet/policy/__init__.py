"""podnet.policy: NetworkPolicy semantics. Pure: model values in, values out.

IR (``ir``) with provenance; the cluster view and per-pair primitives (``cluster``); per-pod
resolution for the nftables compiler (``resolve``).

The names below are loaded on first use (PEP 562): importing one submodule (the flow logger
only needs ``tiers``) does not load the whole policy model and every resource kind with it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import ClusterState, Endpoint, allowed
    from .ir import PolicyIR, compile_policies, compile_policy
    from .resolve import PodPolicy, ResolvedPort, ResolvedRule, resolve

_LAZY = {
    "ClusterState": "cluster", "Endpoint": "cluster", "allowed": "cluster",
    "PolicyIR": "ir", "compile_policies": "ir", "compile_policy": "ir",
    "PodPolicy": "resolve", "ResolvedPort": "resolve", "ResolvedRule": "resolve", "resolve": "resolve",
}

__all__ = [
    "ClusterState", "Endpoint", "PodPolicy", "PolicyIR", "ResolvedPort", "ResolvedRule", "allowed",
    "compile_policies", "compile_policy", "resolve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
