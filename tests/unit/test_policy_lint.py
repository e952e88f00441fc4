"""Lint: each warning fires on the mistake it describes, and stays quiet on correct policies."""
from __future__ import annotations

from podnet.model.networking import IPBlock
from podnet.policy.cluster import ClusterState
from podnet.policy.ir import Provenance, ip_block_peer
from podnet.policy.lint import LintWarning, _check_block, lint

from test_policy_support import netpol, ns, pod

NAMESPACES = [ns("default"), ns("kube-system"), ns("prod", team="a")]


def pods():
    return [pod("default", "web", {"app": "web"}, "10.0.0.2", ports=[{"containerPort": 80, "name": "http"}]),
            pod("default", "client", {"run": "client"}, "10.0.0.3"),
            pod("prod", "api", {"app": "api"}, "10.0.1.2"),
            pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.0.9.2")]


def codes(*policies, locate=None) -> dict[str, list[LintWarning]]:
    out: dict[str, list[LintWarning]] = {}
    for w in lint(ClusterState.build(NAMESPACES, pods(), policies), locate):
        out.setdefault(w.code, []).append(w)
    return out


GOOD = netpol("default", "good", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client"}}}],
                                               "ports": [{"port": 80}]}]})


def test_correct_policy_has_no_findings():
    assert codes(GOOD) == {}


def test_selector_matching_no_pod_and_peer_scope_hint():
    found = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "nope"}}}),
                  netpol("default", "q", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
                      {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}))
    assert found["selects-no-pod"][0].policy == "default/p"
    peer = found["peer-selects-no-pod"][0]
    assert peer.field_path == "spec.ingress[0].from[0].podSelector"
    assert "add a namespaceSelector to the same peer" in peer.hint and "prod/api" in peer.hint


def test_namespace_selector_on_a_label_no_namespace_has():
    w = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"project": "default"}}}]}]}))["unknown-namespace-label"][0]
    assert "no namespace has label 'project'" in w.message
    assert "kubernetes.io/metadata.name: default" in w.hint
    w = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "zzz"}}}]}]}))["selects-no-namespace"][0]
    assert w.field_path == "spec.ingress[0].from[0].namespaceSelector"


def test_egress_isolation_that_blocks_dns():
    deny = netpol("default", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
    assert "egress-blocks-dns" in codes(deny)
    dns = netpol("default", "dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})
    assert "egress-blocks-dns" not in codes(deny, dns)


def test_policy_types_missing_or_inconsistent():
    found = codes(netpol("default", "eg-only", {"podSelector": {"matchLabels": {"app": "web"}},
                                                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}]}))
    assert "implicit-ingress-isolation" in found
    found = codes(netpol("default", "ignored", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                                                "ingress": [{}], "egress": [{}]}))
    assert "ignored-rules" in found and "Egress" in found["ignored-rules"][0].message


def test_empty_egress_list_without_policy_types_isolates_only_ingress():
    found = codes(netpol("default", "no-egress", {"podSelector": {"matchLabels": {"app": "web"}}, "egress": []}))
    w = found["empty-egress-not-isolating"][0]
    assert w.field_path == "spec.egress" and "policyTypes" in w.hint
    assert "implicit-ingress-isolation" not in found  # the default is [Ingress] here, not [Ingress, Egress]


def test_and_or_peer_confusion_both_ways():
    split = netpol("default", "split", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"podSelector": {"matchLabels": {"run": "client"}}}]}]})
    assert codes(split)["split-peer"][0].field_path == "spec.ingress[0].from[0]"
    joined = netpol("default", "joined", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"run": "client"}}}]}]})
    w = codes(joined)["peer-selects-no-pod"][0]
    assert "write them as two peers" in w.hint


def test_cidr_with_host_bits_and_except_outside():
    found = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.1/24"}}]}]}))
    assert "it means 10.0.0.0/24" in found["cidr-host-bits"][0].message
    # The model refuses an except outside its cidr at load time; lint checks the IR too.
    block = ip_block_peer(IPBlock.model_construct(cidr="10.0.0.0/24", except_=["10.9.0.0/24"]),
                          Provenance("default", "p", "ingress", 0, peer=0))
    got: list[tuple] = []
    _check_block(None, block, ("spec",), lambda *a: got.append(a))
    assert got and got[0][2] == "except-outside-cidr"


def test_named_port_no_selected_pod_declares():
    found = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"ports": [{"port": "metrics"}]}]}))
    assert found["undeclared-named-port"][0].field_path == "spec.ingress[0].ports[0]"
    found = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"ports": [{"port": "http", "protocol": "UDP"}]}]}))
    assert "declared for TCP, not UDP" in found["undeclared-named-port"][0].hint
    assert "undeclared-named-port" not in codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}},
                                                                       "ingress": [{"ports": [{"port": "http"}]}]}))


def test_redundant_policy():
    wider = netpol("default", "wider", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"run": "client"}}}]}]})
    found = codes(GOOD, wider)
    assert [w.policy for w in found["redundant-policy"]] == ["default/good"]
    assert "default/wider" in found["redundant-policy"][0].message


def test_dns_port_for_only_one_protocol():
    found = codes(netpol("default", "p", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                          "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}))
    assert "allowed for UDP but not TCP" in found["dns-one-protocol"][0].message


def test_locations_come_from_the_locator():
    pol = netpol("default", "p", {"podSelector": {"matchLabels": {"app": "nope"}}})
    found = codes(pol, locate=lambda ref, path: f"f.yaml:{len(path)}")
    assert found["selects-no-pod"][0].location == "f.yaml:2"
    assert str(found["selects-no-pod"][0]).startswith("f.yaml:2: default/p: spec.podSelector:")


def test_policy_files_alone_do_not_report_empty_selections():
    state = ClusterState.build([], [], [netpol("default", "p", {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"a": "b"}}}]}]})])
    assert {w.code for w in lint(state)} == set()
