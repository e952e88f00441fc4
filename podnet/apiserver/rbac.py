"""RBAC as Kubernetes evaluates it (pure): a request is allowed when a ClusterRoleBinding,
or a RoleBinding in the request's namespace, binds one of the user's identities to a role
with a rule that covers the verb, API group, resource (``resource/subresource``) and name.
Nothing denies; no rule, no access.

Built in, as kube-apiserver's bootstrap policy has them: the ``system:masters`` group may do
everything; every authenticated user may read the discovery and health paths
(``system:discovery``, ``system:public-info-viewer``), and anyone the health paths.
Aggregated ClusterRoles are not aggregated.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from podnet.model.rbac import ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject
from podnet.pki import service_account_username

from .resources import Request

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/version/")
DISCOVERY_PATHS = ("/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The RBAC objects in force (a snapshot of the store)."""

    roles: Sequence[Role] = ()
    cluster_roles: Sequence[ClusterRole] = ()
    role_bindings: Sequence[RoleBinding] = ()
    cluster_role_bindings: Sequence[ClusterRoleBinding] = ()
    _cluster_by_name: dict[str, ClusterRole] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        self._cluster_by_name.update((r.name, r) for r in self.cluster_roles)

    def cluster_role(self, name: str) -> ClusterRole | None:
        return self._cluster_by_name.get(name)

    def role(self, namespace: str, name: str) -> Role | None:
        return next((r for r in self.roles if (r.namespace or "default") == namespace and r.name == name), None)


def _applies(subject: Subject, user: User, binding_namespace: str) -> bool:
    if subject.kind == "User":
        return subject.name == user.name
    if subject.kind == "Group":
        return subject.name in user.groups
    namespace = subject.namespace or binding_namespace
    return bool(namespace) and service_account_username(namespace, subject.name) == user.name


def _matches(values: Iterable[str] | None, wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values or ())


def _resource_matches(rule: PolicyRule, req: Request) -> bool:
    combined = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    for resource in rule.resources or ():
        if resource in ("*", combined):
            return True
        if req.subresource and resource == f"*/{req.subresource}":
            return True
    return False


def rule_allows(rule: PolicyRule, req: Request) -> bool:
    """RBAC's RuleAllows for a resource request."""
    if not _matches(rule.verbs, req.verb) or not _matches(rule.api_groups, req.group):
        return False
    if not _resource_matches(rule, req):
        return False
    return not rule.resource_names or req.name in rule.resource_names


def url_allows(rule: PolicyRule, verb: str, path: str) -> bool:
    """RBAC's NonResourceURLMatches: exact, ``*``, or a prefix ending in ``*``."""
    if not _matches(rule.verbs, verb):
        return False
    for url in rule.non_resource_urls or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def _rules(policy: Policy, user: User, namespace: str) -> Iterable[PolicyRule]:
    for crb in policy.cluster_role_bindings:
        if any(_applies(s, user, "") for s in crb.subjects):
            role = policy.cluster_role(crb.role_ref.name)
            yield from role.rules if role is not None else ()
    if not namespace:
        return
    for rb in policy.role_bindings:
        ns = rb.namespace or "default"
        if ns != namespace or not any(_applies(s, user, ns) for s in rb.subjects):
            continue
        ref = rb.role_ref
        bound = policy.cluster_role(ref.name) if ref.kind == "ClusterRole" else policy.role(ns, ref.name)
        yield from bound.rules if bound is not None else ()


def _built_in_path(user: User, path: str) -> bool:
    public = path in PUBLIC_PATHS
    discovery = any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in DISCOVERY_PATHS)
    return public or (discovery and AUTHENTICATED in user.groups)


def allowed(policy: Policy, user: User, req: Request) -> bool:
    """May ``user`` make resource request ``req``?"""
    if MASTERS in user.groups:
        return True
    return any(rule_allows(rule, req) for rule in _rules(policy, user, req.namespace))


def path_allowed(policy: Policy, user: User, verb: str, path: str) -> bool:
    """May ``user`` ``verb`` the non-resource ``path``?"""
    if MASTERS in user.groups or _built_in_path(user, path):
        return True
    return any(url_allows(rule, verb, path) for rule in _rules(policy, user, ""))
