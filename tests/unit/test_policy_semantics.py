"""NetworkPolicy semantics, case by case from the Kubernetes documentation and API reference.

Each case checks the reference evaluator, the explainer and the class-based matrix agree."""
from __future__ import annotations

import pytest

from podnet.policy.cluster import ClusterState, allowed
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import compute_matrix

from test_policy_support import netpol, ns, pod

NAMESPACES = [ns("default"), ns("prod", team="a"), ns("dev", team="b")]


def base_pods():
    return [
        pod("default", "web", {"app": "web"}, "10.0.0.10", ports=[{"containerPort": 8080, "name": "http"},
                                                                  {"containerPort": 5353, "name": "dns", "protocol": "UDP"}]),
        pod("default", "client", {"role": "client"}, "10.0.0.11"),
        pod("default", "other", {"role": "other"}, "10.0.0.12"),
        pod("prod", "client", {"role": "client"}, "10.0.1.11", node="node2", host_ip="192.168.0.2"),
        pod("dev", "client", {"role": "client"}, "10.0.2.11", node="node2", host_ip="192.168.0.2"),
        pod("dev", "db", {"app": "db"}, "10.0.2.12", ports=[{"containerPort": 5432, "name": "http"}]),
    ]


def state_with(*policies, pods=None, ipblock_matches_pods=True) -> ClusterState:
    return ClusterState.build(NAMESPACES, pods if pods is not None else base_pods(), policies,
                              ipblock_matches_pods=ipblock_matches_pods)


def ok(state: ClusterState, src: str, dst: str, port: int | None = 8080, proto: str = "TCP") -> bool:
    s, d = state.endpoint(src), state.endpoint(dst)
    ref = allowed(state, s, d, port, proto)
    assert evaluate(state, s, d, port, proto).allowed == ref
    if s.is_pod and d.is_pod and port is not None:
        m = compute_matrix(state, [port], [proto])
        assert m.allowed(f"{port}/{proto}", m.pods.index(s.key), m.pods.index(d.key)) == ref
    if proto == "ICMP" and s.is_pod and d.is_pod:
        m = compute_matrix(state, [], ["ICMP"])
        assert m.allowed("ICMP", m.pods.index(s.key), m.pods.index(d.key)) == ref
    return ref


WEB = {"matchLabels": {"app": "web"}}


def test_no_policy_allows_everything():
    st = state_with()
    assert ok(st, "default/client", "default/web")
    assert ok(st, "8.8.8.8", "default/web")
    assert ok(st, "default/web", "8.8.8.8")


def test_isolation_needs_a_selecting_policy_in_the_pods_namespace():
    st = state_with(netpol("prod", "deny", {"podSelector": WEB, "policyTypes": ["Ingress"]}))
    assert ok(st, "default/client", "default/web")  # the policy is in prod: default/web is not selected


def test_ingress_type_without_rules_denies_all_ingress_but_not_egress():
    st = state_with(netpol("default", "deny", {"podSelector": WEB, "policyTypes": ["Ingress"]}))
    assert not ok(st, "default/client", "default/web")
    assert not ok(st, "8.8.8.8", "default/web")
    assert ok(st, "default/web", "default/client")  # egress not isolated
    assert ok(st, "default/client", "default/other")  # other pods not selected


def test_empty_ingress_list_equals_absent_and_denies():
    for spec in ({"podSelector": WEB, "ingress": []}, {"podSelector": WEB}):
        st = state_with(netpol("default", "deny", spec))
        assert not ok(st, "default/client", "default/web")


def test_ingress_with_one_empty_rule_allows_all_including_outside():
    st = state_with(netpol("default", "all", {"podSelector": WEB, "ingress": [{}]}))
    assert ok(st, "default/client", "default/web")
    assert ok(st, "dev/client", "default/web", 1, "UDP")
    assert ok(st, "8.8.8.8", "default/web", None, "ICMP")


def test_default_policy_types_add_egress_only_with_an_egress_section():
    st = state_with(netpol("default", "eg", {"podSelector": WEB, "egress": [{"to": [{"podSelector": {}}]}]}))
    assert not ok(st, "default/client", "default/web")  # Ingress is always in the default
    assert ok(st, "default/web", "default/client")  # egress to own namespace
    assert not ok(st, "default/web", "dev/client")


def test_an_empty_egress_list_without_policy_types_does_not_isolate_egress():
    # The API server defaults policyTypes to [Ingress] and adds Egress only when the egress
    # list has entries (len(spec.egress) != 0): ``egress: []`` alone isolates ingress only.
    st = state_with(netpol("default", "eg", {"podSelector": WEB, "egress": []}))
    assert st.policies[0].isolates == frozenset({"ingress"})
    assert ok(st, "default/web", "dev/client")
    assert not ok(st, "default/client", "default/web")


def test_rules_of_a_type_not_in_policy_types_are_ignored():
    st = state_with(netpol("default", "eg", {"podSelector": WEB, "policyTypes": ["Egress"],
                                             "ingress": [{"from": [{"podSelector": {"matchLabels": {"x": "y"}}}]}]}))
    assert ok(st, "dev/client", "default/web")  # not isolated for ingress
    assert not ok(st, "default/web", "default/client")  # isolated for egress, no egress rules
    st = state_with(netpol("default", "in", {"podSelector": WEB, "policyTypes": ["Ingress"], "ingress": [{}],
                                             "egress": [{"to": [{"podSelector": {"matchLabels": {"x": "y"}}}]}]}))
    assert ok(st, "default/web", "dev/client")


def test_pod_selector_alone_selects_only_the_policys_namespace():
    st = state_with(netpol("default", "p", {"podSelector": WEB,
                                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    assert ok(st, "default/client", "default/web")
    assert not ok(st, "prod/client", "default/web")


def test_namespace_selector_alone_selects_all_pods_of_matching_namespaces():
    st = state_with(netpol("default", "p", {"podSelector": WEB,
                                            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]}))
    assert ok(st, "prod/client", "default/web")
    assert not ok(st, "dev/client", "default/web")
    assert not ok(st, "default/client", "default/web")


def test_both_selectors_in_one_peer_are_anded_separate_peers_are_ored():
    and_peer = [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}]
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"from": and_peer}]}))
    assert ok(st, "dev/db", "default/web")
    assert not ok(st, "dev/client", "default/web")
    or_peers = [{"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"podSelector": {"matchLabels": {"role": "client"}}}]
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"from": or_peers}]}))
    assert ok(st, "prod/client", "default/web")
    assert ok(st, "default/client", "default/web")
    assert not ok(st, "dev/client", "default/web")
    assert not ok(st, "default/other", "default/web")


def test_empty_namespace_selector_means_every_namespace():
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": {}}]}]}))
    assert ok(st, "dev/client", "default/web")
    assert not ok(st, "8.8.8.8", "default/web")  # outside the cluster: only ipBlock matches


def test_missing_or_empty_from_means_everyone():
    for rule in ({"ports": [{"port": 8080}]}, {"from": [], "ports": [{"port": 8080}]}):
        st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [rule]}))
        assert ok(st, "dev/client", "default/web")
        assert ok(st, "8.8.8.8", "default/web")
        assert not ok(st, "dev/client", "default/web", 9090)


def test_policies_and_rules_are_additive():
    a = netpol("default", "a", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    b = netpol("default", "b", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]})
    st = state_with(a, b)
    assert ok(st, "default/client", "default/web")
    assert ok(st, "dev/client", "default/web")
    assert not ok(st, "prod/client", "default/web")


def test_both_directions_must_allow():
    eg = netpol("default", "eg", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]})
    inn = netpol("default", "in", {"podSelector": WEB, "ingress": [{}]})
    st = state_with(eg, inn)
    assert not ok(st, "default/client", "default/web")  # source's egress denies
    assert ok(st, "default/other", "default/web")
    assert ok(st, "default/web", "default/client")  # client's ingress not isolated


def test_ip_block_with_except_and_pod_ip_option():
    spec = {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/24"]}}]}]}
    st = state_with(netpol("default", "p", spec))
    assert ok(st, "default/client", "default/web")  # 10.0.0.10: pod IP inside cidr
    assert not ok(st, "default/client", "dev/db")  # 10.0.2.12: in except
    assert ok(st, "default/client", "10.0.9.9")
    assert not ok(st, "default/client", "10.1.0.1")
    st = state_with(netpol("default", "p", spec), ipblock_matches_pods=False)
    assert not ok(st, "default/client", "default/web")  # pod IPs ignored by ipBlock
    assert ok(st, "default/client", "10.0.9.9")  # outside addresses still match


def test_ports_numeric_range_protocol_default_and_protocol_only():
    def st_ports(ports):
        return state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": ports}]}))
    st = st_ports([{"port": 8080}])
    assert ok(st, "default/client", "default/web", 8080, "TCP")
    assert not ok(st, "default/client", "default/web", 8080, "UDP")  # TCP is the default protocol
    assert not ok(st, "default/client", "default/web", None, "ICMP")
    st = st_ports([{"port": 8000, "endPort": 8100, "protocol": "SCTP"}])
    assert ok(st, "default/client", "default/web", 8100, "SCTP")
    assert not ok(st, "default/client", "default/web", 8101, "SCTP")
    assert not ok(st, "default/client", "default/web", 8050, "TCP")
    st = st_ports([{"protocol": "UDP"}])
    assert ok(st, "default/client", "default/web", 1, "UDP")
    assert not ok(st, "default/client", "default/web", 1, "TCP")
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": []}]}))
    assert ok(st, "default/client", "default/web", None, "ICMP")  # empty ports = all ports and protocols


def test_named_ports_resolve_on_the_destination_with_their_protocol():
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": [{"port": "http"}]}]}))
    assert ok(st, "default/client", "default/web", 8080)
    assert not ok(st, "default/client", "default/web", 5432)  # db's "http" is 5432, but web's is 8080
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": [{"port": "dns"}]}]}))
    assert not ok(st, "default/client", "default/web", 5353, "TCP")  # dns is declared for UDP only
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}))
    assert ok(st, "default/client", "default/web", 5353, "UDP")
    # egress: the name resolves on each destination pod
    eg = netpol("default", "e", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                 "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}]})
    st = state_with(eg)
    assert ok(st, "default/client", "default/web", 8080)
    assert ok(st, "default/client", "dev/db", 5432)
    assert not ok(st, "default/client", "dev/db", 8080)
    eg2 = netpol("default", "e", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                  "egress": [{"ports": [{"port": "http"}]}]})
    assert not ok(state_with(eg2), "default/client", "8.8.8.8", 8080)  # names never resolve outside the cluster


def test_host_network_pods_are_never_selected_nor_matched_by_selectors():
    pods = base_pods() + [pod("default", "hostweb", {"app": "web"}, host_network=True, host_ip="192.168.0.1",
                              ports=[{"containerPort": 8080}])]
    st = state_with(netpol("default", "deny", {"podSelector": WEB, "policyTypes": ["Ingress"]}), pods=pods)
    assert ok(st, "dev/client", "default/hostweb")  # not isolated
    st = state_with(netpol("default", "p", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                            "egress": [{"to": [{"podSelector": WEB}]}]}), pods=pods)
    assert ok(st, "default/client", "default/web")
    assert not ok(st, "default/client", "default/hostweb")  # podSelector never matches hostNetwork pods
    st = state_with(netpol("default", "p", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                            "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/24"}}]}]}), pods=pods)
    assert ok(st, "default/client", "default/hostweb")  # its node address matches an ipBlock


def test_node_reaches_its_own_pods_and_a_pod_reaches_itself():
    pods = base_pods() + [pod("kube-system", "agent", {"x": "y"}, host_network=True, host_ip="192.168.0.1")]
    st = state_with(netpol("default", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}), pods=pods)
    assert ok(st, "192.168.0.1", "default/web")  # web runs on node1 (192.168.0.1)
    assert ok(st, "kube-system/agent", "default/web")  # a hostNetwork pod on the same node
    assert not ok(st, "192.168.0.2", "default/web")  # another node
    assert ok(st, "default/web", "default/web")
    assert not ok(st, "default/web", "default/client")


def test_outside_addresses_are_matched_only_by_ip_block():
    spec = {"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {}}]}]}
    st = state_with(netpol("default", "p", spec))
    assert not ok(st, "8.8.8.8", "default/web")
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"from": [{"ipBlock": {"cidr": "8.0.0.0/8"}}]}]}))
    assert ok(st, "8.8.8.8", "default/web")
    assert not ok(st, "9.9.9.9", "default/web")


def test_icmp_is_allowed_only_by_rules_without_ports():
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"ports": [{"protocol": "TCP"}, {"protocol": "UDP"}]}]}))
    assert not ok(st, "default/client", "default/web", None, "ICMP")
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [{"from": [{"podSelector": {}}]}]}))
    assert ok(st, "default/client", "default/web", None, "ICMP")


@pytest.mark.parametrize("expr,who,expected", [
    ({"key": "role", "operator": "In", "values": ["client"]}, "default/client", True),
    ({"key": "role", "operator": "NotIn", "values": ["client"]}, "default/client", False),
    ({"key": "role", "operator": "NotIn", "values": ["client"]}, "default/web", True),
    ({"key": "role", "operator": "Exists"}, "default/other", True),
    ({"key": "role", "operator": "DoesNotExist"}, "default/other", False),
])
def test_match_expressions(expr, who, expected):
    st = state_with(netpol("default", "p", {"podSelector": {"matchLabels": {"role": "other"}},
                                            "ingress": [{"from": [{"podSelector": {"matchExpressions": [expr]}}]}]}))
    target = "default/other" if who != "default/other" else "default/client"
    if who == "default/other":
        st = state_with(netpol("default", "p", {"podSelector": WEB,
                                                "ingress": [{"from": [{"podSelector": {"matchExpressions": [expr]}}]}]}))
        target = "default/web"
    assert ok(st, who, target) is expected


def test_namespaces_carry_their_name_label():
    st = state_with(netpol("default", "p", {"podSelector": WEB, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]}]}))
    assert ok(st, "dev/client", "default/web")
    assert not ok(st, "prod/client", "default/web")
