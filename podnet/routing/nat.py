"""natOutgoing: which sources a node masquerades, toward which destinations it never does."""
from __future__ import annotations

from .facts import ClusterFacts
from .plan import NatPlan


def nat_plan(facts: ClusterFacts) -> NatPlan:
    masq = tuple(sorted(p.cidr for p in facts.pools if p.nat_outgoing and not p.disabled))
    if not masq:
        return NatPlan()
    return NatPlan(masquerade=masq, all_pools=tuple(sorted({p.cidr for p in facts.pools})))


def pool_problems(facts: ClusterFacts) -> tuple[str, ...]:
    """Pool settings this kernel cannot honour, each as a sentence saying what to do."""
    out = []
    for p in facts.pools:
        if p.ipip_mode != "Never" and not facts.ipip_supported:
            out.append(f"IPPool {p.name}: ipipMode {p.ipip_mode} needs the kernel's ipip device, which this "
                       f"kernel does not have (CONFIG_NET_IPIP is off); set ipipMode: Never and use "
                       f"vxlanMode: {p.ipip_mode} instead")
    return tuple(out)
