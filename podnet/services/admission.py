"""What kube-apiserver does to a Service when it is written: defaults, update rules, allocation.

The store calls ``admit`` inside the transaction of every write that creates, changes or
deletes Services, with the current values of the keys under ``READS``; ``admit`` is pure: it
returns the values to store (ClusterIP, nodePorts, healthCheckNodePort and
``status.loadBalancer`` filled in) and the allocation keys to put and delete, or raises
``ValidationError`` naming the field, the manifest's ``file:line`` and the reason, in the API
server's words. The store guards every allocation key it writes, so concurrent writers never
hand out one value twice.

Update rules follow the API server's ``patchAllocatedValues``: a re-applied manifest that
leaves out ``clusterIP``, a ``nodePort`` (matched by port name) or ``healthCheckNodePort``
keeps the allocated value; a different explicit ``clusterIP`` is refused (immutable), as is a
changed ``loadBalancerClass``. Changing the type releases what the new type does not use.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podnet.errors import FieldProblem, Location, ValidationError
from podnet.model.core import (
    AFFINITY_TIMEOUT_DEFAULT,
    ClientIPConfig,
    Service,
    ServicePort,
    ServiceSpec,
    SessionAffinityConfig,
)

from .allocation import POOLS, PREFIX, Allocations, Refused

#: key prefixes whose values ``admit`` needs: its own allocation keys and the IP pools
READS = (PREFIX, POOLS)


@dataclass(frozen=True)
class Change:
    """One Service write: the value asked for (None: deleted) and the stored one (None: new)."""

    key: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    values: tuple[dict[str, Any] | None, ...]  # per change: what to store, status included
    puts: Mapping[str, dict[str, Any]]
    deletes: tuple[str, ...]


def admit(changes: Sequence[Change], current: Mapping[str, dict[str, Any]],
          rng: random.Random | None = None) -> Outcome:
    """Plan every change against the allocations in ``current`` (key → value); all or nothing."""
    rng = rng or random.Random()
    before = Allocations.from_values(current)
    allocs = before.copy()
    problems: list[FieldProblem] = []
    values: list[dict[str, Any] | None] = []
    for change in changes:
        if change.new is None:
            if change.old is not None:
                allocs.keep_only(_owner(change.old))
            values.append(None)
            continue
        try:
            values.append(_admit_one(change.new, change.old, allocs, rng))
        except Refused as refused:
            problems.append(refusal_problem(change.new, refused))
            values.append(None)
    if problems:
        raise ValidationError(problems)
    puts, deletes = allocs.writes(before)
    return Outcome(tuple(values), puts, tuple(deletes))


def _owner(value: Mapping[str, Any]) -> str:
    meta = value["metadata"]
    return f"{meta.get('namespace') or 'default'}/{meta['name']}"


def _admit_one(new: dict[str, Any], old: dict[str, Any] | None, allocs: Allocations,
               rng: random.Random) -> dict[str, Any]:
    svc = Service.model_validate(new)
    old_spec = Service.model_validate(old).spec if old else None
    owner = _owner(new)
    spec = _with_defaults(_carried_over(svc.spec, old_spec))
    if old_spec is not None:
        _check_update(old_spec, spec)
    spec, cluster_ips = _cluster_ip(spec, owner, allocs, rng)
    spec, node_ports = _node_ports(spec, owner, allocs, rng)
    lb_ip = None
    if spec.type == "LoadBalancer" and spec.load_balancer_class is None:
        lb_ip = allocs.take_lb_ip(owner, spec.load_balancer_ip)
    allocs.keep_only(owner, cluster_ips, node_ports, [lb_ip] if lb_ip else [])
    value = dict(new)
    value["spec"] = spec.to_dict()
    value["status"] = _status(spec, lb_ip, (old or {}).get("status") or {})
    return value


# -- update rules ----------------------------------------------------------------------------
def _needs_cluster_ip(spec: ServiceSpec) -> bool:
    return spec.type != "ExternalName"


def _needs_node_ports(spec: ServiceSpec) -> bool:
    return spec.type in ("NodePort", "LoadBalancer")


def _needs_health_check(spec: ServiceSpec) -> bool:
    return spec.type == "LoadBalancer" and spec.external_traffic_policy == "Local"


def _carried_over(spec: ServiceSpec, old: ServiceSpec | None) -> ServiceSpec:
    """Allocated values the new manifest leaves out, taken from the stored Service."""
    if old is None:
        return spec
    update: dict[str, Any] = {}
    if _needs_cluster_ip(old) and _needs_cluster_ip(spec):
        if not spec.cluster_ip:
            update["cluster_ip"] = old.cluster_ip
        if not spec.cluster_ips:
            update["cluster_ips"] = old.cluster_ips
    if _needs_node_ports(old) and _needs_node_ports(spec) and spec.ports:
        old_ports, new_ports = old.ports or [], spec.ports
        used = {p.node_port for p in old_ports if p.node_port} & {p.node_port for p in new_ports if p.node_port}
        by_name = {p.name or "": p.node_port for p in old_ports}
        ports = []
        for port in new_ports:
            carried = by_name.get(port.name or "")
            if not port.node_port and carried and carried not in used:
                port = port.model_copy(update={"node_port": carried})
            ports.append(port)
        update["ports"] = ports
    if _needs_health_check(old) and _needs_health_check(spec) and not spec.health_check_node_port:
        update["health_check_node_port"] = old.health_check_node_port
    return spec.model_copy(update=update) if update else spec


def _check_update(old: ServiceSpec, new: ServiceSpec) -> None:
    if _needs_cluster_ip(old) and _needs_cluster_ip(new) and old.cluster_ip and new.cluster_ip \
            and new.cluster_ip != old.cluster_ip:
        raise Refused(("spec", "clusterIP"), f"{new.cluster_ip!r}: may not change once set (it is {old.cluster_ip})")
    if old.type == "LoadBalancer" and new.type == "LoadBalancer" and old.load_balancer_class != new.load_balancer_class:
        raise Refused(("spec", "loadBalancerClass"),
                      f"{new.load_balancer_class!r}: may not change once set (it is {old.load_balancer_class!r})")


# -- defaults --------------------------------------------------------------------------------
def _with_defaults(spec: ServiceSpec) -> ServiceSpec:
    """The API server's defaults, so stored Services read as ``kubectl get -o yaml`` shows them."""
    update: dict[str, Any] = {
        "ports": [_port_defaults(p) for p in spec.ports] if spec.ports else spec.ports,
        "session_affinity": spec.session_affinity or "None",
    }
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config or SessionAffinityConfig()
        client_ip = config.client_ip or ClientIPConfig()
        if client_ip.timeout_seconds is None:
            client_ip = client_ip.model_copy(update={"timeout_seconds": AFFINITY_TIMEOUT_DEFAULT})
        update["session_affinity_config"] = config.model_copy(update={"client_ip": client_ip})
    if spec.type in ("NodePort", "LoadBalancer") and spec.external_traffic_policy is None:
        update["external_traffic_policy"] = "Cluster"
    if spec.type != "ExternalName" and spec.internal_traffic_policy is None:
        update["internal_traffic_policy"] = "Cluster"
    if spec.type == "LoadBalancer" and spec.allocate_load_balancer_node_ports is None:
        update["allocate_load_balancer_node_ports"] = True
    return spec.model_copy(update=update)


def _port_defaults(port: ServicePort) -> ServicePort:
    return port.model_copy(update={"target_port": port.effective_target_port})


# -- allocation ------------------------------------------------------------------------------
def _cluster_ip(spec: ServiceSpec, owner: str, allocs: Allocations,
                rng: random.Random) -> tuple[ServiceSpec, list[str]]:
    """ClusterIP, clusterIPs, ipFamilies and ipFamilyPolicy; the addresses now held."""
    if spec.type == "ExternalName":
        return spec, []
    family = f"IPv{allocs.cidr.version}"
    for index, wanted in enumerate(spec.ip_families or ()):
        if wanted != family:
            raise Refused(("spec", "ipFamilies", index),
                          f"{wanted} is not configured on this cluster (service CIDR {allocs.cidr})")
    if spec.headless:
        policy = spec.ip_family_policy or ("SingleStack" if spec.selector else "RequireDualStack")
        return spec.model_copy(update={"cluster_ips": ["None"], "ip_families": [family],
                                       "ip_family_policy": policy}), []
    if spec.ip_family_policy == "RequireDualStack":
        raise Refused(("spec", "ipFamilyPolicy"), "RequireDualStack: this cluster is not configured for dual-stack "
                                                  f"services (one service CIDR, {allocs.cidr})")
    requested = spec.cluster_ip or (spec.cluster_ips[0] if spec.cluster_ips else None)
    ip = allocs.take_cluster_ip(owner, requested, rng)
    return spec.model_copy(update={"cluster_ip": ip, "cluster_ips": [ip], "ip_families": [family],
                                   "ip_family_policy": spec.ip_family_policy or "SingleStack"}), [ip]


def _node_ports(spec: ServiceSpec, owner: str, allocs: Allocations,
                rng: random.Random) -> tuple[ServiceSpec, set[int]]:
    """Node ports as the API server's initNodePorts hands them out: one per service port
    number (TCP and UDP of one number share it), explicit ones honoured or refused."""
    if not _needs_node_ports(spec):
        return spec, set()
    allocate = spec.type == "NodePort" or spec.allocate_load_balancer_node_ports is not False
    ports = list(spec.ports or [])
    by_number: dict[int, int] = {}
    held: set[int] = set()
    for index, port in enumerate(ports):
        if not port.node_port and not allocate:
            continue
        shared = by_number.get(port.port)
        if shared is not None and port.node_port in (None, 0, shared):
            ports[index] = port.model_copy(update={"node_port": shared})
            continue
        requested = port.node_port or next((p.node_port for p in ports[index:] if p.port == port.port and p.node_port),
                                           None)
        path: tuple[str | int, ...] = ("spec", "ports", index, "nodePort")
        if requested in held:
            raise Refused(path, f"{requested}: provided port is already allocated")
        number = allocs.take_node_port(owner, requested, path, rng)
        held.add(number)
        by_number.setdefault(port.port, number)
        ports[index] = port.model_copy(update={"node_port": number})
    update: dict[str, Any] = {"ports": ports}
    if _needs_health_check(spec):
        path = ("spec", "healthCheckNodePort")
        if spec.health_check_node_port in held:
            raise Refused(path, f"{spec.health_check_node_port}: provided port is already allocated")
        update["health_check_node_port"] = allocs.take_node_port(owner, spec.health_check_node_port, path, rng)
        held.add(update["health_check_node_port"])
    else:
        update["health_check_node_port"] = None
    return spec.model_copy(update=update), held


def _status(spec: ServiceSpec, lb_ip: str | None, old_status: Mapping[str, Any]) -> dict[str, Any]:
    """status.loadBalancer: our address for a default-class LoadBalancer, another
    implementation's for a foreign class, nothing for other types."""
    status = dict(old_status)
    if spec.type == "LoadBalancer" and spec.load_balancer_class is not None:
        status.setdefault("loadBalancer", {})
    elif lb_ip:
        status["loadBalancer"] = {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]}
    else:
        status["loadBalancer"] = {}
    return status


def refusal_problem(value: Mapping[str, Any], refused: Refused, kind: str = "Service") -> FieldProblem:
    """Located at the manifest the object was applied from (its source annotation)."""
    from podnet.manifest.loader import SOURCE_ANNOTATION  # only on refusal: keeps YAML out of store imports

    meta = value["metadata"]
    source = (meta.get("annotations") or {}).get(SOURCE_ANNOTATION, "")
    file, _, line = source.rpartition(":")
    location = Location(file, int(line)) if file and line.isdigit() else None
    return FieldProblem(refused.path, refused.message, location, kind=kind, name=meta.get("name"))
