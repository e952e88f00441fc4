"""Routing backends (host-gw, vxlan, bgp): pure planners from cluster facts to per-node plans."""
from .facts import ClusterFacts, NodeFacts, PeerFacts, PoolFacts, cluster_facts
from .plan import RoutingPlan
from .registry import BACKENDS, get_backend, plan_node

__all__ = ["BACKENDS", "ClusterFacts", "NodeFacts", "PeerFacts", "PoolFacts", "RoutingPlan",
           "cluster_facts", "get_backend", "plan_node"]
