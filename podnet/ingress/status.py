"""The address an Ingress is reached at (``status.loadBalancer.ingress``), as ingress-nginx
publishes it (pure): the LoadBalancer addresses of its controller's Service, or, for a NodePort
Service, the addresses of the nodes its controller pods run on. Only this controller's
Ingresses get one; another class's stay untouched."""
from __future__ import annotations

from collections.abc import Iterable

from podnet.model import Ingress, IngressClass, Node, Pod, Service

from .plan import CONTROLLER, is_ours, our_classes

NAMESPACE = "ingress-nginx"
SERVICE = "ingress-nginx-controller"
POD_LABEL = ("app.kubernetes.io/name", "ingress-nginx")


def published_addresses(services: Iterable[Service], pods: Iterable[Pod], nodes: Iterable[Node]) -> list[str]:
    svc = next((s for s in services if s.namespace == NAMESPACE and s.name == SERVICE), None)
    if svc is None:
        return []
    if svc.spec.type == "LoadBalancer" and svc.ingress_addresses:
        return list(svc.ingress_addresses)
    hosts = {p.spec.node_name for p in pods if p.namespace == NAMESPACE and p.labels.get(POD_LABEL[0]) == POD_LABEL[1]
             and p.spec.node_name and p.status.phase == "Running"}
    return sorted(n.internal_ip for n in nodes if n.name in hosts and n.internal_ip)


def stale_statuses(ingresses: Iterable[Ingress], classes: Iterable[IngressClass], services: Iterable[Service],
                   pods: Iterable[Pod], nodes: Iterable[Node], controller: str = CONTROLLER) -> list[Ingress]:
    """Our Ingresses whose status differs from the published addresses, with the new status."""
    names, default = our_classes(classes, controller)
    addresses = published_addresses(services, pods, nodes)
    out = []
    for ing in ingresses:
        if not is_ours(ing, names, default):
            continue
        current = [i.ip for i in ing.status.load_balancer.ingress or ()]
        if current != addresses:
            data = ing.to_dict()
            data["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in addresses]} if addresses else {}}
            out.append(Ingress.model_validate(data))
    return out
