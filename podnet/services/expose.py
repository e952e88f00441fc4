"""``kubectl expose``'s generator (pure): the Service that exposes a Pod, Deployment or Service.

As kubectl: the selector is the Deployment's ``matchLabels`` (a selector with
matchExpressions cannot be a Service selector), a Pod's labels, or a Service's selector; the
ports are ``--port`` or, without it, every port the pod template declares (named ``port-1``,
``port-2``… when there are several); the labels are the exposed object's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.errors import PodnetError
from podnet.model import Deployment, Pod, Resource, Service
from podnet.model.core import PodSpec


@dataclass(frozen=True)
class ExposeOptions:
    name: str | None = None
    port: int | None = None
    target_port: int | str | None = None
    protocol: str | None = None
    type: str | None = None
    selector: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    cluster_ip: str | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str | None = None
    session_affinity: str | None = None


def _selector(obj: Resource) -> dict[str, str]:
    if isinstance(obj, Deployment):
        selector = obj.spec.selector
        if selector.match_expressions:
            raise PodnetError(f"couldn't retrieve selectors via --selector flag or introspection: deployment "
                              f"{obj.name} selects with matchExpressions, which a Service selector cannot express",
                              hint="pass --selector key=value,...")
        return dict(selector.match_labels or {})
    if isinstance(obj, Pod):
        return dict(obj.labels)
    if isinstance(obj, Service):
        return dict(obj.spec.selector or {})
    raise PodnetError(f"cannot expose a {obj.kind}", hint="expose a pod, deployment or service")


def _pod_spec(obj: Resource) -> PodSpec | None:
    if isinstance(obj, Deployment):
        return obj.spec.template.spec
    if isinstance(obj, Pod):
        return obj.spec
    return None


def _introspected_ports(obj: Resource) -> list[tuple[int, str]]:
    """(port, protocol) the object declares: containerPorts, or a Service's ports."""
    if isinstance(obj, Service):
        return [(p.port, p.protocol) for p in obj.spec.ports or ()]
    spec = _pod_spec(obj)
    return [(p.container_port, p.protocol) for c in (spec.containers if spec else ()) for p in c.ports or ()]


def service_for(obj: Resource, options: ExposeOptions) -> Service:
    """The Service ``kubectl expose`` would create for ``obj`` (not yet validated by the store)."""
    selector = options.selector if options.selector is not None else _selector(obj)
    if not selector:
        raise PodnetError(f"couldn't retrieve selectors via --selector flag or introspection: {obj.kind} {obj.name} "
                          "has none", hint="pass --selector key=value,...")
    if options.port is not None:
        found = [(options.port, options.protocol or _protocol_of(obj, options.port))]
    else:
        found = [(port, options.protocol or proto) for port, proto in _introspected_ports(obj)]
    if not found:
        raise PodnetError("couldn't find port via --port flag or introspection", hint="pass --port")
    ports: list[dict[str, Any]] = []
    for index, (port, protocol) in enumerate(found, start=1):
        entry: dict[str, Any] = {"port": port, "protocol": protocol}
        if len(found) > 1:
            entry["name"] = f"port-{index}"
        entry["targetPort"] = options.target_port if options.target_port is not None else port
        ports.append(entry)
    spec: dict[str, Any] = {"selector": selector, "ports": ports}
    for key, value in (("type", options.type), ("clusterIP", options.cluster_ip),
                       ("loadBalancerIP", options.load_balancer_ip), ("sessionAffinity", options.session_affinity)):
        if value:
            spec[key] = value
    if options.external_ips:
        spec["externalIPs"] = list(options.external_ips)
    labels = options.labels if options.labels is not None else dict(obj.labels)
    return Service.model_validate({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": options.name or obj.name, "namespace": obj.namespace or "default", "labels": labels},
        "spec": spec})


def _protocol_of(obj: Resource, port: int) -> str:
    """The protocol of a declared port with that number (TCP if none is declared)."""
    return next((proto for number, proto in _introspected_ports(obj) if number == port), "TCP")
