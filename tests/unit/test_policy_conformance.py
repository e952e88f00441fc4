"""Scenarios of the network-policy-api conformance suite (AdminNetworkPolicy and
BaselineAdminNetworkPolicy), re-expressed as engine tests.

The suite's cluster: five namespaces labelled by house, two pods in each, every pod serving
80/TCP (named web), 8080/TCP, 5353/UDP, 53/UDP (named dns), 9003/SCTP and 9005/SCTP. Each
scenario applies its policies, then edits them step by step (a rule's action, a priority, rule
order) and checks which connections get through; here every step is a fresh state from the
edited objects, as the store would hand it to the engine."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.model import (
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
)
from podnet.policy.cluster import ClusterState
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import compute_matrix
from podnet.policy.walk import allowed

HOUSES = ["gryffindor", "slytherin", "hufflepuff", "ravenclaw", "forest"]
PORTS = [{"containerPort": 80, "name": "web"}, {"containerPort": 8080}, {"containerPort": 5353, "protocol": "UDP"},
         {"containerPort": 53, "protocol": "UDP", "name": "dns"}, {"containerPort": 9003, "protocol": "SCTP"},
         {"containerPort": 9005, "protocol": "SCTP"}]


def ns_name(house: str) -> str:
    return f"conformance-{house}"


def cluster_objects() -> tuple[list[Namespace], list[Pod], list[Node]]:
    namespaces = [Namespace.model_validate({"metadata": {"name": ns_name(h), "labels": {"house": h}}}) for h in HOUSES]
    pods = []
    for i, house in enumerate(HOUSES):
        for j in range(2):
            node = f"node{j}"
            pods.append(Pod.model_validate({
                "metadata": {"name": f"{house}-{j}", "namespace": ns_name(house), "labels": {"house": house}},
                "spec": {"containers": [{"name": "server", "ports": PORTS}], "nodeName": node},
                "status": {"podIP": f"10.244.{i}.{j + 10}", "hostIP": f"172.18.0.{j + 2}"}}))
    pods.append(Pod.model_validate({"metadata": {"name": "node-agent", "namespace": ns_name("forest"), "labels": {"house": "forest"}},
                                    "spec": {"containers": [{"name": "a"}], "hostNetwork": True, "nodeName": "node1"},
                                    "status": {"podIP": "172.18.0.3", "hostIP": "172.18.0.3"}}))
    nodes = [Node.model_validate({"metadata": {"name": f"node{j}", "labels": {"role": "control-plane" if j == 0 else "worker"}},
                                  "status": {"addresses": [{"type": "InternalIP", "address": f"172.18.0.{j + 2}"}]}})
             for j in range(2)]
    return namespaces, pods, nodes


def house(h: str) -> dict[str, Any]:
    return {"matchLabels": {"house": h}}


def pods_of(h: str) -> dict[str, Any]:
    return {"pods": {"namespaceSelector": house(h), "podSelector": house(h)}}


def anp(name: str, priority: int, subject: dict[str, Any], ingress: list[Any] | None = None,
        egress: list[Any] | None = None) -> AdminNetworkPolicy:
    spec: dict[str, Any] = {"priority": priority, "subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return AdminNetworkPolicy.model_validate({"metadata": {"name": name}, "spec": spec})


def banp(subject: dict[str, Any], ingress: list[Any] | None = None, egress: list[Any] | None = None) -> BaselineAdminNetworkPolicy:
    spec: dict[str, Any] = {"subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return BaselineAdminNetworkPolicy.model_validate({"metadata": {"name": "default"}, "spec": spec})


def with_action(policy: Any, direction: str, index: int, action: str) -> Any:
    rules = [r.to_dict() for r in getattr(policy.spec, direction)]
    rules[index]["action"] = action
    return type(policy).model_validate({**policy.to_dict(), "spec": {**policy.spec.to_dict(), direction: rules}})


def reach(policies: list[Any], src: str, dst: str, port: int, proto: str = "TCP") -> bool:
    """One connection, decided by the walk, ``evaluate`` and the matrix alike."""
    namespaces, pods, nodes = cluster_objects()
    st = ClusterState.build(namespaces, pods, policies, nodes=nodes)
    s, d = st.endpoint(src), st.endpoint(dst)
    verdict = allowed(st, s, d, port, proto)
    assert evaluate(st, s, d, port, proto).allowed == verdict
    if s.is_pod and d.is_pod:
        m = compute_matrix(st, [port], [proto])
        assert m.allowed(f"{port}/{proto}", m.pods.index(s.key), m.pods.index(d.key)) == verdict
    return verdict


G0, G1 = "conformance-gryffindor/gryffindor-0", "conformance-gryffindor/gryffindor-1"
S0, S1 = "conformance-slytherin/slytherin-0", "conformance-slytherin/slytherin-1"
H0 = "conformance-hufflepuff/hufflepuff-0"
R0 = "conformance-ravenclaw/ravenclaw-0"
F0 = "conformance-forest/forest-0"


# --- admin, NetworkPolicy and baseline together (Pass) -----------------------------------------


def _integration() -> tuple[AdminNetworkPolicy, NetworkPolicy, BaselineAdminNetworkPolicy]:
    gryffindor = {"namespaces": house("gryffindor")}
    slytherin_peer = [{"namespaces": house("slytherin")}]
    pass_example = anp("pass-example", 10, gryffindor,
                       ingress=[{"name": "deny-all-ingress-from-slytherin", "action": "Deny", "from": slytherin_peer}],
                       egress=[{"name": "deny-all-egress-to-slytherin", "action": "Deny", "to": slytherin_peer}])
    np = NetworkPolicy.model_validate({"metadata": {"name": "allow-slytherin", "namespace": ns_name("gryffindor")}, "spec": {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": house("slytherin")}]}],
        "egress": [{"to": [{"namespaceSelector": house("slytherin")}]}]}})
    base = banp(gryffindor, ingress=[{"name": "deny-from-slytherin", "action": "Deny", "from": slytherin_peer}],
                egress=[{"name": "deny-to-slytherin", "action": "Deny", "to": slytherin_peer}])
    return pass_example, np, base


def test_integration_admin_deny_wins_over_networkpolicy_allow():
    pass_example, np, base = _integration()
    assert not reach([pass_example, np, base], S0, G0, 80)
    assert not reach([pass_example, np, base], S1, G0, 8080)
    assert not reach([pass_example, np, base], G0, S0, 80)
    assert not reach([pass_example, np, base], G1, S0, 8080)


def test_integration_pass_hands_over_to_networkpolicy_then_to_baseline():
    pass_example, np, base = _integration()
    passing = with_action(with_action(pass_example, "ingress", 0, "Pass"), "egress", 0, "Pass")
    assert reach([passing, np, base], S0, G0, 80) and reach([passing, np, base], S1, G0, 8080)
    assert reach([passing, np, base], G0, S0, 80) and reach([passing, np, base], G1, S0, 8080)
    # without the NetworkPolicy the baseline decides: Deny
    assert not reach([passing, base], S0, G0, 80) and not reach([passing, base], G1, S0, 8080)


# --- priority ---------------------------------------------------------------------------------------


def test_priority_lower_number_first_and_a_priority_change_reorders():
    gry = pods_of("gryffindor")
    sly = [pods_of("slytherin")]
    deny50 = anp("priority-50", 50, gry, ingress=[{"action": "Deny", "from": sly}], egress=[{"action": "Deny", "to": sly}])
    pass60 = anp("priority-60", 60, gry, ingress=[{"action": "Pass", "from": sly}], egress=[{"action": "Pass", "to": sly}])
    allow_base = banp(gry, ingress=[{"action": "Allow", "from": sly}], egress=[{"action": "Allow", "to": sly}])
    assert not reach([deny50, pass60, allow_base], S0, G0, 80)
    assert not reach([deny50, pass60, allow_base], G0, S1, 8080)
    pass40 = anp("priority-60", 40, gry, ingress=[{"action": "Pass", "from": sly}], egress=[{"action": "Pass", "to": sly}])
    assert reach([deny50, pass40, allow_base], S0, G0, 80)
    assert reach([deny50, pass40, allow_base], G0, S1, 8080)


# --- rules combined in one policy: first match, ports ------------------------------------------------


def _combined(order: tuple[str, str, str] = ("Allow", "Deny", "Pass")) -> AdminNetworkPolicy:
    by_name = {"kubernetes.io/metadata.name": ns_name("ravenclaw")}
    sly = [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": ns_name("slytherin")}}}]
    huf = [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": ns_name("hufflepuff")}}}]
    rav = [{"namespaces": {"matchLabels": by_name}}]
    numbers = [{"portNumber": {"protocol": "TCP", "port": 80}}, {"portNumber": {"protocol": "UDP", "port": 53}},
               {"portNumber": {"protocol": "SCTP", "port": 9003}}]
    huf_out = [{"portNumber": {"protocol": "TCP", "port": 8080}}, {"portNumber": {"protocol": "UDP", "port": 5353}},
               {"portNumber": {"protocol": "SCTP", "port": 9003}}]
    huf_in = [{"portNumber": {"protocol": "TCP", "port": 80}}, *huf_out[1:]]
    egress = [{"action": a, "to": rav} for a in order] + [
        {"action": "Deny", "to": sly, "ports": numbers}, {"action": "Pass", "to": sly, "ports": numbers},
        {"action": "Allow", "to": huf, "ports": huf_out}, {"action": "Deny", "to": huf}]
    ingress = [{"action": a, "from": rav} for a in order] + [
        {"action": "Deny", "from": sly, "ports": numbers}, {"action": "Pass", "from": sly, "ports": numbers},
        {"action": "Allow", "from": huf, "ports": huf_in}, {"action": "Deny", "from": huf}]
    return anp("gress-rules", 15, {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": ns_name("gryffindor")}}},
               ingress=ingress, egress=egress)


@pytest.mark.parametrize("order,expected", [(("Allow", "Deny", "Pass"), True), (("Deny", "Allow", "Pass"), False),
                                            (("Pass", "Deny", "Allow"), True)])
def test_the_first_matching_rule_of_a_policy_decides(order: tuple[str, str, str], expected: bool):
    policies = [_combined(order)]
    assert reach(policies, R0, G0, 80) is expected
    assert reach(policies, G0, R0, 8080) is expected


def test_port_rules_match_only_their_ports_and_protocols():
    policies = [_combined()]
    assert not reach(policies, S0, G0, 80) and not reach(policies, S0, G0, 53, "UDP")
    assert not reach(policies, S0, G0, 9003, "SCTP")
    assert reach(policies, S0, G0, 8080) and reach(policies, S0, G0, 5353, "UDP")  # no rule: the tier passes
    assert reach(policies, H0, G0, 80) and not reach(policies, H0, G0, 8080)
    assert reach(policies, G0, H0, 8080) and reach(policies, G0, H0, 5353, "UDP") and not reach(policies, G0, H0, 80)


def test_named_ports_and_port_ranges():
    gry = {"namespaces": house("gryffindor")}
    named = anp("named", 1, gry, ingress=[{"action": "Deny", "from": [{"namespaces": {}}], "ports": [{"namedPort": "web"}]}])
    assert not reach([named], S0, G0, 80) and reach([named], S0, G0, 8080)
    ranged = anp("range", 1, gry, egress=[{"action": "Deny", "to": [{"namespaces": {}}],
                                           "ports": [{"portRange": {"protocol": "UDP", "start": 5000, "end": 6000}}]}])
    assert not reach([ranged], G0, H0, 5353, "UDP") and reach([ranged], G0, H0, 53, "UDP")
    assert reach([ranged], G0, H0, 5353, "TCP")


# --- networks and nodes -------------------------------------------------------------------------------


def test_networks_match_pod_addresses_too():
    gry = pods_of("gryffindor")
    inline = anp("inline-cidr", 85, gry, egress=[
        {"action": "Allow", "to": [pods_of("slytherin")]},
        {"action": "Deny", "to": [{"networks": ["0.0.0.0/0", "::/0"]}]}])
    assert reach([inline], G0, S0, 80)
    assert not reach([inline], G0, H0, 80)  # a pod address inside 0.0.0.0/0
    assert not reach([inline], G0, "1.1.1.1", 443)
    assert reach([inline], H0, "1.1.1.1", 443)  # not a subject


def test_nodes_peers_match_node_addresses_and_host_network_pods():
    gry = {"namespaces": house("gryffindor")}
    to_nodes = anp("nodes", 1, gry, egress=[{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "worker"}}}]}])
    assert not reach([to_nodes], G0, "172.18.0.3", 10250)
    assert not reach([to_nodes], G0, "conformance-forest/node-agent", 8080)
    assert reach([to_nodes], G0, "172.18.0.2", 10250)  # the control-plane node


def test_baseline_rules_apply_only_where_nothing_earlier_decided():
    gry = {"namespaces": house("gryffindor")}
    base = banp(gry, ingress=[{"action": "Allow", "from": [pods_of("slytherin")]},
                              {"action": "Deny", "from": [{"namespaces": {}}]}])
    assert reach([base], S0, G0, 80) and not reach([base], H0, G0, 80)
    np_allow = NetworkPolicy.model_validate({"metadata": {"name": "allow-all", "namespace": ns_name("gryffindor")},
                                             "spec": {"podSelector": {}, "ingress": [{}]}})
    assert reach([base, np_allow], H0, G0, 80)


def test_cluster_network_policy_v1alpha2_admin_and_baseline():
    gry = {"namespaces": house("gryffindor")}
    admin = ClusterNetworkPolicy.model_validate({"metadata": {"name": "admin"}, "spec": {
        "tier": "Admin", "priority": 5, "subject": gry,
        "ingress": [{"action": "Pass", "from": [{"namespaces": house("slytherin")}]},
                    {"action": "Deny", "from": [{"namespaces": {}}], "protocols": [{"tcp": {"destinationPort": {"number": 80}}}]}]}})
    base = ClusterNetworkPolicy.model_validate({"metadata": {"name": "baseline"}, "spec": {
        "tier": "Baseline", "priority": 5, "subject": gry,
        "ingress": [{"action": "Deny", "from": [{"namespaces": house("slytherin")}]}]}})
    assert not reach([admin, base], H0, G0, 80) and reach([admin, base], H0, G0, 8080)
    assert not reach([admin, base], S0, G0, 80)  # passed by the admin tier, denied by the baseline
    assert reach([admin, base], F0, G0, 8080)
