"""Kubernetes API paths and documents (pure): which kind a path names, the verb a GET is
(get, list or watch, as the API server's RequestInfoFactory tells them), the discovery
documents, and the Status bodies errors carry.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.model.base import Resource
from podnet.model.registry import KINDS

NAMESPACE_SUBRESOURCES = ("status", "finalize")
VERBS = ["get", "list", "watch"]
TRUE = ("1", "true", "True")


@dataclass(frozen=True)
class ApiResource:
    cls: type[Resource]

    @property
    def group(self) -> str:
        return self.cls.group()

    @property
    def version(self) -> str:
        return self.cls.API_VERSION.rpartition("/")[2]

    @property
    def plural(self) -> str:
        return self.cls.PLURAL

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.plural, "singularName": self.cls.KIND.lower(),
                                 "namespaced": self.cls.NAMESPACED, "kind": self.cls.KIND, "verbs": VERBS}
        if self.cls.SHORT_NAMES:
            entry["shortNames"] = list(self.cls.SHORT_NAMES)
        return entry


RESOURCES: dict[tuple[str, str, str], ApiResource] = {
    (r.group, r.version, r.plural): r for r in (ApiResource(cls) for cls in KINDS)}


@dataclass(frozen=True)
class Request:
    """What a resource request names (the fields RBAC decides on)."""

    verb: str
    group: str
    version: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def api(self) -> ApiResource | None:
        return RESOURCES.get((self.group, self.version, self.resource))


def parse(path: str, method: str, query: Mapping[str, str]) -> Request | None:
    """The resource request of ``path``, or None for a non-resource path (/api, /healthz …)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())
    if rest[0] == "watch":  # the deprecated /api/v1/watch/... form
        verb, rest = "watch", rest[1:]
        if not rest:
            return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:])
    if verb == "get" and not name:
        verb = "list"
    if verb in ("get", "list") and query.get("watch") in TRUE:
        verb = "watch"
    if verb == "delete" and not name:
        verb = "deletecollection"
    return Request(verb, group, version, resource, namespace, name, subresource)


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, version, _ in RESOURCES:
        if group and version not in groups.setdefault(group, []):
            groups[group].append(version)
    return groups


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    """``GET /apis``."""
    groups = []
    for name, versions in sorted(_group_versions().items()):
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        groups.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<group>/<version>``; None if no such group version."""
    found = [r.discovery() for (g, v, _), r in sorted(RESOURCES.items()) if (g, v) == (group, version)]
    if not found:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": found}


def status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``Status`` body, as every API error carries."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = dict(details)
    return body


def forbidden(req: Request, user: str) -> dict[str, Any]:
    """403 with the API server's message."""
    resource = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    subject = f'{resource} "{req.name}"' if req.name else resource
    scope = f'in the namespace "{req.namespace}"' if req.namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{user}" cannot {req.verb} resource "{resource}" in API group '
               f'"{req.group}" {scope}')
    details: dict[str, Any] = {"kind": req.resource}
    if req.name:
        details["name"] = req.name
    if req.group:
        details["group"] = req.group
    return status(403, "Forbidden", message, details)


def not_found(req: Request) -> dict[str, Any]:
    details: dict[str, Any] = {"name": req.name, "kind": req.resource}
    if req.group:
        details["group"] = req.group
    return status(404, "NotFound", f'{req.resource}.{req.group} "{req.name}" not found' if req.group
                  else f'{req.resource} "{req.name}" not found', details)
