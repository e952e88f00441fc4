"""The MTU a pod's interface gets: a routing fact, since encapsulation takes its headers out of
every packet the pod sends."""
from __future__ import annotations

from collections.abc import Iterable

from podnet.model import IPPool

from .facts import DEFAULT_UNDERLAY_MTU
from .plan import RoutingPlan
from .vxlan import VXLAN_OVERHEAD


def pod_mtu(plan: RoutingPlan | None, pools: Iterable[IPPool] = (), underlay_mtu: int = DEFAULT_UNDERLAY_MTU) -> int:
    """With this node's routing ``plan``: its VTEP's MTU (the underlay's less VXLAN's headers)
    when the node encapsulates any pod traffic, else the underlay's (Flannel's FLANNEL_MTU).
    Without one (no cluster record, or a node the planner does not know yet): the VTEP's if any
    of ``pools`` uses VXLAN, as Flannel and Calico size it, else the underlay's."""
    if plan is not None:
        return plan.vtep.mtu if plan.vtep is not None else underlay_mtu
    encapsulates = any(p.spec.vxlan_mode != "Never" for p in pools)
    return underlay_mtu - VXLAN_OVERHEAD if encapsulates else underlay_mtu
