"""The node's service proxy manager: Services + EndpointSlices → proxy plan → the node's
``ip podnet-svc`` table, stale UDP flows, health-check ports.

``ProxyReconciler.reconcile(plan, ctx, dirty)`` brings the kernel to the plan: the Services in
``dirty`` (those whose inputs moved) are planned on the live table and committed as one
transaction of their own chains and elements (``dataplane/nft/services_live.py``); the first
pass, a changed node context and the periodic read-back render the whole table and diff it
against the kernel (never a flush: a restarted proxy finds its table and changes nothing if
nothing changed). Only once the kernel holds the new endpoints are the conntrack entries of
UDP endpoints that left deleted, so a client's next datagram finds a live endpoint.

``ProxyView`` keeps the inputs current from the store's watch events, so a change costs the
Services it touches, not the cluster's size. It also follows this node's pods and CNI
attachments for their host ports, which the reconciler hands to ``HostPortReconciler`` (the
``ip podnet-hostport`` table). The status of the last pass goes to
``<state>/nodes/<node>/proxy.json`` (tests and benchmarks wait on its revision).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.dataplane.nft.services import SERVICE_TABLE, NodeContext
from podnet.dataplane.nft.services_live import LiveServiceTable
from podnet.ipam.blocks import HANDLES
from podnet.kernel.conntrack import StaleFlow, delete_flows
from podnet.kernel.nft.apply import NftApplier
from podnet.model import EndpointSlice, IPPool, Node, Pod, Service
from podnet.services.allocation import CONFIG_KEY
from podnet.services.hostports import HostPortMapping, attachment_mappings, node_mappings
from podnet.services.proxy import ProxyPlan, ServicePlan, plan_service, proxied

from .hostports import HostPortReconciler
from .proxy_health import HealthCheck, HealthServers

log = logging.getLogger("podnet.proxy")
STATUS_FILE = "proxy.json"
READBACK_SECONDS = 30.0


@dataclass
class ProxyStatus:
    """What the last pass did (also the content of ``proxy.json``)."""

    node: str
    revision: int = -1
    synced_at: float = 0.0
    seconds: float = 0.0
    path: str = ""  # "full", "live" or "none"
    services: int = 0
    plan: dict[str, Any] = field(default_factory=dict)
    conntrack_deleted: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    #: the host port table's last sync (forwards, commands, conflicts left out)
    host_ports: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stale_flows(old: ServicePlan | None, new: ServicePlan | None) -> set[StaleFlow]:
    """UDP and SCTP endpoints a Service no longer sends to (their flows must be cleared)."""
    if old is None:
        return set()
    now = {(p.protocol, ep) for p in (new.ports if new else ()) for ep in (*p.cluster, *p.local)}
    return {StaleFlow(p.protocol, ep[0], ep[1]) for p in old.ports if p.protocol != "tcp"
            for ep in (*p.cluster, *p.local) if (p.protocol, ep) not in now}


class ProxyReconciler:
    """Keeps one node's service table, UDP flows and health-check ports equal to the plan."""

    def __init__(self, node: str, *, netns: str | None = None, state_dir: str | None = None,
                 health: bool = True, readback_every: float = READBACK_SECONDS) -> None:
        self.node = node
        self.netns = netns
        self.applier = NftApplier(netns, table=SERVICE_TABLE, raw_sync=True)
        self.state_dir = state_dir
        self.health = HealthServers(netns) if health else None
        self.readback_every = readback_every
        self.live: LiveServiceTable | None = None
        self._last_readback = 0.0
        self._checks: dict[str, tuple[int, HealthCheck]] = {}
        self.status = ProxyStatus(node)
        self.host_ports = HostPortReconciler(netns)

    def reconcile(self, plan: ProxyPlan, ctx: NodeContext, dirty: Iterable[str] | None = None,
                  revision: int = -1, *, idle: bool = False,
                  host_ports: tuple[list[HostPortMapping], list[str]] | None = None) -> ProxyStatus:
        """One pass; a failed one keeps the table as it was and is returned with its ``error``
        (the next pass renders in full and retries). ``host_ports`` (the node's forwards and
        the conflicts left out; None: not followed) goes to the host port table."""
        t0 = time.perf_counter()
        status = ProxyStatus(self.node, revision=revision, services=len(plan.services))
        now = time.monotonic()
        read_back = self.live is None or (idle and now - self._last_readback >= self.readback_every)
        if idle and not read_back and not self.host_ports.pending(host_ports):
            if revision > self.status.revision:  # seen (those waiting on proxy.json see it too)
                self.status.revision = revision
                self._write_status()
            return self.status
        dirty = None if dirty is None else sorted(set(dirty))
        try:
            old = self.live.plans if self.live is not None else {}
            touched = list(old.keys() | plan.services.keys()) if dirty is None else dirty
            before = {k: old.get(k) for k in touched}
            update = None if read_back or self.live is None else self.live.plan(plan.services, ctx, dirty)
            if update is not None:
                live = self.live
                assert live is not None
                how = self.applier.apply_elements(update.commands, live.tracker, lambda: live.commit(update))
                status.path, status.plan = ("live" if update.commands else "none"), {**update.plan.summary(), "via": how}
            else:
                self.live = None
                fresh = LiveServiceTable(plan, ctx)
                sync = self.applier.sync(fresh.table, read_back=read_back)
                self.live = fresh
                status.path, status.plan = ("full" if not sync.empty else "none"), sync.summary()
                if read_back:
                    self._last_readback = now
            flows = set().union(*(stale_flows(before[k], plan.services.get(k)) for k in touched)) if touched else set()
            if flows:
                status.conntrack_deleted = delete_flows(self.netns, flows)
            status.problems = self._health(plan, touched)
        except Exception as exc:  # the table stays as the kernel has it; the next pass syncs in full
            self.live = None
            status.error = f"{type(exc).__name__}: {exc}"
            log.error("node %s: service table sync failed: %s", self.node, exc)
        if host_ports is not None:
            try:
                status.host_ports = self.host_ports.reconcile(*host_ports, read_back=read_back).to_dict()
            except Exception as exc:  # the next pass renders the host port table again
                status.error = status.error or f"{type(exc).__name__}: {exc}"
                log.error("node %s: host port table sync failed: %s", self.node, exc)
        else:
            status.host_ports = self.status.host_ports
        status.seconds = time.perf_counter() - t0
        status.synced_at = time.time()
        self.status = status
        if status.path in ("full", "live") and status.plan.get("commands"):
            log.info("node %s: service table %s sync at revision %d: %s", self.node, status.path, revision,
                     {k: v for k, v in status.plan.items() if v and k != "touched_chains"})
        self._write_status()
        return status

    def _health(self, plan: ProxyPlan, touched: Iterable[str]) -> list[str]:
        if self.health is None:
            return []
        for key in touched:
            svc = plan.services.get(key)
            if svc is None or not svc.health_check_port:
                self._checks.pop(key, None)
            else:
                self._checks[key] = (svc.health_check_port, HealthCheck(svc.namespace, svc.name, svc.local_ready))
        return self.health.sync(dict(self._checks.values()), healthy=True)

    def close(self) -> None:
        """Stop serving health checks; the table stays (fail static)."""
        if self.health is not None:
            self.health.close()

    def _write_status(self) -> None:
        if not self.state_dir:
            return
        path = os.path.join(self.state_dir, "nodes", self.node, STATUS_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.status.to_dict(), f)
        os.replace(tmp, path)


def read_status(state_dir: str, node: str) -> dict[str, Any] | None:
    """The last pass of a node's proxy, if one ran."""
    try:
        with open(os.path.join(state_dir, "nodes", node, STATUS_FILE)) as f:
            loaded: dict[str, Any] = json.load(f)
            return loaded
    except (OSError, ValueError):
        return None


def node_context(node: Node | None, pools: Iterable[IPPool], service_config: Mapping[str, Any] | None) -> NodeContext:
    """The node's addresses, the workload pools' CIDRs and the service CIDR."""
    ips = sorted({a.address for a in (node.status.addresses or ()) if a.type in ("InternalIP", "ExternalIP")}
                 if node is not None else ())
    cidrs = sorted(p.spec.cidr for p in pools if p.spec.allows("Workload") and ":" not in p.spec.cidr)
    cidr = (service_config or {}).get("serviceCIDR")
    return NodeContext(tuple(ips), tuple(cidrs), str(cidr) if cidr else None)


class ProxyView:
    """The proxy's inputs kept current from a ``LiveView``: the Services, their slices, this
    node and the pools, and each Service's plan; ``refresh`` returns the plan, the context and
    the Services whose plan may have changed (None: all of them)."""

    def __init__(self, view: Any, node: str) -> None:
        self.view = view
        self.node = node
        self.services: dict[str, Service] = {}
        self.slices: dict[str, dict[str, EndpointSlice]] = {}
        self.pools: dict[str, IPPool] = {}
        self.node_obj: Node | None = None
        self.plans: dict[str, ServicePlan] = {}
        self.ctx = NodeContext()
        #: this node's pods (those that may forward host ports)
        self.pods: dict[str, Pod] = {}
        #: IPAM handle key → the forwards of that CNI attachment on this node (runtimeConfig.portMappings)
        self.attachments: dict[str, list[HostPortMapping]] = {}
        #: (forwards, conflicts left out) from ``pods``
        self.host_ports: tuple[list[HostPortMapping], list[str]] = ([], [])
        #: whether the last refresh moved anything besides the Services it returned as dirty
        #: (the node context; a full load): a pass with neither is idle for the service table
        self.context_changed = True

    def refresh(self) -> tuple[ProxyPlan, NodeContext, set[str] | None]:
        changes = self.view.poll()
        self.context_changed = True
        if changes is None:
            self._load(self.view.snapshot())
            return ProxyPlan(self.node, self.plans), self.ctx, None
        dirty: set[str] = set()
        context = False
        pods = False
        for _key, old, new in changes:
            obj = new if new is not None else old
            if isinstance(obj, Service):
                key = _svc_key(obj.namespace, obj.name)
                if new is None:
                    self.services.pop(key, None)
                else:
                    self.services[key] = new
                dirty.add(key)
            elif isinstance(obj, EndpointSlice):
                for o in (old, new):
                    if o is not None and o.service_name:
                        dirty.add(_svc_key(o.namespace, o.service_name))
                        self.slices.get(_svc_key(o.namespace, o.service_name), {}).pop(_slice_key(o), None)
                if new is not None and new.service_name:
                    self.slices.setdefault(_svc_key(new.namespace, new.service_name), {})[_slice_key(new)] = new
            elif isinstance(obj, IPPool):
                context = True
                if new is None:
                    self.pools.pop(obj.name, None)
                else:
                    self.pools[obj.name] = new
            elif isinstance(obj, Node) and obj.name == self.node:
                context = True
                self.node_obj = new
            elif isinstance(obj, Pod):
                key = _svc_key(obj.namespace, obj.name)
                if new is not None and new.spec.node_name == self.node:
                    self.pods[key] = new
                    pods = True
                elif self.pods.pop(key, None) is not None:
                    pods = True
        for key in getattr(self.view, "raw_changes", ()):
            if key.startswith(HANDLES):
                value = self.view.raw(key)
                found = attachment_mappings([value], self.node) if value else []
                if found or self.attachments.pop(key, None) is not None:
                    if found:
                        self.attachments[key] = found
                    pods = True
        if pods:
            self.host_ports = self._host_ports()
        if context:
            ctx = node_context(self.node_obj, self.pools.values(), self._service_config())
            if ctx.node_ips != self.ctx.node_ips:  # whether the node may reach guarded LoadBalancer addresses
                dirty |= {k for k, s in self.services.items() if s.spec.type == "LoadBalancer"}
            self.ctx = ctx
        for key in dirty:
            self._plan(key)
        self.context_changed = context
        return ProxyPlan(self.node, self.plans), self.ctx, dirty

    def _host_ports(self) -> tuple[list[HostPortMapping], list[str]]:
        extra = sorted((m for ms in self.attachments.values() for m in ms), key=lambda m: (m.owner, m))
        return node_mappings(self.pods.values(), self.node, extra)

    def _service_config(self) -> Mapping[str, Any] | None:
        record = self.view.store.kv.get(CONFIG_KEY)
        return None if record is None else record.value

    def _plan(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None or not proxied(svc):
            self.plans.pop(key, None)
        else:
            self.plans[key] = plan_service(svc, self.slices.get(key, {}).values(), self.node, self.ctx.node_ips)

    def _load(self, snap: Any) -> None:
        self.services = {_svc_key(s.namespace, s.name): s for s in snap.of(Service)}
        self.slices = {}
        for sl in snap.of(EndpointSlice):
            if sl.service_name:
                self.slices.setdefault(_svc_key(sl.namespace, sl.service_name), {})[_slice_key(sl)] = sl
        self.pools = {p.name: p for p in snap.of(IPPool)}
        self.node_obj = snap.get(Node, self.node)
        self.pods = {_svc_key(p.namespace, p.name): p for p in snap.of(Pod) if p.spec.node_name == self.node}
        self.attachments = {}
        for key, value in (getattr(snap, "raw", None) or {}).items():
            if key.startswith(HANDLES) and (found := attachment_mappings([value], self.node)):
                self.attachments[key] = found
        self.host_ports = self._host_ports()
        self.plans = {}
        self.ctx = node_context(self.node_obj, self.pools.values(), self._service_config())
        for key in sorted(self.services):
            self._plan(key)


def _svc_key(namespace: str | None, name: str) -> str:
    return f"{namespace or 'default'}/{name}"


def _slice_key(sl: EndpointSlice) -> str:
    return f"{sl.namespace or 'default'}/{sl.name}"
