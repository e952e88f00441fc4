"""Lint for tiered policy: each finding fires on the mistake it names and stays quiet otherwise."""
from __future__ import annotations

from typing import Any

from podnet.policy.lint import LintWarning, lint

from test_policy_tiers import ANP_V1, CALICO, gnp, k8s, obj, state, tier


def codes(*objs: Any) -> dict[str, list[LintWarning]]:
    out: dict[str, list[LintWarning]] = {}
    for w in lint(state(*objs)):
        out.setdefault(w.code, []).append(w)
    return out


WEB = "app == 'web'"


def test_well_ordered_tiers_have_no_findings():
    assert codes(tier("security", 100),
                 gnp("deny-dev", tier="security", order=1, selector=WEB, ingress=[
                     {"action": "Deny", "source": {"namespaceSelector": "env == 'dev'"}}, {"action": "Pass"}]),
                 k8s("prod", "web", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]})) == {}


def test_deny_shadowed_by_an_earlier_allow_in_the_policy_or_an_earlier_policy():
    found = codes(gnp("p", selector=WEB, ingress=[{"action": "Allow"}, {"action": "Deny", "source": {"nets": ["10.0.0.0/8"]}}]))
    assert [w.path for w in found["deny-shadowed"]] == [("spec", "ingress", 1)]
    found = codes(gnp("first", order=1, selector="all()", ingress=[{"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}}]),
                  gnp("second", order=2, selector=WEB, ingress=[{"action": "Deny", "source": {"nets": ["10.0.1.0/24"]}}]))
    assert found["deny-shadowed"][0].policy == "gnp:second" and "gnp:first" in found["deny-shadowed"][0].message
    # the Allow covers less, or the earlier policy applies to fewer pods: no finding
    assert "deny-shadowed" not in codes(gnp("p", selector=WEB, ingress=[
        {"action": "Allow", "source": {"nets": ["10.0.1.0/24"]}}, {"action": "Deny", "source": {"nets": ["10.0.0.0/8"]}}]))
    assert "deny-shadowed" not in codes(
        gnp("first", order=1, selector="role == 'client'", ingress=[{"action": "Allow"}]),
        gnp("second", order=2, selector="all()", ingress=[{"action": "Deny"}]))


def test_pass_with_no_later_tier_reaches_the_profile():
    found = codes(tier("security", 100), gnp("p", tier="security", selector=WEB, ingress=[{"action": "Pass"}]))
    assert found["pass-reaches-profile"][0].path == ("spec", "ingress", 0)
    assert "pass-reaches-profile" not in codes(
        tier("security", 100), gnp("p", tier="security", selector=WEB, ingress=[{"action": "Pass"}]),
        k8s("prod", "web", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}))


def test_order_collision():
    found = codes(gnp("a", order=5, selector=WEB, ingress=[{"action": "Deny"}]),
                  gnp("b", order=5, selector="all()", ingress=[{"action": "Allow"}]))
    assert found["order-collision"][0].policy == "gnp:b" and "the name decides" in found["order-collision"][0].message
    assert "order-collision" not in codes(gnp("a", order=5, selector=WEB, ingress=[{"action": "Allow"}]),
                                          gnp("b", order=5, selector="all()", ingress=[{"action": "Allow"}]))
    anps = [obj(ANP_V1, "AdminNetworkPolicy", n, {"priority": 3, "subject": {"namespaces": {}},
                                                   "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]})
            for n in ("x", "y")]
    assert "implementation-defined" in codes(*anps)["order-collision"][0].message


def test_selectors_that_match_nothing_and_undefined_tiers():
    found = codes(gnp("g", tier="ghost", selector="app == 'none'",
                      ingress=[{"action": "Allow", "source": {"selector": "role == 'none'"}}]),
                  obj(ANP_V1, "AdminNetworkPolicy", "a", {"priority": 1, "subject": {"namespaces": {}}, "egress": [
                      {"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "mars"}}}]}]}))
    assert {"undefined-tier", "selects-no-pod", "peer-selects-nothing"} <= set(found)
    assert {w.path for w in found["peer-selects-nothing"]} == {("spec", "ingress", 0, "source"), ("spec", "egress", 0, "to", 0)}
    # a selector that matches a network set's labels does match something
    netset = obj(CALICO, "GlobalNetworkSet", "dns", {"nets": ["8.8.8.8/32"]}, labels={"role": "none"})
    assert "peer-selects-nothing" not in codes(netset, gnp("g", selector=WEB, ingress=[
        {"action": "Allow", "source": {"selector": "role == 'none'"}}]))


def test_host_endpoint_only_and_ignored_rules():
    found = codes(gnp("raw", selector="all()", doNotTrack=True, applyOnForward=True, ingress=[{"action": "Deny"}]),
                  gnp("t", selector=WEB, types=["Ingress"], ingress=[{"action": "Allow"}], egress=[{"action": "Deny"}]))
    assert found["host-endpoint-only"][0].policy == "gnp:raw"
    assert found["ignored-rules"][0].path == ("spec", "types")
