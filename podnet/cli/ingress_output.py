"""kubectl's ``describe ingress`` page (its describe.go ``describeIngressV1``): address, class,
default backend, TLS, and the rules table with each backend's ready endpoints."""
from __future__ import annotations

from typing import Any

from podnet.model import Service
from podnet.model.ingress import Ingress, IngressBackend

from .output import NONE
from .service_output import service_slices, slice_endpoints


def describe_backend(store: Any, namespace: str, backend: IngressBackend | None) -> str:
    """``svc:port (endpoints)`` as kubectl prints a backend, or the resource it names."""
    if backend is None:
        return "<default>"
    if backend.service is None:
        res = backend.resource or {}
        return f"APIGroup: {res.get('apiGroup', '')}, Kind: {res.get('kind', '')}, Name: {res.get('name', '')}"
    ref = backend.service
    port = ref.port.name if ref.port.name else str(ref.port.number)
    svc = store.get(Service, ref.name, namespace) if store is not None else None
    if not isinstance(svc, Service):
        return f'{ref.name}:{port} (<error: services "{ref.name}" not found>)'
    matched = [p for p in svc.spec.ports or [] if (p.name == ref.port.name if ref.port.name else p.port == ref.port.number)]
    if not matched:
        return f"{ref.name}:{port} (<error: service port {port} not found>)"
    endpoints = slice_endpoints(service_slices(store, svc), matched[0].name or "")
    return f"{ref.name}:{port} ({endpoints})"


def describe_ingress(obj: Ingress, store: Any) -> str:
    """The page kubectl prints, aligned as its tabwriter aligns the top-level fields."""
    ns = obj.namespace or "default"
    spec = obj.spec
    address = ",".join(i.ip or i.hostname or "" for i in obj.status.load_balancer.ingress or ())
    labels = [f"{k}={v}" for k, v in sorted(obj.labels.items())] or [NONE]
    annotations = [f"{k}: {v}" for k, v in sorted(obj.metadata.annotations.items())] or [NONE]
    top: list[tuple[str, str]] = [("Name:", obj.name), ("Labels:", labels[0])]
    top += [("", extra) for extra in labels[1:]]
    top += [("Namespace:", ns), ("Address:", address), ("Ingress Class:", spec.ingress_class_name or NONE),
            ("Default backend:", describe_backend(store, ns, spec.default_backend))]
    width = max(len(t[0]) for t in top) + 2
    lines = [f"{title:<{width}}{value}".rstrip() for title, value in top]
    if spec.tls:
        lines.append("TLS:")
        for tls in spec.tls:
            hosts = ",".join(tls.hosts or [])
            lines.append(f"  {tls.secret_name} terminates {hosts}" if tls.secret_name else f"  SNI routes {hosts}")
    rows: list[tuple[str, str, str]] = [("Host", "Path", "Backends"), ("----", "----", "--------")]
    served = [r for r in spec.rules or [] if r.http is not None]
    for rule in served:
        assert rule.http is not None
        rows.append((rule.host or "*", "", ""))
        rows += [("", p.path or "", describe_backend(store, ns, p.backend)) for p in rule.http.paths]
    if not served:
        rows.append(("*", "*", describe_backend(store, ns, spec.default_backend)))
    host_w = max(len(r[0]) for r in rows) + 2
    path_w = max(len(r[1]) for r in rows) + 2
    lines.append("Rules:")
    lines += [f"  {h:<{host_w}}{p:<{path_w}}{b}".rstrip() for h, p, b in rows]
    lines.append(f"{'Annotations:':<{width}}{annotations[0]}")
    lines += [" " * width + extra for extra in annotations[1:]]
    return "\n".join(lines)
