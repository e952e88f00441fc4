"""Model rules as the Kubernetes and Calico APIs define them, checked on the values directly."""
from __future__ import annotations

import pydantic
import pytest

from podnet.model import BGPConfiguration, BGPPeer, IPPool, NetworkPolicy, Service
from podnet.model import validation as v
from podnet.model.calico_selector import parse_selector
from podnet.model.registry import lookup_resource
from podnet.model.selectors import LabelSelector, parse_label_selector_string


def policy(spec: dict) -> NetworkPolicy:
    return NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                         "metadata": {"name": "p", "namespace": "default"}, "spec": spec})


def test_policy_defaults_and_round_trip() -> None:
    p = policy({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]})
    assert p.spec.effective_policy_types == ("Ingress", "Egress")
    assert p.spec.egress[0].ports[0].protocol == "TCP"
    assert NetworkPolicy.model_validate(p.to_dict()) == p
    assert policy({"podSelector": {}}).spec.effective_policy_types == ("Ingress",)


def test_policy_types_as_the_api_server_validates_and_defaults_them() -> None:
    # egress: [] adds no Egress to the default; a repeated type is accepted (the API server
    # only limits the list to two entries of Ingress/Egress); three entries are refused.
    assert policy({"podSelector": {}, "egress": []}).spec.effective_policy_types == ("Ingress",)
    assert policy({"podSelector": {}, "policyTypes": ["Egress", "Egress"]}).spec.effective_policy_types == ("Egress",)
    with pytest.raises(pydantic.ValidationError, match="more than two policyTypes"):
        policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]})


def test_end_port_and_named_port_rules() -> None:
    assert policy({"podSelector": {}, "ingress": [{"ports": [{"port": 30000, "endPort": 32767}]}]})
    assert policy({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})
    with pytest.raises(pydantic.ValidationError, match="named port"):
        policy({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]})


def test_label_selector_matching() -> None:
    sel = LabelSelector.model_validate({"matchLabels": {"app": "web"},
                                        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]})
    assert sel.matches({"app": "web"}) and sel.matches({"app": "web", "tier": "front"})
    assert not sel.matches({"app": "web", "tier": "db"}) and not sel.matches({})
    assert sel.describe() == "app=web,tier notin (db)"
    parsed = parse_label_selector_string("app=web,tier!=db,env in (a,b),!legacy,has")
    assert parsed.matches({"app": "web", "env": "a", "has": ""})
    assert not parsed.matches({"app": "web", "env": "c", "has": ""})
    assert not parsed.matches({"app": "web", "env": "a", "has": "", "legacy": "1"})


def test_label_selector_describe_orders_terms_and_values_as_kubectl() -> None:
    # kubectl's FormatLabelSelector sorts the requirements by key and each value list.
    sel = LabelSelector.model_validate({"matchLabels": {"tier": "web"}, "matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["b", "a"]}, {"key": "app", "operator": "Exists"}]})
    assert sel.describe() == "app,tier=web,zone in (a,b)"


def test_label_selector_string_edge_cases_as_kubectl() -> None:
    both = parse_label_selector_string("app=a,app=b")  # every term must hold, even on one key
    assert not both.matches({"app": "a"}) and not both.matches({"app": "b"})
    with pytest.raises(ValueError, match=r"unclosed '\('"):
        parse_label_selector_string("app in (a,b")
    with pytest.raises(ValueError, match="key 'a b' is not valid") as info:
        parse_label_selector_string("a b=c")
    assert "pydantic" not in str(info.value)


@pytest.mark.parametrize("text,labels,expected", [
    ("all()", {}, True),
    ("route-reflector == 'true'", {"route-reflector": "true"}, True),
    ("route-reflector == 'true'", {}, False),
    ("has(zone) && zone in {'a', 'b'}", {"zone": "b"}, True),
    ("!has(zone) || zone not in {'a'}", {"zone": "a"}, False),
    ("(a == 'x' || b == 'y') && !(c != 'z')", {"b": "y", "c": "z"}, True),
])
def test_calico_selectors(text: str, labels: dict, expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


def test_calico_selector_syntax_error_names_position() -> None:
    with pytest.raises(ValueError, match="position"):
        parse_selector("role = 'x'")
    with pytest.raises(ValueError, match="expected ',' or '}' at position 11"):
        parse_selector("k in {'a' 'b'}")


def test_ippool_rules() -> None:
    base = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}}
    pool = IPPool.model_validate({**base, "spec": {"cidr": "10.244.0.0/16"}})
    assert (pool.spec.effective_block_size, pool.spec.ipip_mode, pool.spec.node_selector) == (26, "Never", "all()")
    with pytest.raises(pydantic.ValidationError, match="cannot both be enabled"):
        IPPool.model_validate({**base, "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always", "vxlanMode": "Always"}})
    with pytest.raises(pydantic.ValidationError, match="IPv6"):
        IPPool.model_validate({**base, "spec": {"cidr": "fd00::/48", "ipipMode": "Always"}})
    with pytest.raises(pydantic.ValidationError, match="between 20 and 32"):
        IPPool.model_validate({**base, "spec": {"cidr": "10.244.0.0/16", "blockSize": 16}})


def test_bgp_rules() -> None:
    base = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "p"}}
    assert BGPPeer.model_validate({**base, "spec": {"peerIP": "[fd00::1]:179", "asNumber": 64512}})
    with pytest.raises(pydantic.ValidationError, match="must be empty when peerSelector"):
        BGPPeer.model_validate({**base, "spec": {"peerSelector": "all()", "asNumber": 64512}})
    with pytest.raises(pydantic.ValidationError, match="peerIP"):
        BGPPeer.model_validate({**base, "spec": {"peerIP": "not-an-ip", "asNumber": 1}})
    node_cfg = {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "node.a"}}
    assert BGPConfiguration.model_validate({**node_cfg, "spec": {"logSeverityScreen": "Debug"}})
    with pytest.raises(pydantic.ValidationError, match="only be set in the BGPConfiguration named 'default'"):
        BGPConfiguration.model_validate({**node_cfg, "spec": {"asNumber": 64512}})


def test_service_ports_as_the_api_server_defaults_and_validates_them() -> None:
    base = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}

    def svc(*ports: dict) -> Service:
        return Service.model_validate({**base, "spec": {"ports": list(ports)}})

    # targetPort 0 or "" is defaulted to port, not refused
    assert svc({"port": 80, "targetPort": 0}) and svc({"port": 80, "targetPort": ""})
    with pytest.raises(pydantic.ValidationError, match="duplicate port 80/TCP"):
        svc({"name": "a", "port": 80}, {"name": "b", "port": 80, "targetPort": 8080})
    assert svc({"name": "a", "port": 53, "protocol": "UDP"}, {"name": "b", "port": 53})  # one per protocol


@pytest.mark.parametrize("kind,spec", [
    ("BGPPeer", {"peerIP": "10.0.0.1", "asNumber": 0}),
    ("BGPConfiguration", {"asNumber": 4294967296}),
    ("Node", {"bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": 0}}),
])
def test_as_numbers_are_checked_wherever_they_appear(kind: str, spec: dict) -> None:
    cls = lookup_resource("caliconode" if kind == "Node" else kind)
    assert cls is not None
    with pytest.raises(pydantic.ValidationError, match="AS number .* must be between 1 and 4294967295"):
        cls.model_validate({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": "default"},
                            "spec": spec})


def test_headless_service_needs_no_ports() -> None:
    base = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}}
    assert Service.model_validate({**base, "spec": {"clusterIP": "None", "selector": {"app": "db"}}})
    with pytest.raises(pydantic.ValidationError, match="at least one port"):
        Service.model_validate({**base, "spec": {"selector": {"app": "db"}}})


@pytest.mark.parametrize("rule,name,ok", [
    ("dns1123-subdomain", "web.example", True), ("dns1123-subdomain", "Web", False),
    ("dns1123-label", "kube-system", True), ("dns1123-label", "a.b", False),
    ("dns1035-label", "web", True), ("dns1035-label", "1web", False),
    ("dns1123-label", "x" * 63, True), ("dns1123-label", "x" * 64, False),
])
def test_object_name_rules(rule: str, name: str, ok: bool) -> None:
    if ok:
        v.check_object_name(rule, name)
    else:
        with pytest.raises(ValueError):
            v.check_object_name(rule, name)


@pytest.mark.parametrize("typed,kind", [
    ("po", "Pod"), ("pods", "Pod"), ("netpol", "NetworkPolicy"), ("networkpolicies.networking.k8s.io", "NetworkPolicy"),
    ("svc", "Service"), ("deploy", "Deployment"), ("no", "Node"), ("ns", "Namespace"), ("ippool", "IPPool"),
    ("bgpconfig", "BGPConfiguration"), ("bgppeers", "BGPPeer"), ("caliconode", "Node"),
])
def test_kind_names(typed: str, kind: str) -> None:
    cls = lookup_resource(typed)
    assert cls is not None and cls.KIND == kind
