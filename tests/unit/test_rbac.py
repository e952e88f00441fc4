"""RBAC evaluated as Kubernetes does, the API paths a request names, ServiceAccount tokens,
and the Secret and RBAC kinds' validation."""
from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from podnet.apiserver import rbac
from podnet.apiserver.resources import Request, parse
from podnet.model.rbac import ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding
from podnet.model.secrets import Secret
from podnet.pki import InvalidToken, mint_token, new_cluster_ca, verify_token

SA = rbac.User("system:serviceaccount:kube-system:coredns",
               ("system:serviceaccounts", "system:serviceaccounts:kube-system", rbac.AUTHENTICATED))


def rule(**kw: Any) -> PolicyRule:
    return PolicyRule.model_validate(kw)


@pytest.mark.parametrize("r, req, allowed", [
    (rule(verbs=["list"], apiGroups=[""], resources=["pods"]), Request("list", "", "v1", "pods"), True),
    (rule(verbs=["list"], apiGroups=[""], resources=["pods"]), Request("watch", "", "v1", "pods"), False),
    (rule(verbs=["*"], apiGroups=["*"], resources=["*"]), Request("get", "apps", "v1", "deployments", "a", "x"), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), Request("get", "apps", "v1", "pods"), False),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods"]), Request("get", "", "v1", "pods", "d", "p", "status"),
     False),
    (rule(verbs=["get"], apiGroups=[""], resources=["pods/status"]),
     Request("get", "", "v1", "pods", "d", "p", "status"), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["*/status"]),
     Request("get", "", "v1", "services", "d", "s", "status"), True),
    (rule(verbs=["get"], apiGroups=[""], resources=["secrets"], resourceNames=["tls"]),
     Request("get", "", "v1", "secrets", "d", "tls"), True),
    (rule(verbs=["get", "list"], apiGroups=[""], resources=["secrets"], resourceNames=["tls"]),
     Request("list", "", "v1", "secrets", "d"), False),
])
def test_rule_allows(r: PolicyRule, req: Request, allowed: bool) -> None:
    assert rbac.rule_allows(r, req) is allowed


def _policy() -> rbac.Policy:
    reader = ClusterRole.model_validate({"metadata": {"name": "system:coredns"}, "rules": [
        {"apiGroups": [""], "resources": ["services", "endpoints", "pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]})
    metrics = ClusterRole.model_validate({"metadata": {"name": "metrics"}, "rules": [
        {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}]})
    secrets = Role.model_validate({"metadata": {"name": "tls", "namespace": "ingress-nginx"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]})
    crb = ClusterRoleBinding.model_validate({
        "metadata": {"name": "system:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]})
    crb2 = ClusterRoleBinding.model_validate({
        "metadata": {"name": "metrics"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "metrics"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"}]})
    rb = RoleBinding.model_validate({
        "metadata": {"name": "tls", "namespace": "ingress-nginx"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tls"},
        "subjects": [{"kind": "ServiceAccount", "name": "ingress"}]})  # the binding's namespace is the SA's
    rb_cluster_role = RoleBinding.model_validate({
        "metadata": {"name": "dns-in-web", "namespace": "web"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"kind": "User", "name": "alice"}]})
    return rbac.Policy([secrets], [reader, metrics], [rb, rb_cluster_role], [crb, crb2])


def test_bindings_subjects_and_scope() -> None:
    policy = _policy()
    assert rbac.allowed(policy, SA, Request("watch", "", "v1", "services"))
    assert rbac.allowed(policy, SA, Request("list", "discovery.k8s.io", "v1", "endpointslices", "web"))
    assert not rbac.allowed(policy, SA, Request("list", "", "v1", "secrets"))
    assert not rbac.allowed(policy, rbac.User("system:serviceaccount:default:coredns"),
                            Request("list", "", "v1", "services"))  # same name, other namespace
    ingress = rbac.User("system:serviceaccount:ingress-nginx:ingress")
    assert rbac.allowed(policy, ingress, Request("list", "", "v1", "secrets", "ingress-nginx"))
    assert not rbac.allowed(policy, ingress, Request("list", "", "v1", "secrets", "default"))
    assert not rbac.allowed(policy, ingress, Request("list", "", "v1", "secrets"))  # all namespaces: not granted
    alice = rbac.User("alice", (rbac.AUTHENTICATED,))
    assert rbac.allowed(policy, alice, Request("list", "", "v1", "pods", "web"))  # a ClusterRole, one namespace
    assert not rbac.allowed(policy, alice, Request("list", "", "v1", "pods", "default"))
    assert rbac.allowed(policy, rbac.User("root", (rbac.MASTERS,)), Request("get", "", "v1", "secrets", "x", "y"))
    assert rbac.path_allowed(policy, SA, "get", "/debug/pprof") and rbac.path_allowed(policy, SA, "get", "/metrics")
    assert not rbac.path_allowed(policy, alice, "get", "/metrics")
    assert rbac.path_allowed(policy, alice, "get", "/apis/apps/v1")  # discovery for the authenticated
    assert rbac.path_allowed(policy, rbac.User("system:anonymous", (rbac.UNAUTHENTICATED,)), "get", "/healthz")
    assert not rbac.path_allowed(policy, rbac.User("system:anonymous", (rbac.UNAUTHENTICATED,)), "get", "/api")


@pytest.mark.parametrize("path, expected", [
    ("/api/v1/pods", Request("list", "", "v1", "pods")),
    ("/api/v1/namespaces/default/pods/web", Request("get", "", "v1", "pods", "default", "web")),
    ("/api/v1/namespaces/default", Request("get", "", "v1", "namespaces", "default", "default")),
    ("/api/v1/namespaces", Request("list", "", "v1", "namespaces")),
    ("/api/v1/namespaces/default/pods/web/status", Request("get", "", "v1", "pods", "default", "web", "status")),
    ("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices",
     Request("list", "discovery.k8s.io", "v1", "endpointslices", "a")),
    ("/apis/networking.k8s.io/v1/ingressclasses", Request("list", "networking.k8s.io", "v1", "ingressclasses")),
    ("/api/v1/watch/namespaces/a/services", Request("watch", "", "v1", "services", "a")),
    ("/api", None), ("/apis/apps/v1", None), ("/healthz", None),
])
def test_paths_name_requests(path: str, expected: Request | None) -> None:
    assert parse(path, "GET", {}) == expected


def test_watch_parameter_makes_a_watch() -> None:
    assert parse("/api/v1/services", "GET", {"watch": "true"}) == Request("watch", "", "v1", "services")
    assert parse("/api/v1/namespaces/a/pods/p", "DELETE", {}) == Request("delete", "", "v1", "pods", "a", "p")


def test_service_account_tokens() -> None:
    ca = new_cluster_ca()
    token = mint_token(ca, "kube-system", "coredns", "coredns-0", "uid-1", now=1000.0, validity=60)
    claims = verify_token(ca, token, now=1010.0)
    assert claims["sub"] == "system:serviceaccount:kube-system:coredns"
    assert claims["kubernetes.io"]["pod"] == {"name": "coredns-0", "uid": "uid-1"}
    with pytest.raises(InvalidToken):
        verify_token(ca, token, now=1061.0)  # expired
    head, body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==").replace(b"coredns", b"admin!!")).decode()
    with pytest.raises(InvalidToken):
        verify_token(ca, f"{head}.{forged.rstrip('=')}.{sig}", now=1010.0)
    with pytest.raises(InvalidToken):
        verify_token(new_cluster_ca(), token, now=1010.0)


def test_secret_string_data_types_and_keys() -> None:
    s = Secret.model_validate({"metadata": {"name": "a"}, "data": {"k": "YQ=="}, "stringData": {"k": "b", "x": "y"}})
    assert s.to_dict()["data"] == {"k": "Yg==", "x": "eQ=="} and "stringData" not in s.to_dict()
    assert s.type == "Opaque" and s.decoded("x") == b"y"
    tls = Secret.model_validate({"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                                 "stringData": {"tls.crt": "C", "tls.key": "K"}})
    assert tls.decoded("tls.key") == b"K"
    for bad, message in (
            ({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "C"}}, "data[tls.key]: Required value"),
            ({"data": {"k": "not base64!"}}, "illegal base64"),
            ({"data": {"bad/key": "YQ=="}}, "a valid config key"),
            ({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{"}}, "not valid JSON"),
            ({"type": "kubernetes.io/basic-auth", "data": {}}, "username or password")):
        with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Secret.model_validate({"metadata": {"name": "x"}, **bad})


def test_rbac_kinds_validate_as_the_api_does() -> None:
    with pytest.raises(ValidationError, match="supported values"):
        ClusterRoleBinding.model_validate({"metadata": {"name": "x"}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": []})
    with pytest.raises(ValidationError, match="apiGroups: Required value"):
        PolicyRule.model_validate({"verbs": ["get"], "resources": ["pods"]})
    with pytest.raises(ValidationError, match="cannot apply to both"):
        PolicyRule.model_validate({"verbs": ["get"], "apiGroups": [""], "nonResourceURLs": ["/x"]})
