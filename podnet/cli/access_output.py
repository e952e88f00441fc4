"""``get`` columns of Secrets, ServiceAccounts and the RBAC kinds, as kubectl prints them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from podnet.model.base import Resource
from podnet.model.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from podnet.model.secrets import Secret, ServiceAccount

from .output import age

if TYPE_CHECKING:
    from .columns import Printer


def _secret(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Secret)
    return [obj.name, obj.type or "Opaque", str(len(obj.data or {})), age(obj, now)]


def _account(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, ServiceAccount)
    return [obj.name, str(len(obj.secrets or [])), age(obj, now)]


def _role(obj: Resource, now: datetime) -> list[str]:
    return [obj.name, obj.metadata.creation_timestamp or ""]


def _binding(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, (RoleBinding, ClusterRoleBinding))
    return [obj.name, f"{obj.role_ref.kind}/{obj.role_ref.name}", age(obj, now)]


def _binding_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, (RoleBinding, ClusterRoleBinding))

    def of(kind: str) -> str:
        names = [f"{s.namespace}/{s.name}" if kind == "ServiceAccount" else s.name
                 for s in obj.subjects if s.kind == kind]
        return ", ".join(names)
    return [of("User"), of("Group"), of("ServiceAccount")]


def access_printers(printer: type[Printer]) -> dict[type[Resource], Printer]:
    wide = ("USERS", "GROUPS", "SERVICEACCOUNTS")
    return {
        Secret: printer(("NAME", "TYPE", "DATA", "AGE"), _secret),
        ServiceAccount: printer(("NAME", "SECRETS", "AGE"), _account),
        Role: printer(("NAME", "CREATED AT"), _role, has_age=False),
        ClusterRole: printer(("NAME", "CREATED AT"), _role, has_age=False),
        RoleBinding: printer(("NAME", "ROLE", "AGE"), _binding, wide, _binding_wide),
        ClusterRoleBinding: printer(("NAME", "ROLE", "AGE"), _binding, wide, _binding_wide),
    }
