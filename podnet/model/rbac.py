"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Who may read what through the API server (``podnet/apiserver/rbac.py`` evaluates them as
Kubernetes does). Names are path segments (``system:coredns`` is valid); a binding's roleRef
names a Role in its own namespace or a ClusterRole; a ClusterRoleBinding only a ClusterRole.
"""

from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from .base import Model, Resource

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1: Final = "rbac.authorization.k8s.io/v1"


class PolicyRule(Model):
    verbs: list[str]
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = Field(default=None, alias="nonResourceURLs")

    @model_validator(mode="after")
    def _resources_or_urls(self) -> "PolicyRule":
        if not self.verbs:
            raise ValueError("verbs: Required value: verbs must contain at least one value")
        if self.non_resource_urls and (self.resources or self.api_groups):
            raise ValueError("nonResourceURLs: Invalid value: rules cannot apply to both regular resources "
                             "and non-resource URLs")
        if not self.non_resource_urls and self.api_groups is None:
            raise ValueError("apiGroups: Required value: resource rules must supply at least one api group")
        return self


class Subject(Model):
    kind: Literal["User", "Group", "ServiceAccount"]
    name: str
    namespace: str | None = None
    api_group: str | None = None

    @model_validator(mode="after")
    def _group(self) -> "Subject":
        expected = "" if self.kind == "ServiceAccount" else RBAC_GROUP
        if self.api_group not in (None, expected):
            raise ValueError(f"apiGroup: Unsupported value: {self.api_group!r}: supported values: {expected!r}")
        return self


class RoleRef(Model):
    api_group: Literal["rbac.authorization.k8s.io"]
    kind: Literal["Role", "ClusterRole"]
    name: str


class Role(Resource):
    API_VERSION: ClassVar[str] = RBAC_V1
    KIND: ClassVar[str] = "Role"
    PLURAL: ClassVar[str] = "roles"
    NAME_RULE: ClassVar[str] = "path-segment"

    api_version: Literal["rbac.authorization.k8s.io/v1"] = RBAC_V1
    kind: Literal["Role"] = "Role"
    rules: list[PolicyRule] = Field(default_factory=list)


class ClusterRole(Resource):
    API_VERSION: ClassVar[str] = RBAC_V1
    KIND: ClassVar[str] = "ClusterRole"
    PLURAL: ClassVar[str] = "clusterroles"
    NAMESPACED: ClassVar[bool] = False
    NAME_RULE: ClassVar[str] = "path-segment"

    api_version: Literal["rbac.authorization.k8s.io/v1"] = RBAC_V1
    kind: Literal["ClusterRole"] = "ClusterRole"
    rules: list[PolicyRule] = Field(default_factory=list)
    aggregation_rule: dict[str, Any] | None = None  # kept as given; not aggregated


class RoleBinding(Resource):
    API_VERSION: ClassVar[str] = RBAC_V1
    KIND: ClassVar[str] = "RoleBinding"
    PLURAL: ClassVar[str] = "rolebindings"
    NAME_RULE: ClassVar[str] = "path-segment"

    api_version: Literal["rbac.authorization.k8s.io/v1"] = RBAC_V1
    kind: Literal["RoleBinding"] = "RoleBinding"
    subjects: list[Subject] = Field(default_factory=list)
    role_ref: RoleRef


class ClusterRoleBinding(Resource):
    API_VERSION: ClassVar[str] = RBAC_V1
    KIND: ClassVar[str] = "ClusterRoleBinding"
    PLURAL: ClassVar[str] = "clusterrolebindings"
    NAMESPACED: ClassVar[bool] = False
    NAME_RULE: ClassVar[str] = "path-segment"

    api_version: Literal["rbac.authorization.k8s.io/v1"] = RBAC_V1
    kind: Literal["ClusterRoleBinding"] = "ClusterRoleBinding"
    subjects: list[Subject] = Field(default_factory=list)
    role_ref: RoleRef

    @model_validator(mode="after")
    def _cluster_role(self) -> "ClusterRoleBinding":
        if self.role_ref.kind != "ClusterRole":
            raise ValueError('roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"')
        return self
