"""NetworkPolicy meets Services: a Service resolved to its backends, a verdict per backend,
and the lint finding for a policy that opens a Service's ``port`` instead of its pods' port.

Kubernetes enforces policy on the endpoint pod after the Service's DNAT, so what a policy
must allow is the *pod's* port (the resolved ``targetPort``) and the client pod's address
(the proxy does not masquerade pod-to-ClusterIP traffic). A named ``targetPort`` is resolved
per pod, as the EndpointSlice controller resolves it, so one Service port may land on
different numbers on different pods.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from podnet.errors import NotFound, PodnetError
from podnet.model import EndpointSlice, Ingress, Pod, Service
from podnet.model.core import ServicePort
from podnet.services.endpointslices import pod_serving, resolve_target_port

from .cluster import ClusterState, Endpoint, direction_allowed, rule_peers_match, rule_ports_match
from .evaluate import Verdict, evaluate
from .render import render_verdict

SERVICE_PREFIXES = ("svc/", "service/", "services/")


@dataclass(frozen=True)
class Backend:
    """One endpoint of a Service: a pod (``ns/name``) or, for a selectorless Service, an address."""

    key: str
    ports: Mapping[str, tuple[int, str]]  # Service port name → (pod port, protocol)
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class ServiceView:
    service: Service
    backends: tuple[Backend, ...]


def _selected(svc: Service, pod: Pod) -> bool:
    selector = svc.spec.selector
    return (selector is not None and (pod.namespace or "default") == (svc.namespace or "default")
            and all(pod.labels.get(k) == v for k, v in selector.items())
            and pod.status.phase not in ("Succeeded", "Failed"))


def _pod_backend(svc: Service, pod: Pod) -> Backend:
    ports = {}
    for port in svc.spec.ports or ():
        number = resolve_target_port(port, pod)
        if number is not None:
            ports[port.name or ""] = (number, port.protocol)
    # Pods read from manifests have no status: they stand for pods that will be ready.
    serving = pod_serving(pod) if pod.status.phase else True
    terminating = pod.metadata.deletion_timestamp is not None
    ready = bool(svc.spec.publish_not_ready_addresses) or (serving and not terminating)
    return Backend(f"{pod.namespace or 'default'}/{pod.name}", ports, ready, serving, terminating)


def _slice_backends(slices: Iterable[EndpointSlice]) -> tuple[Backend, ...]:
    out = []
    for sl in slices:
        ports = {p.name or "": (p.port or 0, p.protocol or "TCP") for p in sl.ports or ()}
        for e in sl.endpoints:
            c = e.conditions
            out.append(Backend(e.addresses[0], ports, c.ready is not False, c.serving is not False, bool(c.terminating)))
    return tuple(out)


def service_views(services: Iterable[Service], pods: Iterable[Pod],
                  slices: Iterable[EndpointSlice] = ()) -> dict[str, ServiceView]:
    """``ns/name`` → the Service and its backends: selected pods, or (without a selector) the
    addresses of the EndpointSlices labelled with its name."""
    pods = list(pods)
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in slices:
        if sl.service_name:
            by_service.setdefault((sl.namespace or "default", sl.service_name), []).append(sl)
    out = {}
    for svc in services:
        ns = svc.namespace or "default"
        if svc.spec.selector is None:
            backends = _slice_backends(by_service.get((ns, svc.name), ()))
        else:
            backends = tuple(_pod_backend(svc, p) for p in sorted(pods, key=lambda p: p.name) if _selected(svc, p))
        out[f"{ns}/{svc.name}"] = ServiceView(svc, backends)
    return out


def service_ref(ref: str) -> str | None:
    """``svc/NAME`` (namespace default) or ``svc/NAMESPACE/NAME`` → ``ns/name``; None if ``ref``
    does not name a Service."""
    for prefix in SERVICE_PREFIXES:
        if ref.startswith(prefix):
            rest = ref[len(prefix):]
            return rest if "/" in rest else f"default/{rest}"
    return None


@dataclass(frozen=True)
class BackendVerdict:
    backend: Backend
    endpoint: Endpoint
    port: int | None  # None: the pod declares no port of that name
    verdict: Verdict | None

    @property
    def allowed(self) -> bool:
        return self.verdict is not None and self.verdict.allowed

    def state(self) -> str:
        b = self.backend
        if b.ready:
            return "ready"
        return "terminating, still serving" if b.terminating and b.serving else (
            "terminating" if b.terminating else "not ready")


@dataclass(frozen=True)
class ServiceVerdict:
    src: Endpoint
    view: ServiceView
    port: ServicePort
    backends: tuple[BackendVerdict, ...]

    @property
    def ref(self) -> str:
        return f"{self.view.service.namespace or 'default'}/{self.view.service.name}"

    def to_dict(self) -> dict[str, Any]:
        spec = self.view.service.spec
        return {
            "service": self.ref, "type": spec.type, "clusterIP": spec.cluster_ip, "port": self.port.port,
            "protocol": self.port.protocol, "targetPort": self.port.effective_target_port,
            "from": self.src.to_dict(), "allowedBackends": sum(b.allowed for b in self.backends),
            "backends": [{"endpoint": b.backend.key, "ip": b.endpoint.ip, "port": b.port, "state": b.state(),
                          "allowed": b.allowed, "verdict": b.verdict.to_dict() if b.verdict else None}
                         for b in self.backends],
        }


def _choose_port(svc: Service, port_text: str | None, protocol: str | None) -> ServicePort:
    ports = svc.spec.ports or []
    listed = ", ".join(f"{p.name + ' ' if p.name else ''}{p.port}/{p.protocol}" for p in ports) or "none"
    ref = f"{svc.namespace or 'default'}/{svc.name}"
    if port_text is None:
        if len(ports) == 1:
            return ports[0]
        raise PodnetError(f"service {ref} has {len(ports)} ports ({listed})", hint="write svc/NAME:PORT")
    matches = [p for p in ports if (str(p.port) == port_text or p.name == port_text)
               and (protocol is None or p.protocol == protocol.upper())]
    if len(matches) > 1:
        matches = [p for p in matches if p.protocol == "TCP"] or matches
    if not matches:
        raise PodnetError(f"service {ref} has no port {port_text}{'/' + protocol.upper() if protocol else ''} "
                          f"(its ports: {listed})", hint="give one of the Service's ports (port: …), not a targetPort")
    return matches[0]


def explain_service(state: ClusterState, src: Endpoint, ref: str, port_text: str | None,
                    protocol: str | None) -> ServiceVerdict:
    """The verdict for ``src`` reaching every backend of a Service through ``port_text``."""
    view = state.services.get(ref)
    if view is None:
        raise NotFound(f"service {ref} not found", hint="give svc/NAME (namespace default) or svc/NAMESPACE/NAME")
    port = _choose_port(view.service, port_text, protocol)
    results = []
    for backend in view.backends:
        endpoint = state.by_key[backend.key] if "/" in backend.key else state.endpoint(backend.key)
        target = backend.ports.get(port.name or "")
        number = target[0] if target else None
        verdict = evaluate(state, src, endpoint, number, port.protocol) if number is not None else None
        results.append(BackendVerdict(backend, endpoint, number, verdict))
    return ServiceVerdict(src, view, port, tuple(results))


def render_service_verdict(v: ServiceVerdict) -> str:
    spec = v.view.service.spec
    port = v.port
    if spec.type == "ExternalName":
        return (f"service {v.ref} is ExternalName: DNS answers with a CNAME to {spec.external_name}; there is no "
                f"proxy and no endpoint, so policy applies to whatever that name resolves to")
    if spec.headless:
        address = f"headless (clients connect to the endpoints directly), port {port.port}/{port.protocol}"
    else:
        address = f"{spec.cluster_ip + ':' if spec.cluster_ip else 'port '}{port.port}/{port.protocol}"
    target = port.effective_target_port
    lines = [f"service {v.ref} {address} → targetPort {target}",
             "  NetworkPolicy is checked at each endpoint pod after the Service's DNAT: on the pod's port, "
             "from the client's own address"]
    ready = [b for b in v.backends if b.backend.ready]
    if not v.backends:
        lines.append(f"  no endpoints: the Service has no {'matching pod' if spec.selector is not None else 'EndpointSlice'}"
                     ", so a connection is refused at once")
    elif not ready:
        lines.append("  no ready endpoint: a connection is refused at once unless a terminating endpoint still serves")
    for b in v.backends:
        head = f"  {b.backend.key} {b.endpoint.ip or '<no address>'}"
        if b.port is None:
            lines.append(f"{head}: declares no {port.protocol} containerPort named {target!r}, so it gets no traffic "
                         f"for this port")
            continue
        assert b.verdict is not None
        lines.append(f"{head}:{b.port}/{port.protocol} ({b.state()}): {'ALLOWED' if b.allowed else 'DENIED'}")
        lines += ["    " + line for line in render_verdict(b.verdict).splitlines()]
    usable = [b for b in (ready or v.backends) if b.port is not None]
    allowed = [b for b in usable if b.allowed]
    if usable:
        if len(allowed) == len(usable):
            verdict = "every backend the proxy can pick admits it"
        elif allowed:
            verdict = "only some backends admit it: connections fail when the proxy picks another one"
        else:
            verdict = "no backend admits it: every connection through the Service fails"
        lines.append(f"  summary: {len(allowed)} of {len(usable)} {'ready ' if ready else ''}backends allowed; {verdict}")
    return "\n".join(lines)


# --- lint ---------------------------------------------------------------------------------

Warn = Callable[..., None]


def check_service_ports(state: ClusterState, warn: Warn) -> None:
    """A rule that admits a Service's ``port`` while the Service's pods receive on a different
    ``targetPort`` (and do not also listen on ``port``): it does not admit Service traffic."""
    seen: set[tuple[str, str, int, int, str]] = set()
    for ref, view in sorted(state.services.items()):
        for port in view.service.spec.ports or ():
            for backend in view.backends:
                ep = state.by_key.get(backend.key)
                target = backend.ports.get(port.name or "")
                if ep is None or target is None or target[0] == port.port:
                    continue
                if (port.port, port.protocol) in ep.container_ports:
                    continue  # the pod listens on the Service port too: opening it may be meant
                for pol, rule, k in _rules_opening(state, ep, port.port, target[0], port.protocol):
                    key = (pol.ref, rule.direction, rule.index, k, ref)
                    if key in seen:
                        continue
                    seen.add(key)
                    named = port.effective_target_port
                    hint = f"use port: {target[0]}" + (f" (or the named port {named})" if isinstance(named, str) else "")
                    warn(pol, ("spec", rule.direction, rule.index, "ports", k), "service-port-not-target-port",
                         f"port {port.port}/{port.protocol} is the port of Service {ref}, but its pods (e.g. "
                         f"{ep.key}) receive that traffic on targetPort {target[0]}: NetworkPolicy sees the pod's "
                         f"port after the Service's DNAT, so this rule does not admit traffic sent through the Service",
                         hint)


def _rules_opening(state: ClusterState, ep: Endpoint, port: int, target: int, protocol: str) -> Iterable[Any]:
    """(policy, rule, port index) of rules towards ``ep`` that admit ``port`` but not ``target``."""
    candidates = [(pol, rule) for pol in state.selecting(ep, "ingress") for rule in pol.ingress]
    candidates += [(pol, rule) for pol in state.policies if "egress" in pol.isolates for rule in pol.egress
                   if rule.peers is not None and rule_peers_match(rule, ep, state)]
    for pol, rule in candidates:
        if rule.ports is None or rule_ports_match(rule, target, protocol, ep):
            continue
        for k, pm in enumerate(rule.ports):
            if not pm.is_named and pm.matches(port, protocol, None):
                yield pol, rule, k


INGRESS_CONTROLLER = ("ingress-nginx", "app.kubernetes.io/name", "ingress-nginx")  # namespace, label


def ingress_backends(ingresses: Iterable[Ingress]) -> tuple[tuple[str, str, int | str], ...]:
    """(Ingress, Service, port) of every backend an Ingress names (rules and defaultBackend)."""
    out: list[tuple[str, str, int | str]] = []
    for ing in ingresses:
        ns = ing.namespace or "default"
        backends = [p.backend for r in ing.spec.rules or () for p in (r.http.paths if r.http else ())]
        if ing.spec.default_backend is not None:
            backends.append(ing.spec.default_backend)
        for b in backends:
            if b.service is not None:
                port = b.service.port.number if b.service.port.number is not None else b.service.port.name
                out.append((f"{ns}/{ing.name}", f"{ns}/{b.service.name}", port or 0))
    return tuple(dict.fromkeys(out))


def ingress_controllers(state: ClusterState) -> list[Endpoint]:
    """The ingress controller's pods: where requests through an Ingress come from."""
    ns, key, value = INGRESS_CONTROLLER
    return [ep for ep in state.pods if ep.namespace == ns and ep.labels.get(key) == value]


def through_ingress_lines(state: ClusterState, src: Endpoint, v: ServiceVerdict) -> list[str]:
    """For a Service an Ingress routes to: requests through the Ingress reach its pods from the
    ingress controller's pods, not from the client, so that verdict is the one that matters."""
    ingresses = sorted({ing for ing, svc, _ in state.ingress_backends if svc == v.ref})
    controllers = ingress_controllers(state)
    if not ingresses or src in controllers:
        return []
    lines = [f"  through Ingress {', '.join(ingresses)}: requests reach these pods from the ingress controller's "
             f"pods ({INGRESS_CONTROLLER[0]}), not from the client"]
    if not controllers:
        return lines + ["    no ingress controller pod in the cluster (podnet up --ingress installs one)"]
    via = explain_service(state, controllers[0], v.ref, str(v.port.port), v.port.protocol)
    usable = [b for b in via.backends if b.port is not None and b.backend.ready] or [
        b for b in via.backends if b.port is not None]
    allowed = [b for b in usable if b.allowed]
    denied = ", ".join(b.backend.key for b in usable if not b.allowed)
    lines.append(f"    from {controllers[0].key}: {len(allowed)} of {len(usable)} backends allowed"
                 + (f" (denied: {denied}; podnet lint: ingress-controller-denied)" if denied else ""))
    return lines


def check_ingress_backends(state: ClusterState, warn: Warn) -> None:
    """An Ingress backend whose pods' ingress policies deny the ingress controller's pods: the
    Ingress routes there, and every request gets 502/504 from nginx."""
    ns, key, value = INGRESS_CONTROLLER
    controllers = ingress_controllers(state)
    if not controllers:
        return
    seen: set[tuple[str, str]] = set()
    for ing, svc_ref, port in state.ingress_backends:
        view = state.services.get(svc_ref)
        if view is None:
            continue
        sport = next((p for p in view.service.spec.ports or () if p.port == port or p.name == port), None)
        if sport is None:
            continue
        for backend in view.backends:
            ep = state.by_key.get(backend.key)
            target = backend.ports.get(sport.name or "")
            if ep is None or target is None:
                continue
            if any(direction_allowed(state, c, ep, target[0], target[1], "ingress") for c in controllers):
                continue
            for pol in state.selecting(ep, "ingress")[:1]:
                if (pol.ref, svc_ref) in seen:
                    continue
                seen.add((pol.ref, svc_ref))
                warn(pol, ("spec", "ingress"), "ingress-controller-denied",
                     f"Ingress {ing} routes to Service {svc_ref}, but this policy isolates its pod {ep.key} and "
                     f"admits no ingress controller pod ({ns}) on port {target[0]}/{target[1]}: requests through "
                     f"the Ingress fail",
                     f"allow from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}, "
                     f"podSelector: {{matchLabels: {{{key}: {value}}}}}}}] on port {target[0]}")
