"""Backend registry: a backend is a pure function (ClusterFacts, node name) -> RoutingPlan."""
from __future__ import annotations

from collections.abc import Callable

from podnet.errors import PodnetError

from . import bgp, hostgw, vxlan
from .facts import ClusterFacts
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
    """The routing plan for one node with the named backend."""
    return get_backend(backend)(facts, node)
