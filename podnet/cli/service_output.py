"""How kubectl prints Services, Endpoints and EndpointSlices (its printers.go and describe.go):
the cells of ``get`` and the ``describe service`` page."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from podnet.model import Endpoints, EndpointSlice, Resource, Service
from podnet.model.discovery import SERVICE_NAME_LABEL
from podnet.model.selectors import LabelSelector

from .output import NONE, age, labels_text

#: kubectl shortens EXTERNAL-IP of a LoadBalancer to this many characters unless -o wide
LOAD_BALANCER_WIDTH = 16
MORE = 3  # kubectl lists three endpoints, then "+ N more..."


def _listing(items: Sequence[str], count: int, unset: str = "<unset>") -> str:
    text = ",".join(items[:MORE])
    if count > MORE:
        return f"{text} + {count - MORE} more..."
    return text or unset


def host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def cluster_ip(svc: Service) -> str:
    ips = svc.spec.cluster_ips or ([svc.spec.cluster_ip] if svc.spec.cluster_ip else [])
    return ips[0] if ips and svc.spec.type != "ExternalName" else NONE


def external_ip(svc: Service, wide: bool) -> str:
    """EXTERNAL-IP: externalIPs, the load balancer's ingress (``<pending>`` until it has one),
    the externalName of an ExternalName Service."""
    spec = svc.spec
    if spec.type == "ExternalName":
        return spec.external_name or ""
    external = list(spec.external_ips or [])
    if spec.type != "LoadBalancer":
        return ",".join(external) or NONE
    ingress = ",".join(sorted(set(svc.ingress_addresses)))
    if ingress and not wide and len(ingress) > LOAD_BALANCER_WIDTH:
        ingress = ingress[:LOAD_BALANCER_WIDTH - 3] + "..."
    return ",".join(([ingress] if ingress else []) + external) or "<pending>"


def ports(svc: Service) -> str:
    """PORT(S): ``80/TCP``, ``80:30080/TCP`` with a node port."""
    parts = [f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}"
             for p in svc.spec.ports or []]
    return ",".join(parts) or NONE


def service_row(obj: Resource, now: datetime, wide: bool = False) -> list[str]:
    assert isinstance(obj, Service)
    return [obj.name, obj.spec.type, cluster_ip(obj), external_ip(obj, wide), ports(obj), age(obj, now)]


def service_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, Service)
    return [labels_text(obj.spec.selector or {})]


def endpoints_cell(obj: Endpoints, port_names: set[str] | None = None) -> str:
    """ENDPOINTS of a v1 Endpoints: ready ``ip:port`` pairs (bare IPs for a portless subset)."""
    if not obj.subsets:
        return NONE
    items: list[str] = []
    count = 0
    for subset in obj.subsets:
        addresses = [a.ip for a in subset.addresses or []]
        if not subset.ports:
            count += len(addresses)
            items += addresses
            continue
        for port in subset.ports:
            if port_names is None or (port.name or "") in port_names:
                count += len(addresses)
                items += [host_port(ip, port.port) for ip in addresses]
    return _listing(items, count, unset="")


def endpoints_row(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Endpoints)
    return [obj.name, endpoints_cell(obj), age(obj, now)]


def slice_row(obj: Resource, now: datetime) -> list[str]:
    """NAME ADDRESSTYPE PORTS ENDPOINTS AGE, as kubectl's EndpointSlice printer."""
    assert isinstance(obj, EndpointSlice)
    port_list = [str(p.port) if p.port is not None else (p.name or "*") for p in obj.ports or []]
    addresses = [a for e in obj.endpoints for a in e.addresses]
    return [obj.name, obj.address_type, _listing(port_list, len(port_list)), _listing(addresses, len(addresses)),
            age(obj, now)]


def slice_endpoints(slices: Iterable[EndpointSlice], port_name: str | None) -> str:
    """describe's Endpoints line for one Service port: ready endpoints of every slice."""
    items: list[str] = []
    count = 0
    any_slice = False
    for sl in slices:
        any_slice = True
        ready = [e.addresses[0] for e in sl.endpoints if e.conditions.ready is not False]
        if not sl.ports:
            count += len(ready)
            items += ready
            continue
        for port in sl.ports:
            if port_name is None or (port.name or "") == port_name:
                count += len(ready)
                items += [host_port(a, port.port or 0) for a in ready]
    if not any_slice:
        return NONE
    return _listing(items, count, unset="")


def service_slices(store: Any, svc: Service) -> list[EndpointSlice]:
    """The EndpointSlices of one Service (by their ``kubernetes.io/service-name`` label)."""
    selector = LabelSelector.model_validate({"matchLabels": {SERVICE_NAME_LABEL: svc.name}})
    return [s for s in store.list(EndpointSlice, svc.namespace or "default", selector) if isinstance(s, EndpointSlice)]


def describe_service(svc: Service, slices: Sequence[EndpointSlice]) -> str:
    """kubectl's describe page of a Service, its tabwriter alignment included."""
    spec = svc.spec
    rows: list[tuple[str, ...]] = [("Name:", svc.name), ("Namespace:", svc.namespace or "default")]
    rows += _multiline("Labels:", [f"{k}={v}" for k, v in sorted(svc.labels.items())])
    rows += _multiline("Annotations:", [f"{k}: {v}" for k, v in sorted(svc.metadata.annotations.items())])
    rows += [("Selector:", labels_text(spec.selector or {})), ("Type:", spec.type)]
    if spec.ip_family_policy:
        rows.append(("IP Family Policy:", spec.ip_family_policy))
    rows.append(("IP Families:", ",".join(spec.ip_families or []) or NONE))
    rows.append(("IP:", spec.cluster_ip or ""))
    rows.append(("IPs:", ",".join(spec.cluster_ips or []) or NONE))
    if spec.external_ips:
        rows.append(("External IPs:", ",".join(spec.external_ips)))
    if spec.load_balancer_ip:
        rows.append(("Desired LoadBalancer IP:", spec.load_balancer_ip))
    if spec.external_name:
        rows.append(("External Name:", spec.external_name))
    if svc.ingress_addresses:
        rows.append(("LoadBalancer Ingress:", ", ".join(svc.ingress_addresses)))
    for port in spec.ports or []:
        name = port.name or "<unset>"
        rows.append(("Port:", name, f"{port.port}/{port.protocol}"))
        rows.append(("TargetPort:", f"{port.effective_target_port}/{port.protocol}"))
        if port.node_port:
            rows.append(("NodePort:", name, f"{port.node_port}/{port.protocol}"))
        rows.append(("Endpoints:", slice_endpoints(slices, port.name or "")))
    rows.append(("Session Affinity:", spec.session_affinity or "None"))
    if spec.external_traffic_policy:
        rows.append(("External Traffic Policy:", spec.external_traffic_policy))
    if spec.internal_traffic_policy:
        rows.append(("Internal Traffic Policy:", spec.internal_traffic_policy))
    if spec.health_check_node_port:
        rows.append(("HealthCheck NodePort:", str(spec.health_check_node_port)))
    if spec.load_balancer_source_ranges:
        rows.append(("LoadBalancer Source Ranges:", ",".join(spec.load_balancer_source_ranges)))
    rows.append(("Events:", NONE))
    width = max(len(r[0]) for r in rows) + 2  # kubectl's tabwriter: padding 2
    return "\n".join(f"{r[0]:<{width}}" + ("  ".join(r[1:]) if len(r) > 2 else r[1]) for r in rows)


def _multiline(title: str, items: list[str]) -> list[tuple[str, ...]]:
    if not items:
        return [(title, NONE)]
    rows: list[tuple[str, ...]] = [(title, items[0])]
    return rows + [("", item) for item in items[1:]]
