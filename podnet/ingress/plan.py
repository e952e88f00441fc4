"""Which requests go where, by the Ingress API's rules (pure).

An Ingress is this controller's when its class (``spec.ingressClassName``, else the deprecated
annotation) names an IngressClass whose ``spec.controller`` is ours, or when it names none and
one of our classes is marked default; every other Ingress is left alone. Rules are grouped by
host (a rule without host serves every host nginx has no server for, as ingress-nginx's
catch-all server does); paths of several Ingresses for one host are merged, the oldest Ingress
winning a duplicate path. Each path's backend resolves to the Service port's ready endpoints
(address and target port from the EndpointSlices), as ingress-nginx sends to endpoints rather
than the ClusterIP. A request no rule matches goes to a ``defaultBackend`` if an Ingress has one,
else gets 404; a backend without ready endpoints answers 503.

Each path carries its Ingress's annotations (``annotations.py``); a host on which any Ingress
asks for regexes (use-regex, rewrite-target) has all its paths as regexes, as ingress-nginx
does. What is wrong in an Ingress is a warning naming it, and the rest of it is served."""
from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field

from podnet.model import EndpointSlice, Ingress, IngressClass, Service
from podnet.model.ingress import IngressBackend
from podnet.model.secrets import Secret

from .annotations import Options, Problem, parse, path_problem

CONTROLLER = "k8s.io/ingress-nginx"
CATCH_ALL = "_"


@dataclass(frozen=True, order=True)
class Upstream:
    """One Service port as nginx reaches it: its ready endpoints (address, port)."""

    name: str  # ns-service-port, an nginx upstream name
    endpoints: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, order=True)
class Route:
    path: str  # normalised: no trailing slash except "/"
    path_type: str  # Exact | Prefix (ImplementationSpecific is Prefix here)
    upstream: Upstream
    options: Options = Options()


@dataclass(frozen=True)
class Certificate:
    name: str  # ns-secret
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class Server:
    host: str  # a name, "*.foo.com", or "_" for every other host
    routes: tuple[Route, ...] = ()
    tls: Certificate | None = None
    regex: bool = False  # every path a case-insensitive regex (ingress-nginx's use-regex)
    app_root: str | None = None


@dataclass(frozen=True, order=True)
class IngressWarning:
    """A Warning Event for an Ingress: what of it is not served as written."""

    ingress: str  # ns/name
    reason: str
    message: str


@dataclass(frozen=True)
class IngressPlan:
    servers: tuple[Server, ...] = ()
    default_backend: Upstream | None = None
    ingresses: tuple[str, ...] = ()  # ns/name of every Ingress this controller serves
    problems: tuple[str, ...] = field(default=())
    warnings: tuple[IngressWarning, ...] = field(default=())


def our_classes(classes: Iterable[IngressClass], controller: str = CONTROLLER) -> tuple[set[str], bool]:
    """Our class names, and whether one of them is the default class."""
    mine = [c for c in classes if c.spec.controller == controller]
    return {c.name for c in mine}, any(c.is_default for c in mine)


def is_ours(ing: Ingress, names: set[str], default: bool) -> bool:
    name = ing.class_name
    return name in names if name else default


def normalise(path: str | None, path_type: str, regex: bool = False) -> tuple[str, str]:
    text = path or "/"
    if path_type != "Exact" and len(text) > 1 and not regex:
        text = text.rstrip("/") or "/"
    return text, "Exact" if path_type == "Exact" else "Prefix"


def _upstream(ns: str, backend: IngressBackend, services: dict[str, Service],
              slices: dict[str, list[EndpointSlice]]) -> tuple[Upstream | None, str | None]:
    ref = backend.service
    if ref is None:
        return None, "resource backends are not supported by this controller"
    svc = services.get(f"{ns}/{ref.name}")
    want = ref.port.number if ref.port.number is not None else ref.port.name
    name = f"{ns}-{ref.name}-{want}"
    if svc is None:
        return Upstream(name), None
    port = next((p for p in svc.spec.ports or () if (p.port == ref.port.number if ref.port.number is not None
                                                        else p.name == ref.port.name)), None)
    if port is None:
        return Upstream(name), f"service {ns}/{ref.name} has no port {want}"
    endpoints: set[tuple[str, int]] = set()
    for sl in slices.get(f"{ns}/{ref.name}", ()):
        number = next((p.port for p in sl.ports or () if (p.name or "") == (port.name or "")
                       and (p.protocol or "TCP") == "TCP" and p.port), None)
        if number is None:
            continue
        endpoints |= {(ep.addresses[0], number) for ep in sl.endpoints
                      if ep.conditions.ready is not False and not ep.conditions.terminating}
    return Upstream(name, tuple(sorted(endpoints))), None


def _certificate(ns: str, secret_name: str | None, secrets: dict[str, Secret]) -> Certificate | None:
    secret = secrets.get(f"{ns}/{secret_name}") if secret_name else None
    if secret is None or not secret.data or "tls.crt" not in secret.data or "tls.key" not in secret.data:
        return None
    return Certificate(f"{ns}-{secret_name}", base64.b64decode(secret.data["tls.crt"]),
                       base64.b64decode(secret.data["tls.key"]))


def plan(ingresses: Iterable[Ingress], classes: Iterable[IngressClass], services: Iterable[Service],
         slices: Iterable[EndpointSlice], secrets: Iterable[Secret] = (), controller: str = CONTROLLER) -> IngressPlan:
    names, default = our_classes(classes, controller)
    svc_by = {f"{s.namespace or 'default'}/{s.name}": s for s in services}
    slices_by: dict[str, list[EndpointSlice]] = {}
    for sl in slices:
        if sl.service_name:
            slices_by.setdefault(f"{sl.namespace or 'default'}/{sl.service_name}", []).append(sl)
    secret_by = {f"{s.namespace or 'default'}/{s.name}": s for s in secrets}
    mine = sorted((i for i in ingresses if is_ours(i, names, default)),
                  key=lambda i: (str(i.metadata.creation_timestamp or ""), i.namespace or "", i.name))
    routes: dict[str, dict[tuple[str, str], Route]] = {}
    tls: dict[str, Certificate] = {}
    problems: list[str] = []
    warnings: list[IngressWarning] = []
    default_backend: Upstream | None = None
    parsed = {id(ing): parse(ing.metadata.annotations or {}) for ing in mine}
    regex_hosts = {(rule.host or CATCH_ALL).lower() for ing in mine if parsed[id(ing)].options.regex
                   for rule in ing.spec.rules or ()}
    app_roots: dict[str, str] = {}
    for ing in mine:
        ns = ing.namespace or "default"
        ref = f"{ns}/{ing.name}"
        got = parsed[id(ing)]
        warnings += [IngressWarning(ref, p.reason, p.message) for p in got.problems]
        if ing.spec.default_backend is not None and default_backend is None:
            default_backend, problem = _upstream(ns, ing.spec.default_backend, svc_by, slices_by)
            problems += [f"{ns}/{ing.name}: {problem}"] if problem else []
        for entry in ing.spec.tls or ():
            cert = _certificate(ns, entry.secret_name, secret_by)
            if cert is None:
                problems.append(f"{ns}/{ing.name}: TLS secret {entry.secret_name!r} is missing or not kubernetes.io/tls")
                continue
            for host in entry.hosts or ():
                tls.setdefault(host.lower(), cert)
        for rule in ing.spec.rules or ():
            host = (rule.host or CATCH_ALL).lower()
            bucket = routes.setdefault(host, {})
            if got.app_root is not None and rule.http:
                app_roots.setdefault(host, got.app_root)
            for p in rule.http.paths if rule.http else ():
                path, kind = normalise(p.path, p.path_type, host in regex_hosts)
                bad: Problem | None = path_problem(path, host in regex_hosts and kind != "Exact")
                if bad is not None:
                    warnings.append(IngressWarning(ref, bad.reason, bad.message))
                    continue
                upstream, problem = _upstream(ns, p.backend, svc_by, slices_by)
                if problem:
                    problems.append(f"{ns}/{ing.name}: {problem}")
                if upstream is not None:
                    bucket.setdefault((path, kind), Route(path, kind, upstream, got.options))
    routes.setdefault(CATCH_ALL, {})
    servers = tuple(Server(host, tuple(sorted(r.values())), tls.get(host), host in regex_hosts, app_roots.get(host))
                    for host, r in sorted(routes.items(), key=lambda kv: (kv[0] == CATCH_ALL, kv[0])))
    return IngressPlan(servers, default_backend, tuple(f"{i.namespace or 'default'}/{i.name}" for i in mine),
                       tuple(problems), tuple(warnings))
