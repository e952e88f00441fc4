"""Tiered policy semantics, case by case, from Calico's documented behaviour (tiers, order,
Allow/Deny/Pass/Log, GlobalNetworkPolicy, NetworkSets) and the network-policy-api types.

Each case checks the reference walk, ``evaluate`` and the class-based matrix agree (``ok``)."""
from __future__ import annotations

from typing import Any

import pytest

from podnet.errors import ValidationError
from podnet.manifest import load_text
from podnet.model import Node, Pod, Resource, kind_for
from podnet.policy.cluster import ClusterState
from podnet.policy.evaluate import evaluate
from podnet.policy.matrix import compute_matrix
from podnet.policy.walk import allowed

from test_policy_support import ns, pod

CALICO = "projectcalico.org/v3"
ANP_V1 = "policy.networking.k8s.io/v1alpha1"
CNP_V2 = "policy.networking.k8s.io/v1alpha2"
NAMESPACES = [ns("prod", env="prod"), ns("dev", env="dev"), ns("default")]


def obj(api: str, kind: str, name: str, spec: dict[str, Any] | None = None, namespace: str | None = None,
        labels: dict[str, str] | None = None) -> Resource:
    cls = kind_for(api, kind)
    assert cls is not None
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    body: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": meta}
    if spec is not None:
        body["spec"] = spec
    return cls.model_validate(body)


def gnp(name: str, **spec: Any) -> Resource:
    return obj(CALICO, "GlobalNetworkPolicy", name, spec)


def cnp(namespace: str, name: str, **spec: Any) -> Resource:
    return obj(CALICO, "NetworkPolicy", name, spec, namespace)


def tier(name: str, order: float | None = None, action: str | None = None) -> Resource:
    spec: dict[str, Any] = {}
    if order is not None:
        spec["order"] = order
    if action:
        spec["defaultAction"] = action
    return obj(CALICO, "Tier", name, spec)


def k8s(namespace: str, name: str, spec: dict[str, Any]) -> Resource:
    return obj("networking.k8s.io/v1", "NetworkPolicy", name, spec, namespace)


def pods() -> list[Pod]:
    return [
        pod("prod", "web", {"app": "web"}, "10.0.0.10", ports=[{"containerPort": 8080, "name": "http"}]),
        pod("prod", "client", {"role": "client"}, "10.0.0.11"),
        pod("dev", "client", {"role": "client"}, "10.0.1.11"),
        pod("dev", "tool", {}, "10.0.1.12"),
        pod("default", "host", {"role": "client"}, None, host_network=True, node="node2", host_ip="192.168.0.2"),
    ]


def state(*objs: Resource, extra_pods: list[Pod] | None = None, nodes: list[Node] | None = None) -> ClusterState:
    tiers = [o for o in objs if o.KIND == "Tier"]
    sets = [o for o in objs if o.KIND in ("NetworkSet", "GlobalNetworkSet")]
    policies = [o for o in objs if o not in tiers and o not in sets]
    return ClusterState.build(NAMESPACES, pods() + (extra_pods or []), policies, tiers=tiers,
                              network_sets=sets, nodes=nodes or [])


def ok(st: ClusterState, src: str, dst: str, port: int | None = 8080, proto: str = "TCP") -> bool:
    s, d = st.endpoint(src), st.endpoint(dst)
    ref = allowed(st, s, d, port, proto)
    assert evaluate(st, s, d, port, proto).allowed == ref
    if s.is_pod and d.is_pod:
        key = "ICMP" if proto == "ICMP" else f"{port}/{proto}"
        m = compute_matrix(st, [port] if port else [], [proto])
        assert m.allowed(key, m.pods.index(s.key), m.pods.index(d.key)) == ref
    return ref


ALLOW_ALL = [{"action": "Allow"}]
DENY_ALL = [{"action": "Deny"}]
PASS_ALL = [{"action": "Pass"}]


# --- tiers, order and the end-of-tier action --------------------------------------------------


def test_a_deny_in_an_earlier_tier_beats_an_allow_in_a_later_one():
    st = state(tier("security", 100), gnp("deny", tier="security", selector="app == 'web'", ingress=DENY_ALL),
               gnp("allow", selector="app == 'web'", ingress=ALLOW_ALL))
    assert not ok(st, "prod/client", "prod/web")


def test_end_of_tier_denies_only_endpoints_a_policy_of_the_tier_selects_in_that_direction():
    # An Egress-only policy in tier security does not make security deny ingress.
    st = state(tier("security", 100), gnp("eg", tier="security", selector="all()", types=["Egress"],
                                        egress=[{"action": "Allow", "destination": {"selector": "role == 'nobody'"}}]))
    assert ok(st, "8.8.8.8", "prod/web")  # ingress to web: security does not apply
    assert not ok(st, "prod/web", "8.8.8.8")  # egress of web: security applies, nothing matches → end of tier
    # A selected endpoint with no matching rule is denied at the end; one not selected is not.
    st = state(tier("security", 100), gnp("web-only", tier="security", selector="app == 'web'", ingress=[
        {"action": "Allow", "source": {"selector": "role == 'nobody'"}}]))
    assert not ok(st, "prod/client", "prod/web")
    assert ok(st, "prod/web", "prod/client")


def test_a_policy_with_no_rules_still_applies_default_deny():
    st = state(gnp("default-deny", selector="app == 'web'", types=["Ingress"]))
    assert not ok(st, "prod/client", "prod/web")
    assert ok(st, "prod/web", "prod/client")


def test_pass_goes_to_the_next_tier_that_applies_and_the_last_pass_reaches_the_profile():
    st = state(tier("first", 10), tier("second", 20),
               gnp("p", tier="first", selector="all()", ingress=PASS_ALL),
               gnp("d", tier="second", selector="app == 'web'", ingress=DENY_ALL))
    assert not ok(st, "prod/client", "prod/web")  # first passes, second denies
    assert ok(st, "prod/web", "prod/client")  # first passes, no later tier applies: the profile allows
    v = evaluate(st, st.endpoint("prod/web"), st.endpoint("prod/client"), 8080)
    assert v.ingress is not None and [s.kind for s in v.ingress.path] == ["rule", "profile"]
    assert "tier first passed it" in v.ingress.note


def test_tier_default_action_pass():
    st = state(tier("soft", 10, "Pass"), gnp("nothing", tier="soft", selector="all()",
                                          ingress=[{"action": "Deny", "source": {"selector": "role == 'nobody'"}}]))
    assert ok(st, "prod/client", "prod/web")


def test_tiers_without_order_run_last_and_equal_orders_go_by_name():
    # "aaa" at the default tier's order runs before default, "zzz" after it.
    deny = [{"action": "Deny"}]
    for name, first in (("aaa", True), ("zzz", False)):
        st = state(tier(name, 1_000_000), gnp("allow", selector="app == 'web'", ingress=ALLOW_ALL),
                   gnp("deny", tier=name, selector="app == 'web'", ingress=deny))
        assert ok(st, "prod/client", "prod/web") is not first
    # A tier without order comes after kube-baseline too.
    st = state(tier("unordered"), gnp("deny", tier="unordered", selector="app == 'web'", ingress=deny),
               obj(ANP_V1, "BaselineAdminNetworkPolicy", "default", {
                   "subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}))
    assert ok(st, "prod/client", "prod/web")
    assert [t.name for t in st.tiers] == ["kube-admin", "default", "kube-baseline", "unordered"]


def test_an_undefined_tier_sorts_after_the_defined_ones_and_denies_at_its_end():
    st = state(tier("late", 99_000_000), gnp("x", tier="ghost", selector="app == 'web'",
                                          ingress=[{"action": "Allow", "source": {"selector": "role == 'nobody'"}}]))
    assert [t.name for t in st.tiers][-1] == "ghost" and not st.tier("ghost").defined
    assert not ok(st, "prod/client", "prod/web")


def test_policies_in_a_tier_by_order_then_name_none_last():
    deny, allow = [{"action": "Deny"}], [{"action": "Allow"}]
    assert not ok(state(gnp("b", order=1, selector="app == 'web'", ingress=deny),
                        gnp("a", order=2, selector="app == 'web'", ingress=allow)), "prod/client", "prod/web")
    assert ok(state(gnp("b", order=5, selector="app == 'web'", ingress=deny),
                    gnp("a", order=5, selector="app == 'web'", ingress=allow)), "prod/client", "prod/web")
    assert ok(state(gnp("a", selector="app == 'web'", ingress=deny),
                    gnp("z", order=9999, selector="app == 'web'", ingress=allow)), "prod/client", "prod/web")


def test_kubernetes_networkpolicy_sits_at_order_1000_in_the_default_tier():
    np = k8s("prod", "web", {"podSelector": {"matchLabels": {"app": "web"}},
                             "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    # A Calico policy ordered before 1000 decides first.
    st = state(np, cnp("prod", "deny-first", order=500, selector="app == 'web'", ingress=DENY_ALL))
    assert not ok(st, "prod/client", "prod/web")
    # A selecting NetworkPolicy that does not match is not final: a later policy of the tier still allows.
    st = state(np, cnp("prod", "allow-later", order=2000, selector="app == 'web'",
                       ingress=[{"action": "Allow", "source": {"selector": "!has(role)"}}]))
    assert not ok(st, "dev/client", "prod/web")  # the NP does not match, neither does the later policy
    assert ok(st, "prod/client", "prod/web")  # the NP allows
    assert ok(st, "dev/tool", "prod/web") is False  # another namespace: the Calico NP's selector is namespace-scoped
    st = state(np, gnp("allow-later", order=2000, selector="app == 'web'", ingress=[{"action": "Allow"}]))
    assert ok(st, "dev/client", "prod/web")


def test_log_is_not_terminal():
    st = state(gnp("log", selector="app == 'web'", ingress=[{"action": "Log"}, {"action": "Deny"}]))
    assert not ok(st, "prod/client", "prod/web")
    v = evaluate(st, st.endpoint("prod/client"), st.endpoint("prod/web"), 8080)
    assert v.ingress is not None and [s.action for s in v.ingress.path] == ["Log", "Deny"]


# --- types --------------------------------------------------------------------------------------


def test_types_default_from_the_rules_and_explicit_types_ignore_the_other_direction():
    # Only egress rules: types default to [Egress], so ingress is not governed.
    st = state(gnp("eg", selector="app == 'web'", egress=[{"action": "Deny"}]))
    assert ok(st, "prod/client", "prod/web")
    assert not ok(st, "prod/web", "prod/client")
    # Explicit types [Ingress]: the egress rules are ignored.
    st = state(gnp("in", selector="app == 'web'", types=["Ingress"], ingress=ALLOW_ALL, egress=DENY_ALL))
    assert ok(st, "prod/web", "prod/client")
    assert st.policies[0].ignored_directions == ("egress",)


# --- selectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("selector,matches", [
    ("tier != 'db'", True),            # a missing label makes != true
    ("tier not in {'db'}", True),      # … and not in
    ("tier notin {'db'}", True),
    ("tier in {'db'}", False),
    ("!has(tier)", True),
    ("!has(role) || role == 'client' && has(tier)", False),  # ! binds tighter than &&, && than ||
    ("has(role) && role starts with 'cli' && role ends with 'nt' && role contains 'ie'", True),
    ("projectcalico.org/namespace == 'prod' && pcns.env == 'prod'", True),
    ("pcns.projectcalico.org/name == 'prod' && projectcalico.org/orchestrator == 'k8s'", True),
    ("projectcalico.org/serviceaccount == 'default'", True),
    ("global()", True),
])
def test_calico_selector_semantics_on_pod_labels(selector: str, matches: bool):
    st = state(gnp("allow", selector="app == 'web'", ingress=[{"action": "Allow", "source": {"selector": selector}}]))
    assert ok(st, "prod/client", "prod/web") is matches


def test_rule_selector_scope_namespaced_vs_global():
    rule = [{"action": "Allow", "source": {"selector": "role == 'client'"}}]
    st = state(cnp("prod", "np", selector="app == 'web'", ingress=rule))
    assert ok(st, "prod/client", "prod/web") and not ok(st, "dev/client", "prod/web")
    st = state(gnp("g", selector="app == 'web'", ingress=rule))
    assert ok(st, "prod/client", "prod/web") and ok(st, "dev/client", "prod/web")
    # namespaceSelector widens a namespaced policy's rule; projectcalico.org/name names namespaces
    st = state(cnp("prod", "np", selector="app == 'web'", ingress=[
        {"action": "Allow", "source": {"selector": "role == 'client'", "namespaceSelector": "projectcalico.org/name == 'dev'"}}]))
    assert ok(st, "dev/client", "prod/web") and not ok(st, "prod/client", "prod/web")
    st = state(cnp("prod", "np", selector="app == 'web'", ingress=[
        {"action": "Allow", "source": {"namespaceSelector": "all()"}}]))
    assert ok(st, "dev/tool", "prod/web") and not ok(st, "8.8.8.8", "prod/web")


def test_not_selector_is_namespace_scoped_in_a_namespaced_policy_and_unscoped_in_a_global_one():
    rule = [{"action": "Allow", "source": {"notSelector": "role == 'client'"}}]
    st = state(cnp("prod", "np", selector="app == 'web'", ingress=rule))
    assert not ok(st, "prod/client", "prod/web")
    assert not ok(st, "dev/tool", "prod/web")  # other namespace: outside the positive (own namespace) part
    assert not ok(st, "8.8.8.8", "prod/web")
    st = state(gnp("g", selector="app == 'web'", ingress=rule))
    assert ok(st, "dev/tool", "prod/web") and ok(st, "8.8.8.8", "prod/web") and not ok(st, "dev/client", "prod/web")


def test_selector_all_is_not_any_packet_and_an_omitted_selector_is():
    st = state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", "source": {"selector": "all()"}}]))
    assert ok(st, "dev/tool", "prod/web") and not ok(st, "8.8.8.8", "prod/web")
    st = state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow"}]))
    assert ok(st, "8.8.8.8", "prod/web")


def test_network_sets_are_matched_by_address():
    netset = obj(CALICO, "NetworkSet", "partners", {"nets": ["10.0.1.0/24", "8.8.8.0/24"]}, "prod", {"kind": "partner"})
    gset = obj(CALICO, "GlobalNetworkSet", "dns", {"nets": ["8.8.8.8/32"]}, labels={"kind": "dns"})
    # dev/tool's labels do not match, but its address lies in the prod NetworkSet the selector matches
    st = state(netset, cnp("prod", "np", selector="app == 'web'", ingress=[
        {"action": "Allow", "source": {"selector": "kind == 'partner'"}}]))
    assert ok(st, "dev/tool", "prod/web") and ok(st, "8.8.8.1", "prod/web") and not ok(st, "prod/client", "prod/web")
    # a GlobalNetworkSet is seen by a namespaced policy only through namespaceSelector global()
    rule = {"action": "Allow", "source": {"selector": "kind == 'dns'"}}
    st = state(gset, cnp("prod", "np", selector="app == 'web'", ingress=[rule]))
    assert not ok(st, "8.8.8.8", "prod/web")
    st = state(gset, cnp("prod", "np", selector="app == 'web'", ingress=[
        {**rule, "source": {**rule["source"], "namespaceSelector": "global()"}}]))
    assert ok(st, "8.8.8.8", "prod/web")
    st = state(gset, gnp("g", selector="app == 'web'", ingress=[rule]))
    assert ok(st, "8.8.8.8", "prod/web")
    # notSelector removes network-set addresses too
    st = state(gset, gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", "source": {"notSelector": "kind == 'dns'"}}]))
    assert not ok(st, "8.8.8.8", "prod/web") and ok(st, "8.8.4.4", "prod/web")


def test_service_accounts():
    robot = pod("prod", "robot", {"role": "client"}, "10.0.0.20")
    robot = robot.model_copy(update={"spec": robot.spec.model_copy(update={"service_account_name": "builder"})})
    st = state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", "source": {"serviceAccounts": {"names": ["builder"]}}}]),
               extra_pods=[robot])
    assert ok(st, "prod/robot", "prod/web") and not ok(st, "prod/client", "prod/web")
    st = state(gnp("g", selector="app == 'web'", serviceAccountSelector="projectcalico.org/name == 'builder'",
                   ingress=DENY_ALL), extra_pods=[robot.model_copy(update={"metadata": robot.metadata.model_copy(
                       update={"name": "web2", "labels": {"app": "web"}})}), ])
    assert not ok(st, "prod/client", "prod/web2") and ok(st, "prod/client", "prod/web")


# --- rule matches -------------------------------------------------------------------------------


def test_protocol_ports_ranges_named_ports_and_not_ports():
    def rule(**r: Any) -> ClusterState:
        return state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", **r}]))
    st = rule(protocol="TCP", destination={"ports": ["8000:8090"]})
    assert ok(st, "prod/client", "prod/web", 8080) and not ok(st, "prod/client", "prod/web", 8091)
    assert not ok(st, "prod/client", "prod/web", 8080, "UDP")
    st = rule(protocol=6, destination={"ports": ["http"]})  # a protocol number; a named port on the destination
    assert ok(st, "prod/client", "prod/web", 8080) and not ok(st, "prod/client", "prod/web", 80)
    st = rule(protocol="TCP", destination={"notPorts": [8080]})
    assert not ok(st, "prod/client", "prod/web", 8080) and ok(st, "prod/client", "prod/web", 81)
    st = rule(notProtocol="UDP")
    assert ok(st, "prod/client", "prod/web", 8080) and not ok(st, "prod/client", "prod/web", 8080, "UDP")
    st = rule(destination={"ports": ["http"]})  # a named port without protocol: any protocol of that name
    assert ok(st, "prod/client", "prod/web", 8080)


def test_icmp_type_and_code_are_part_of_the_matrix():
    def rule(**r: Any) -> ClusterState:
        return state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", "protocol": "ICMP", **r}]))
    assert ok(rule(), "prod/client", "prod/web", None, "ICMP")
    assert ok(rule(icmp={"type": 8}), "prod/client", "prod/web", None, "ICMP")  # echo request
    assert ok(rule(icmp={"type": 8, "code": 0}), "prod/client", "prod/web", None, "ICMP")
    assert not ok(rule(icmp={"type": 0}), "prod/client", "prod/web", None, "ICMP")  # echo reply only
    assert not ok(rule(notICMP={"type": 8}), "prod/client", "prod/web", None, "ICMP")
    assert not ok(rule(), "prod/client", "prod/web", 8080, "TCP")
    assert not ok(state(gnp("g", selector="app == 'web'", ingress=[{"action": "Allow", "protocol": "ICMPv6"}])),
                  "prod/client", "prod/web", None, "ICMP")


def test_nets_and_not_nets_and_the_subjects_own_end():
    st = state(gnp("g", selector="app == 'web'", ingress=[
        {"action": "Allow", "source": {"nets": ["10.0.0.0/16"], "notNets": ["10.0.1.0/24"]}}]))
    assert ok(st, "prod/client", "prod/web") and not ok(st, "dev/client", "prod/web")
    # destination.selector of an ingress rule constrains the selected endpoint itself
    st = state(gnp("g", selector="all()", ingress=[{"action": "Allow", "destination": {"selector": "app == 'web'"}}]))
    assert ok(st, "dev/client", "prod/web") and not ok(st, "prod/web", "dev/client")


# --- AdminNetworkPolicy / BaselineAdminNetworkPolicy / ClusterNetworkPolicy -----------------------


def anp(name: str, priority: int, subject: dict[str, Any], **rules: Any) -> Resource:
    return obj(ANP_V1, "AdminNetworkPolicy", name, {"priority": priority, "subject": subject, **rules})


def banp(subject: dict[str, Any], **rules: Any) -> Resource:
    return obj(ANP_V1, "BaselineAdminNetworkPolicy", "default", {"subject": subject, **rules})


PROD = {"namespaces": {"matchLabels": {"env": "prod"}}}
DEV_PEER = [{"namespaces": {"matchLabels": {"env": "dev"}}}]


def test_admin_and_baseline_tiers_pass_when_no_rule_matches():
    st = state(anp("a", 10, PROD, ingress=[{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"env": "qa"}}}]}]))
    assert ok(st, "dev/client", "prod/web")
    st = state(banp(PROD, ingress=[{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"env": "qa"}}}]}]))
    assert ok(st, "dev/client", "prod/web")


def test_admin_beats_networkpolicy_which_beats_baseline():
    np_allow = k8s("prod", "allow-dev", {"podSelector": {},
                                         "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}]})
    deny = anp("deny-dev", 10, PROD, ingress=[{"action": "Deny", "from": DEV_PEER}])
    passing = anp("pass-dev", 10, PROD, ingress=[{"action": "Pass", "from": DEV_PEER}])
    base_deny = banp(PROD, ingress=[{"action": "Deny", "from": DEV_PEER}])
    assert not ok(state(deny, np_allow), "dev/client", "prod/web")
    assert ok(state(passing, np_allow, base_deny), "dev/client", "prod/web")  # Pass → the NetworkPolicy allows
    assert not ok(state(passing, base_deny), "dev/client", "prod/web")  # Pass → no NetworkPolicy → baseline denies
    assert ok(state(anp("allow-dev", 10, PROD, ingress=[{"action": "Allow", "from": DEV_PEER}]),
                    k8s("prod", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]})), "dev/client", "prod/web")


def test_admin_priority_lower_first():
    allow = anp("allow", 5, PROD, ingress=[{"action": "Allow", "from": DEV_PEER}])
    deny = anp("deny", 6, PROD, ingress=[{"action": "Deny", "from": DEV_PEER}])
    assert ok(state(allow, deny), "dev/client", "prod/web")
    deny_first = anp("deny", 4, PROD, ingress=[{"action": "Deny", "from": DEV_PEER}])
    assert not ok(state(allow, deny_first), "dev/client", "prod/web")


def test_admin_networks_match_pod_addresses_and_nodes_match_node_addresses():
    st = state(anp("deny-all-v4", 1, {"namespaces": {}}, egress=[{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}]))
    assert not ok(st, "prod/client", "prod/web") and not ok(st, "prod/client", "8.8.8.8")
    nodes = [Node.model_validate({"metadata": {"name": "node2", "labels": {"zone": "b"}},
                                  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"}]}})]
    st = state(anp("to-nodes", 1, {"namespaces": {}}, egress=[{"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "b"}}}]}]),
               nodes=nodes)
    assert not ok(st, "prod/client", "192.168.0.2") and not ok(st, "prod/client", "default/host")
    assert ok(st, "prod/client", "192.168.0.3")


def test_admin_subjects_and_pod_peers_never_include_host_network_pods():
    st = state(anp("deny", 1, {"namespaces": {}}, ingress=[{"action": "Deny", "from": [{"namespaces": {}}]}]))
    assert not ok(st, "dev/client", "prod/web")
    assert ok(st, "default/host", "prod/web")  # a hostNetwork source is no namespaces peer
    assert ok(st, "prod/web", "default/host")  # nor a subject


def test_admin_ports_named_and_ranges():
    st = state(anp("deny", 1, PROD, ingress=[{"action": "Deny", "from": DEV_PEER, "ports": [{"namedPort": "http"}]}]))
    assert not ok(st, "dev/client", "prod/web", 8080) and ok(st, "dev/client", "prod/web", 80)
    st = state(anp("deny", 1, PROD, ingress=[{"action": "Deny", "from": DEV_PEER,
                                             "ports": [{"portRange": {"protocol": "UDP", "start": 53, "end": 60}}]}]))
    assert not ok(st, "dev/client", "prod/web", 55, "UDP") and ok(st, "dev/client", "prod/web", 55, "TCP")


def test_cluster_network_policy_tiers_and_accept():
    admin = obj(CNP_V2, "ClusterNetworkPolicy", "a", {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
                                                       "egress": [{"action": "Accept", "to": [{"namespaces": {}}]}]})
    deny_in = k8s("prod", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    # An egress Accept does not override the destination's ingress rules.
    assert not ok(state(admin, deny_in), "dev/client", "prod/web")
    assert ok(state(admin), "dev/client", "prod/web")
    base = obj(CNP_V2, "ClusterNetworkPolicy", "b", {"tier": "Baseline", "priority": 1, "subject": PROD,
                                                      "ingress": [{"action": "Deny", "from": DEV_PEER,
                                                                   "protocols": [{"tcp": {"destinationPort": {"number": 8080}}}]}]})
    assert not ok(state(base), "dev/client", "prod/web", 8080) and ok(state(base), "dev/client", "prod/web", 81)


# --- validation, located ------------------------------------------------------------------------


@pytest.mark.parametrize("doc,where,message", [
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n"
     "  - action: Allow\n    destination:\n      ports: [80]\n",
     ":6:", "spec.ingress[0].protocol: rules that specify numeric ports must set protocol"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  selector: \"a == \"\n",
     ":5:", "spec.selector: selector 'a == '"),
    ("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  egress:\n  - action: Allow\n"
     "    destination:\n      nets: [10.0.0.0/40]\n",
     ":8:", "spec.egress[0].destination.nets[0]: '10.0.0.0/40' is not a valid CIDR"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n"
     "  - action: allow\n", ":6:", "spec.ingress[0].action: unsupported value string 'allow'"),
    ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress:\n"
     "  - action: Allow\n    icmp: {type: 8}\n", ":7:", "icmp: ICMP type and code are only valid with protocol ICMP"),
    ("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 5}\n",
     ":4:", "spec.order: the default tier's order is fixed"),
    ("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\n"
     "spec:\n  subject: {namespaces: {}}\n", ":3:", "metadata.name: only one BaselineAdminNetworkPolicy"),
    ("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n"
     "  priority: 1001\n  subject: {namespaces: {}}\n", ":5:", "spec.priority: 1001 must be between 0 and 1000"),
    ("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n"
     "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{}]\n",
     ":9:", "spec.egress[0].to[0]: a peer must set exactly one of"),
    ("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec:\n"
     "  priority: 1\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to: [{networks: [10.0.0.0/8]}]\n"
     "    ports: [{namedPort: http}]\n", ":10:", "networks/nodes peers cannot be combined with named ports"),
    ("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec:\n"
     "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n  ingress:\n  - action: Allow\n    from: [{namespaces: {}}]\n",
     ":9:", "spec.ingress[0].action: unsupported value string 'Allow': must be one of Accept, Deny, Pass"),
])
def test_validation_errors_are_located(doc: str, where: str, message: str):
    with pytest.raises(ValidationError) as exc:
        load_text(doc, "policy.yaml")
    text = str(exc.value)
    assert message in text and f"policy.yaml{where}" in text, text
