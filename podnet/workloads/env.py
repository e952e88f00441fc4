"""The environment a kubelet gives a container (pure): the container's ``env`` (literal values
with ``$(VAR)`` references, ``fieldRef``) and the Service variables of the Services in the
pod's namespace (docker-link style), plus the ``kubernetes`` Service's from ``default``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.model.core import Container, Pod, Service

MASTER_SERVICE = ("default", "kubernetes")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(PodnetError):
    """The container cannot be configured (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodFacts:
    """What only the node knows when the container starts."""

    pod_ip: str
    host_ip: str


def _service_ip_set(svc: Service) -> bool:
    return svc.spec.cluster_ip not in (None, "", "None") and svc.spec.type != "ExternalName"


def service_variables(services: Iterable[Service], namespace: str, enable_links: bool = True) -> dict[str, str]:
    """``<NAME>_SERVICE_HOST``/``_PORT``… for every Service with a cluster IP in ``namespace``
    (if ``enable_links``), and always the ``kubernetes`` Service of ``default``."""
    chosen: dict[str, Service] = {}
    for svc in services:
        ns = svc.namespace or "default"
        if not _service_ip_set(svc):
            continue
        if (ns, svc.name) == MASTER_SERVICE or (enable_links and ns == namespace):
            chosen.setdefault(svc.name, svc)
    out: dict[str, str] = {}
    for svc in sorted(chosen.values(), key=lambda s: s.name):
        out.update(_link_variables(svc))
    return out


def _link_variables(svc: Service) -> dict[str, str]:
    name = svc.name.upper().replace("-", "_")
    ip = str(svc.spec.cluster_ip)
    ports = svc.spec.ports or []
    out = {f"{name}_SERVICE_HOST": ip}
    if not ports:
        return out
    first = ports[0]
    out[f"{name}_SERVICE_PORT"] = str(first.port)
    out[f"{name}_PORT"] = f"{first.protocol.lower()}://{ip}:{first.port}"
    for port in ports:
        if port.name:
            out[f"{name}_SERVICE_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
        proto = port.protocol.lower()
        base = f"{name}_PORT_{port.port}_{port.protocol.upper()}"
        out[base] = f"{proto}://{ip}:{port.port}"
        out[f"{base}_PROTO"] = proto
        out[f"{base}_PORT"] = str(port.port)
        out[f"{base}_ADDR"] = ip
    return out


def field_value(pod: Pod, path: str, facts: PodFacts) -> str:
    """A ``fieldRef.fieldPath`` as the kubelet resolves it."""
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace or "default",
        "metadata.uid": meta.uid or "",
        "spec.nodeName": pod.spec.node_name or "",
        "spec.serviceAccountName": pod.spec.service_account_name or pod.spec.service_account or "default",
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, mapping in (("metadata.labels['", meta.labels), ("metadata.annotations['", meta.annotations)):
        if path.startswith(prefix) and path.endswith("']"):
            return mapping.get(path[len(prefix):-2], "")
    raise ContainerConfigError(f"unsupported fieldRef path {path!r}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, unknown ones kept as
    written, ``$$`` is a literal ``$``."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _REFERENCE.sub(one, text)


def container_env(pod: Pod, container: Container, services: Iterable[Service], facts: PodFacts) -> dict[str, str]:
    """The container's variables: the Service variables, then its ``env`` in order (later
    entries see earlier ones and the Service variables in ``$(VAR)``)."""
    enable = pod.spec.enable_service_links is not False
    env = service_variables(services, pod.namespace or "default", enable)
    for var in container.env or []:
        if var.value_from is None:
            env[var.name] = expand(var.value or "", env)
            continue
        source = var.value_from
        if source.field_ref is not None:
            env[var.name] = field_value(pod, source.field_ref.field_path, facts)
            continue
        ref = source.config_map_key_ref or source.secret_key_ref or source.resource_field_ref or {}
        if source.resource_field_ref is not None:
            raise ContainerConfigError(f"env {var.name}: resourceFieldRef is not supported here")
        kind = "configmap" if source.config_map_key_ref is not None else "secret"
        if not ref.get("optional"):
            raise ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
    return env
