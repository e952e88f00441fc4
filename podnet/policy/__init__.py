"""podnet.policy: NetworkPolicy semantics. Pure: model values in, values out.

IR (``ir``) with provenance; the cluster view and per-pair primitives (``cluster``); per-pod
resolution for the nftables compiler (``resolve``).
"""
from .cluster import ClusterState, Endpoint, allowed
from .ir import PolicyIR, compile_policies, compile_policy
from .resolve import PodPolicy, ResolvedPort, ResolvedRule, resolve

__all__ = [
    "ClusterState", "Endpoint", "PodPolicy", "PolicyIR", "ResolvedPort", "ResolvedRule", "allowed",
    "compile_policies", "compile_policy", "resolve",
]
