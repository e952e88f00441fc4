"""Services + Pods → EndpointSlices and Endpoints, as the kube-controller-manager controllers
write them (pure).

The desired slices are a function of the current Services, Pods and Nodes alone, never of
the order changes arrived in: endpoints are grouped by the ports they resolve to (a named
``targetPort`` is resolved per pod, so pods that resolve it differently land in different
slices), sorted by address and cut into slices of at most 100; each slice's name is derived
from the Service, its port set and its position, so names stay the same from one pass to the
next. ``plan`` compares that with what is stored and writes only the slices that differ.

Conditions follow the EndpointSlice API: ``serving`` = the Pod's Ready condition is True,
``terminating`` = the Pod has a deletionTimestamp, ``ready`` = serving and not terminating
(always true with ``publishNotReadyAddresses``). A Running pod that carries no Ready
condition at all counts as Ready: pods whose containers have no readiness probe report none
yet.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podnet.model import Endpoints, EndpointSlice, Node, Pod, Resource, Service
from podnet.model.core import ServicePort
from podnet.model.discovery import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

CONTROLLER = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_PER_SLICE = 100
#: the legacy Endpoints object holds at most this many addresses, then says so
MAX_ENDPOINTS_ADDRESSES = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
SAFE = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet

PortSet = tuple[tuple[str, str, int, str | None], ...]  # (name, protocol, number, appProtocol) per port


def pod_serving(pod: Pod) -> bool:
    """The Pod's Ready condition is True (a Running pod without one counts as Ready)."""
    for condition in pod.status.conditions or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return pod.status.phase == "Running"


def selects(service: Service, pod: Pod) -> bool:
    """A pod the Service's selector picks that has an address and has not finished."""
    selector = service.spec.selector
    return (selector is not None and (pod.namespace or "default") == (service.namespace or "default")
            and all(pod.labels.get(k) == v for k, v in selector.items())
            and bool(pod.status.pod_ip) and pod.status.phase not in ("Succeeded", "Failed"))


def resolve_target_port(port: ServicePort, pod: Pod) -> int | None:
    """The pod port a Service port sends to: a number as is, a name looked up in the pod's
    containerPorts of the same protocol (None when the pod declares no such port)."""
    target = port.effective_target_port
    if isinstance(target, int):
        return target
    for container in pod.spec.containers:
        for declared in container.ports or ():
            if declared.name == target and declared.protocol == port.protocol:
                return declared.container_port
    return None


def port_set(service: Service, pod: Pod) -> PortSet:
    """The ports one pod serves for the Service (ports whose name the pod lacks are left out)."""
    out = []
    for port in service.spec.ports or ():
        number = resolve_target_port(port, pod)
        if number is not None:
            out.append((port.name or "", port.protocol, number, port.app_protocol))
    return tuple(out)


def _safe_hash(text: str, length: int = 5) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:length])


def _owner(service: Service) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "name": service.name, "uid": service.metadata.uid or "",
             "controller": True, "blockOwnerDeletion": True}]


def _labels(service: Service) -> dict[str, str]:
    """The Service's labels (less the reserved ones), and headless when it is."""
    reserved = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    labels = {k: v for k, v in service.labels.items() if k not in reserved}
    if service.spec.headless:
        labels[HEADLESS_LABEL] = ""
    return labels


def _hostname(service: Service, pod: Pod) -> str | None:
    if pod.spec.hostname and pod.spec.subdomain == service.name:
        return pod.spec.hostname
    return None


def _target_ref(pod: Pod) -> dict[str, Any]:
    ref = {"kind": "Pod", "namespace": pod.namespace or "default", "name": pod.name}
    if pod.metadata.uid:
        ref["uid"] = pod.metadata.uid
    return ref


def _endpoint(service: Service, pod: Pod, zones: Mapping[str, str]) -> dict[str, Any]:
    serving = pod_serving(pod)
    terminating = pod.metadata.deletion_timestamp is not None
    ready = bool(service.spec.publish_not_ready_addresses) or (serving and not terminating)
    out: dict[str, Any] = {"addresses": [pod.status.pod_ip],
                           "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    hostname = _hostname(service, pod)
    if hostname:
        out["hostname"] = hostname
    out["targetRef"] = _target_ref(pod)
    if pod.spec.node_name:
        out["nodeName"] = pod.spec.node_name
        if pod.spec.node_name in zones:
            out["zone"] = zones[pod.spec.node_name]
    return out


def _ip_key(pod: Pod) -> tuple[int, int]:
    ip = ipaddress.ip_address(pod.status.pod_ip or "0.0.0.0")
    return ip.version, int(ip)


def desired_slices(service: Service, pods: Iterable[Pod], nodes: Iterable[Node] = ()) -> list[EndpointSlice]:
    """The slices the controller keeps for one Service with a selector (IPv4 pods)."""
    zones = {n.name: n.labels[ZONE_LABEL] for n in nodes if ZONE_LABEL in n.labels}
    groups: dict[PortSet, list[Pod]] = {}
    for pod in sorted((p for p in pods if selects(service, p)), key=_ip_key):
        if ipaddress.ip_address(pod.status.pod_ip or "").version == 4:
            groups.setdefault(port_set(service, pod), []).append(pod)
    labels = {**_labels(service), SERVICE_NAME_LABEL: service.name, MANAGED_BY_LABEL: CONTROLLER}
    base = (service.name + "-")[:58]
    ns = service.namespace or "default"
    out = []
    for ports, members in sorted(groups.items()) or [((), [])]:
        key = json.dumps(ports)
        for start in range(0, max(len(members), 1), MAX_PER_SLICE):
            chunk = members[start:start + MAX_PER_SLICE]
            name = base + _safe_hash(f"{ns}/{service.name}/{key}/{start // MAX_PER_SLICE}")
            value: dict[str, Any] = {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": _owner(service)},
                "addressType": "IPv4",
                "endpoints": [_endpoint(service, p, zones) for p in chunk],
            }
            if members:  # a Service no pod backs has one slice with neither endpoints nor ports
                value["ports"] = [{"name": n, "protocol": proto, "port": num,
                                   **({"appProtocol": app} if app else {})} for n, proto, num, app in ports]
            out.append(EndpointSlice.model_validate(value))
    return out


def desired_endpoints(service: Service, pods: Iterable[Pod]) -> Endpoints:
    """The legacy Endpoints object of a Service with a selector (the endpoints controller's):
    one subset per port set, ready addresses apart from not-ready ones, terminating pods left
    out unless ``publishNotReadyAddresses``; at most 1,000 addresses."""
    tolerate = bool(service.spec.publish_not_ready_addresses)
    subsets: dict[PortSet, dict[str, list[dict[str, Any]]]] = {}
    headless_no_ports = service.spec.headless and not service.spec.ports
    for pod in sorted((p for p in pods if selects(service, p)), key=_ip_key):
        if pod.metadata.deletion_timestamp is not None and not tolerate:
            continue
        ports = port_set(service, pod)
        if not ports and not headless_no_ports:
            continue
        address: dict[str, Any] = {"ip": pod.status.pod_ip}
        hostname = _hostname(service, pod)
        if hostname:
            address["hostname"] = hostname
        if pod.spec.node_name:
            address["nodeName"] = pod.spec.node_name
        address["targetRef"] = _target_ref(pod)
        which = "addresses" if tolerate or pod_serving(pod) else "notReadyAddresses"
        subsets.setdefault(ports, {}).setdefault(which, []).append(address)
    meta: dict[str, Any] = {"name": service.name, "namespace": service.namespace or "default",
                            "labels": _labels(service), "ownerReferences": _owner(service)}
    out, count = [], 0
    for ports, addresses in sorted(subsets.items()):
        subset: dict[str, Any] = {}
        for which in ("addresses", "notReadyAddresses"):
            room = max(MAX_ENDPOINTS_ADDRESSES - count, 0)
            if addresses.get(which) and room:
                subset[which] = addresses[which][:room]
                count += len(subset[which])
        if ports:
            subset["ports"] = [{"name": n, "port": num, "protocol": proto, **({"appProtocol": app} if app else {})}
                               for n, proto, num, app in ports]
        if "addresses" in subset or "notReadyAddresses" in subset:
            out.append(subset)
    total = sum(len(a) for s in subsets.values() for a in s.values())
    if total > MAX_ENDPOINTS_ADDRESSES:
        meta["annotations"] = {OVER_CAPACITY: "truncated"}
    return Endpoints.model_validate({"metadata": meta, **({"subsets": out} if out else {})})


@dataclass(frozen=True)
class ControllerPlan:
    """What to write so that the stored slices and Endpoints match the Services and Pods."""

    apply: tuple[Resource, ...] = ()
    delete: tuple[Resource, ...] = ()


def _managed(service: Service) -> bool:
    return service.spec.selector is not None and service.spec.type != "ExternalName"


def _content(obj: Resource) -> dict[str, Any]:
    """What the controller owns of an object: labels, annotations, owner and data."""
    value = obj.to_dict()
    meta = value.pop("metadata")
    value.pop("status", None)
    return {**value, "labels": meta.get("labels", {}), "annotations": meta.get("annotations", {}),
            "ownerReferences": meta.get("ownerReferences")}


def _controlled(obj: Resource) -> bool:
    return any(r.get("kind") == "Service" and r.get("controller") for r in obj.metadata.owner_references or ())


def plan(services: Sequence[Service], pods: Sequence[Pod], nodes: Sequence[Node],
         slices: Sequence[EndpointSlice], endpoints: Sequence[Endpoints]) -> ControllerPlan:
    """The writes that bring the stored slices and Endpoints to the desired ones, and no more:
    an unchanged slice is not rewritten, a slice of a Service that is gone is deleted, and
    slices the controller does not manage (a selectorless Service's) are left alone."""
    by_ns: dict[str, list[Pod]] = {}
    for pod in pods:
        by_ns.setdefault(pod.namespace or "default", []).append(pod)
    want: dict[tuple[str, str, str], Resource] = {}
    for svc in services:
        if not _managed(svc):
            continue
        members = by_ns.get(svc.namespace or "default", [])
        for obj in [*desired_slices(svc, members, nodes), desired_endpoints(svc, members)]:
            want[(obj.kind, obj.namespace or "default", obj.name)] = obj
    have: dict[tuple[str, str, str], Resource] = {}
    for obj in [*slices, *endpoints]:
        have[(obj.kind, obj.namespace or "default", obj.name)] = obj
    apply = [obj for key, obj in sorted(want.items()) if key not in have or _content(have[key]) != _content(obj)]
    delete = [obj for key, obj in sorted(have.items()) if key not in want and _is_ours(obj)]
    return ControllerPlan(tuple(apply), tuple(delete))


def _is_ours(obj: Resource) -> bool:
    if isinstance(obj, EndpointSlice):
        return obj.labels.get(MANAGED_BY_LABEL) == CONTROLLER
    return _controlled(obj)
