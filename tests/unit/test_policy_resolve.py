"""resolve(): the per-pod data the nftables compiler reads decides exactly like the reference."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.policy import ClusterState, allowed, resolve
from podnet.policy.cluster import Endpoint, always_allowed
from podnet.policy.resolve import PodPolicy, ResolvedRule

from test_policy_support import netpol, ns, pod, random_cluster


def _peer_ok(rr: ResolvedRule, ep: Endpoint, state: ClusterState) -> bool:
    if rr.all_peers or (ep.ip in rr.peer_ips and ep.selectable) or ep.key in rr.peer_pods:
        return True
    if ep.selectable and not state.ipblock_matches_pods:
        return False
    return any(block.contains(ep.ip) for block in rr.cidrs)


def _port_ok(rr: ResolvedRule, port: int | None, proto: str, dst: Endpoint) -> bool:
    if rr.ports is None:
        return True
    ranges = list(rr.ports) + list(rr.ports_by_ip.get(dst.ip or "", ())) if dst.selectable else list(rr.ports)
    return port is not None and any(r.protocol == proto and r.first <= port <= r.last for r in ranges)


def compiled_decision(res: dict[str, PodPolicy], state: ClusterState, src: Endpoint, dst: Endpoint,
                      port: int | None, proto: str) -> bool:
    if always_allowed(src, dst):
        return True
    out = res.get(src.key)
    if out and out.isolated_egress and not any(_peer_ok(r, dst, state) and _port_ok(r, port, proto, dst) for r in out.egress):
        return False
    inn = res.get(dst.key)
    if inn and inn.isolated_ingress and not any(_peer_ok(r, src, state) and _port_ok(r, port, proto, dst) for r in inn.ingress):
        return False
    return True


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ipblock_pods=st.booleans())
def test_resolved_rules_decide_like_the_reference(seed, ipblock_pods):
    namespaces, pods, policies = random_cluster(seed, 3, 9, 5)
    pods = [p for p in pods if not p.spec.host_network]  # hostNetwork pods share node IPs: not addressable per pod
    state = ClusterState.build(namespaces, pods, policies, ipblock_matches_pods=ipblock_pods)
    res = resolve(state)
    for src in state.pods:
        for dst in state.pods:
            for port, proto in ((80, "TCP"), (443, "UDP"), (8080, "SCTP"), (None, "ICMP")):
                assert compiled_decision(res, state, src, dst, port, proto) == allowed(state, src, dst, port, proto)


def test_resolution_of_named_ports_and_isolation():
    pods = [pod("a", "web", {"app": "web"}, "10.0.0.1", ports=[{"containerPort": 8080, "name": "http"}]),
            pod("a", "api", {"app": "api"}, "10.0.0.2", ports=[{"containerPort": 9000, "name": "http"}]),
            pod("a", "client", {"role": "c"}, "10.0.0.3")]
    pols = [netpol("a", "in", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": "http"}]}]}),
            netpol("a", "out", {"podSelector": {"matchLabels": {"role": "c"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]}]})]
    res = resolve(ClusterState.build([ns("a")], pods, pols))
    web = res["a/web"]
    assert web.isolated_ingress and not web.isolated_egress and web.policies == ("a/in",)
    assert [(p.protocol, p.first, p.last) for p in web.ingress[0].ports] == [("TCP", 8080, 8080)]
    assert web.ingress[0].all_peers
    client = res["a/client"]
    rule = client.egress[0]
    assert rule.peer_ips == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert [(p.protocol, p.first) for p in rule.ports] == [("UDP", 53)]
    assert {ip: [p.first for p in ports] for ip, ports in rule.ports_by_ip.items()} == {"10.0.0.1": [8080], "10.0.0.2": [9000]}
    assert rule.rule.provenance.describe() == "egress rule 0 of a/out"
    assert not res["a/api"].isolated_ingress
