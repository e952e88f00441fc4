"""Backend registry: a backend is a pure function (ClusterFacts, node name) -> RoutingPlan."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from podnet.errors import PodnetError

from . import bgp, hostgw, vxlan
from .facts import ClusterFacts
from .l2 import l2_addresses
from .plan import RoutingPlan

Planner = Callable[[ClusterFacts, str], RoutingPlan]

BACKENDS: dict[str, Planner] = {
    "host-gw": hostgw.plan,
    "vxlan": vxlan.plan,
    "bgp": bgp.plan,
}


def get_backend(name: str) -> Planner:
    try:
        return BACKENDS[name]
    except KeyError:
        raise PodnetError(f"unknown routing backend {name!r}",
                          hint=f"choose one of: {', '.join(sorted(BACKENDS))}") from None


def plan_node(facts: ClusterFacts, node: str, backend: str) -> RoutingPlan:
    """The routing plan for one node with the named backend; without BGP, with the
    LoadBalancer addresses it answers on the underlay."""
    plan = get_backend(backend)(facts, node)
    if backend == "bgp":
        return plan
    return replace(plan, l2_addresses=l2_addresses(facts, node))
