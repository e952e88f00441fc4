"""Services + EndpointSlices + this node → what the node's service proxy programs (pure).

kube-proxy's choices, made once here so the renderer only spells them in nftables:

* **Which Services**: every Service with a ClusterIP, except ExternalName, headless ones and
  those labelled ``service.kubernetes.io/service-proxy-name`` (another proxy's) or
  ``service.kubernetes.io/headless``.
* **Which endpoints** (KEP-1669): the ready ones; when none is ready, the serving ones that
  are terminating; never the rest. ``ready`` unset counts as ready, ``serving`` unset as
  ``ready``, ``terminating`` unset as false (the EndpointSlice API's rules).
* **Traffic policies**: ``internalTrafficPolicy: Local`` sends ClusterIP traffic to this
  node's endpoints only (dropped when there are none); ``externalTrafficPolicy: Local`` does
  the same for NodePort, externalIP and LoadBalancer traffic and keeps the client's address,
  while pods and the node itself still reach the Service through every endpoint.
* **The health check** of a Local Service counts this node's *ready* endpoints only.
* **loadBalancerSourceRanges** filter traffic to the LoadBalancer addresses only (not the
  ClusterIP, NodePorts or externalIPs): a source outside every range is dropped. When a range
  holds one of the node's addresses, the LoadBalancer addresses themselves are allowed as
  sources too: the node reaching an address it holds speaks from that address (kube-proxy's
  ``allowFromNode``).

A Service port's endpoints are the slices' endpoints whose slice carries a port of the same
name and protocol; its number is the pod's targetPort (resolved per pod by the slice
controller). The plan is a value: the same objects give an equal plan whatever order they
came in, and a Service's plan changes only when something that reaches the kernel does.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from podnet.model import EndpointSlice, Service
from podnet.model.discovery import SliceEndpoint

PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"

#: an endpoint as the proxy sends to it: (address, port)
Target = tuple[str, int]


@dataclass(frozen=True)
class PortPlan:
    """One Service port on this node."""

    name: str
    protocol: str  # lower case, as nft spells it: tcp, udp, sctp
    port: int
    node_port: int | None
    #: the endpoints every client may reach (ready ones, else serving terminating ones)
    cluster: tuple[Target, ...]
    #: this node's usable endpoints (same rule, this node only)
    local: tuple[Target, ...]
    #: this node's ready endpoint addresses (what the health check counts)
    local_ready: tuple[str, ...] = ()
    #: every ready endpoint (UDP flows to an endpoint that leaves this set are cleared)
    ready: tuple[Target, ...] = ()


@dataclass(frozen=True)
class ServicePlan:
    """What the proxy programs for one Service."""

    namespace: str
    name: str
    cluster_ip: str
    #: spec.externalIPs and status.loadBalancer.ingress addresses: reached from outside
    external_ips: tuple[str, ...]
    ports: tuple[PortPlan, ...]
    internal_local: bool = False
    external_local: bool = False
    #: sessionAffinity ClientIP: its timeout in seconds
    affinity: int | None = None
    health_check_port: int | None = None
    #: status.loadBalancer.ingress addresses that loadBalancerSourceRanges guard (empty: no firewall)
    firewall_ips: tuple[str, ...] = ()
    #: the sources allowed to them (CIDRs, normalised)
    source_ranges: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def externally_reached(self) -> bool:
        return bool(self.external_ips) or any(p.node_port for p in self.ports)

    @property
    def local_ready(self) -> int:
        """Ready endpoints on this node, each counted once over the Service's ports (the
        health check's count)."""
        return len({ip for p in self.ports for ip in p.local_ready})


@dataclass(frozen=True)
class ProxyPlan:
    """Every proxied Service of the cluster, seen from one node."""

    node: str
    services: Mapping[str, ServicePlan] = field(default_factory=dict)

    def health_checks(self) -> dict[int, ServicePlan]:
        """healthCheckNodePort → its Service (Local Services with such a port)."""
        return {s.health_check_port: s for s in self.services.values() if s.health_check_port}


def proxied(service: Service) -> bool:
    """Whether the proxy programs this Service at all."""
    labels = service.labels
    spec = service.spec
    return (spec.type != "ExternalName" and not spec.headless and bool(spec.cluster_ip)
            and PROXY_NAME_LABEL not in labels and HEADLESS_LABEL not in labels)


def _ready(ep: SliceEndpoint) -> bool:
    return ep.conditions.ready is not False


def _serving(ep: SliceEndpoint) -> bool:
    serving = ep.conditions.serving
    return _ready(ep) if serving is None else serving


def _terminating(ep: SliceEndpoint) -> bool:
    return bool(ep.conditions.terminating)


def _usable(candidates: list[tuple[SliceEndpoint, Target]]) -> tuple[Target, ...]:
    ready = {t for ep, t in candidates if _ready(ep) and not _terminating(ep)}
    if not ready:
        ready = {t for ep, t in candidates if _serving(ep) and _terminating(ep)}
    return tuple(sorted(ready))


def _firewall(service: Service, node_ips: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the guarded LoadBalancer addresses, the allowed source CIDRs)."""
    lb_ips = tuple(dict.fromkeys(i for i in service.ingress_addresses if _is_ip(i)))
    given = service.spec.load_balancer_source_ranges or _annotated_ranges(service)
    ranges = [ipaddress.IPv4Network(r.strip(), strict=False) for r in given if ":" not in r]
    if service.spec.type != "LoadBalancer" or not lb_ips or not ranges:
        return (), ()
    allowed = {str(r) for r in ranges}
    if any(ipaddress.IPv4Address(ip) in r for ip in node_ips if _is_ip(ip) for r in ranges):
        allowed |= {f"{ip}/32" for ip in lb_ips}
    return lb_ips, tuple(sorted(allowed, key=lambda c: ipaddress.IPv4Network(c)))


def _annotated_ranges(service: Service) -> list[str]:
    """The older annotation kube-proxy still reads when the field is empty (comma separated);
    entries that are not IPv4 CIDRs are left out."""
    text = service.metadata.annotations.get(SOURCE_RANGES_ANNOTATION, "")
    out = []
    for part in (p.strip() for p in text.split(",")):
        try:
            ipaddress.IPv4Network(part, strict=False)
        except ValueError:
            continue
        out.append(part)
    return out


def plan_service(service: Service, slices: Iterable[EndpointSlice], node: str,
                 node_ips: Iterable[str] = ()) -> ServicePlan:
    """One proxied Service's plan from its slices (those labelled with its name); ``node_ips``
    (the node's addresses) decide whether the node may reach its guarded LoadBalancer addresses."""
    spec = service.spec
    ports = []
    slices = [s for s in slices if s.address_type == "IPv4"]
    for sp in spec.ports or ():
        name = sp.name or ""
        candidates: list[tuple[SliceEndpoint, Target]] = []
        for sl in slices:
            number = next((p.port for p in sl.ports or () if (p.name or "") == name
                           and (p.protocol or "TCP") == sp.protocol and p.port), None)
            if number is None:
                continue
            candidates += [(ep, (ep.addresses[0], number)) for ep in sl.endpoints]
        here = [(ep, t) for ep, t in candidates if ep.node_name == node]
        ports.append(PortPlan(
            name=name, protocol=sp.protocol.lower(), port=sp.port, node_port=sp.node_port or None,
            cluster=_usable(candidates), local=_usable(here),
            local_ready=tuple(sorted({t[0] for ep, t in here if _ready(ep) and not _terminating(ep)})),
            ready=tuple(sorted({t for ep, t in candidates if _ready(ep) and not _terminating(ep)}))))
    affinity = None
    if spec.session_affinity == "ClientIP":
        cfg = spec.session_affinity_config
        timeout = cfg.client_ip.timeout_seconds if cfg and cfg.client_ip else None
        affinity = timeout or 10800
    externals = tuple(dict.fromkeys([*(spec.external_ips or ()), *(i for i in service.ingress_addresses if _is_ip(i))]))
    external_local = spec.external_traffic_policy == "Local" and spec.externally_accessible
    firewall_ips, source_ranges = _firewall(service, node_ips)
    return ServicePlan(
        namespace=service.namespace or "default", name=service.name, cluster_ip=spec.cluster_ip or "",
        external_ips=externals, ports=tuple(sorted(ports, key=lambda p: (p.protocol, p.port, p.name))),
        internal_local=spec.internal_traffic_policy == "Local", external_local=external_local,
        affinity=affinity,
        health_check_port=spec.health_check_node_port if external_local and spec.type == "LoadBalancer" else None,
        firewall_ips=firewall_ips, source_ranges=source_ranges)


def _is_ip(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def slices_by_service(slices: Iterable[EndpointSlice]) -> dict[str, list[EndpointSlice]]:
    """``namespace/service`` → its slices (by the ``kubernetes.io/service-name`` label)."""
    out: dict[str, list[EndpointSlice]] = {}
    for sl in slices:
        svc = sl.service_name
        if svc:
            out.setdefault(f"{sl.namespace or 'default'}/{svc}", []).append(sl)
    return out


def plan(services: Iterable[Service], slices: Iterable[EndpointSlice], node: str,
         node_ips: Iterable[str] = ()) -> ProxyPlan:
    """The whole cluster's proxied Services as this node programs them."""
    node_ips = tuple(node_ips)
    by_service = slices_by_service(slices)
    out: dict[str, ServicePlan] = {}
    for svc in services:
        if proxied(svc):
            key = f"{svc.namespace or 'default'}/{svc.name}"
            out[key] = plan_service(svc, by_service.get(key, ()), node, node_ips)
    return ProxyPlan(node, dict(sorted(out.items())))
