"""A node's routing plan → the kernel state that realises it (pure).

Routes, the VXLAN device with its neighbour and FDB entries, the natOutgoing table and
subnet.env, as the values of ``routes``; ``kernel.node_routing`` applies them. BIRD's
configuration is rendered by ``bird_config``.
"""
from __future__ import annotations

from podnet.routing.plan import RoutingPlan

from .nft.nat import render_nat
from .routes import DesiredRouting, FdbSpec, NeighSpec, RouteSpec, VxlanSpec


def desired_routing(plan: RoutingPlan, underlay_dev: str = "eth0") -> DesiredRouting:
    """Turn a routing plan into the kernel objects that realise it."""
    routes = frozenset(RouteSpec(r.dst, r.via, r.dev, r.onlink) for r in plan.routes)
    vx = None
    neighs: set[NeighSpec] = set()
    fdb: set[FdbSpec] = set()
    if plan.vtep is not None:
        v = plan.vtep
        vx = VxlanSpec(name=v.name, vni=v.vni, port=v.port, local=v.local, underlay_dev=underlay_dev,
                       mtu=v.mtu, mac=v.mac, address=v.address)
        for p in plan.vxlan_peers:
            neighs.add(NeighSpec(v.name, p.vtep_address, p.vtep_mac))
            fdb.add(FdbSpec(v.name, p.vtep_mac, p.underlay))
    nat = render_nat(plan.nat.masquerade, plan.nat.all_pools) if plan.nat.masquerade else None
    env = None
    if plan.subnet_env is not None:
        env = "".join(f"{k}={v}\n" for k, v in plan.subnet_env)
    return DesiredRouting(routes=routes, vxlan=vx, neighbours=frozenset(neighs), fdb=frozenset(fdb),
                          nat=nat, subnet_env=env, lb_addresses=frozenset(plan.l2_addresses))
