"""Which columns ``podnet get`` prints for each kind: kubectl's for Kubernetes kinds,
calicoctl's for Calico's. Each printer turns one object into cells; output.table aligns them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from podnet.model import (
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    BGPConfiguration,
    BGPPeer,
    CalicoNetworkPolicy,
    CalicoNode,
    ClusterNetworkPolicy,
    Deployment,
    Endpoints,
    EndpointSlice,
    Event,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Ingress,
    IngressClass,
    IPPool,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Node,
    Pod,
    ReplicaSet,
    Resource,
    Service,
    Tier,
)

from .access_output import access_printers
from .output import NONE, age, human_duration, labels_text, parse_timestamp, type_name
from .service_output import endpoints_row, service_row, service_wide, slice_row

Cells = Callable[[Resource, datetime], list[str]]


@dataclass(frozen=True)
class Printer:
    headers: tuple[str, ...]
    cells: Cells
    wide_headers: tuple[str, ...] = ()
    wide_cells: Callable[[Resource], list[str]] = lambda obj: []
    has_age: bool = True
    #: the row's own cells with -o wide, where they differ (a Service's EXTERNAL-IP is not shortened)
    wide_row: Cells | None = None


def _pod_status(obj: Pod) -> str:
    """kubectl's STATUS: the phase, or the pod's reason, or a container's waiting/terminated
    reason (CrashLoopBackOff, Error, Completed, ExitCode:N), Terminating while being deleted."""
    if obj.metadata.deletion_timestamp:
        return "Terminating"
    reason = obj.status.reason or obj.status.phase or "Pending"
    running = False
    for status in reversed(obj.status.container_statuses or []):  # the first container's wins
        state = status.state or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None:
            signal = terminated.get("signal")
            reason = terminated.get("reason") or (f"Signal:{signal}" if signal else
                                                  f"ExitCode:{terminated.get('exitCode', 0)}")
        elif status.ready and "running" in state:
            running = True
    if reason == "Completed" and running:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in obj.status.conditions or [])
        reason = "Running" if ready else "NotReady"
    return str(reason)


def _restarts(obj: Pod, now: datetime) -> str:
    """kubectl's RESTARTS: the count, and how long ago the last restart was (``2 (5s ago)``)."""
    statuses = obj.status.container_statuses or []
    count = sum(s.restart_count for s in statuses)
    finished = [parse_timestamp(((s.last_state or {}).get("terminated") or {}).get("finishedAt")) for s in statuses]
    last = max((f for f in finished if f is not None), default=None)
    if count and last is not None:
        return f"{count} ({human_duration((now - last).total_seconds())} ago)"
    return str(count)


def _pod(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Pod)
    statuses = obj.status.container_statuses or []
    ready = sum(1 for s in statuses if s.ready)
    return [obj.name, f"{ready}/{len(obj.spec.containers)}", _pod_status(obj), _restarts(obj, now), age(obj, now)]


def _pod_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, Pod)
    return [obj.status.pod_ip or NONE, obj.spec.node_name or NONE, NONE, NONE]


def _namespace(obj: Resource, now: datetime) -> list[str]:
    phase = (obj.status or {}).get("phase", "Active") if isinstance(obj, Namespace) else "Active"
    return [obj.name, str(phase), age(obj, now)]


def _node_status(obj: Node) -> str:
    conditions = {c.get("type"): c.get("status") for c in obj.status.conditions or []}
    # kubectl: Ready when True, NotReady for False and Unknown, Unknown only without the condition
    state = "Unknown" if "Ready" not in conditions else ("Ready" if conditions["Ready"] == "True" else "NotReady")
    if obj.spec.unschedulable:
        state += ",SchedulingDisabled"
    return state


def _node(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Node)
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in obj.labels if k.startswith(prefix) and k != prefix)
    version = str((obj.status.node_info or {}).get("kubeletVersion", ""))
    return [obj.name, _node_status(obj), ",".join(roles) or NONE, age(obj, now), version]


def _node_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, Node)
    addresses = {a.type: a.address for a in obj.status.addresses or []}
    info = obj.status.node_info or {}
    return [addresses.get("InternalIP", NONE), addresses.get("ExternalIP", NONE),
            str(info.get("osImage", "<unknown>")), str(info.get("kernelVersion", "<unknown>")),
            str(info.get("containerRuntimeVersion", "<unknown>"))]


def _deployment(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Deployment)
    status = obj.status or {}
    return [obj.name, f"{status.get('readyReplicas', 0)}/{obj.spec.replicas}", str(status.get("updatedReplicas", 0)),
            str(status.get("availableReplicas", 0)), age(obj, now)]


def _deployment_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, Deployment)
    containers = obj.spec.template.spec.containers
    return [",".join(c.name for c in containers), ",".join(c.image or "" for c in containers),
            obj.spec.selector.describe()]


def _replicaset(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, ReplicaSet)
    status = obj.status or {}
    return [obj.name, str(obj.spec.replicas), str(status.get("replicas", 0)), str(status.get("readyReplicas", 0)),
            age(obj, now)]


def _replicaset_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, ReplicaSet)
    containers = obj.spec.template.spec.containers if obj.spec.template else []
    return [",".join(c.name for c in containers), ",".join(c.image or "" for c in containers),
            obj.spec.selector.describe()]


def _event(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Event)
    last = parse_timestamp(obj.last_timestamp or obj.first_timestamp)
    seen = human_duration((now - last).total_seconds()) if last else NONE
    ref = obj.involved_object
    return [seen, obj.type or "", obj.reason or "", f"{(ref.kind or '').lower()}/{ref.name or ''}", obj.message or ""]


def _policy(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, NetworkPolicy)
    return [obj.name, obj.spec.pod_selector.describe(), age(obj, now)]


def _ingress(obj: Resource, now: datetime) -> list[str]:
    """kubectl's columns: CLASS (or <none>), HOSTS (* for a rule without host; three, then
    "+ N more..."), ADDRESS, PORTS (80, plus 443 with TLS)."""
    assert isinstance(obj, Ingress)
    hosts = [r.host or "*" for r in obj.spec.rules or ()] or ["*"]
    shown = ",".join(hosts[:3]) + (f" + {len(hosts) - 3} more..." if len(hosts) > 3 else "")
    address = ",".join(i.ip or i.hostname or "" for i in obj.status.load_balancer.ingress or ())
    return [obj.name, obj.spec.ingress_class_name or "<none>", shown, address, "80, 443" if obj.spec.tls else "80",
            age(obj, now)]


def _ingressclass(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, IngressClass)
    params = obj.spec.parameters
    return [obj.name, obj.spec.controller or "", f"{params.get('kind')}/{params.get('name')}" if params else "<none>",
            age(obj, now)]


def _ippool(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, IPPool)
    return [obj.name, obj.spec.cidr]


def _ippool_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, IPPool)
    spec = obj.spec
    return [str(spec.nat_outgoing).lower(), spec.ipip_mode, spec.vxlan_mode, str(spec.disabled).lower()]


def _ippool_selector(obj: Resource) -> list[str]:
    assert isinstance(obj, IPPool)
    return [obj.spec.node_selector]


def _bgppeer(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, BGPPeer)
    spec = obj.spec
    node = spec.node or spec.node_selector or "(global)"
    return [obj.name, spec.peer_ip or spec.peer_selector or "", node,
            str(spec.as_number) if spec.as_number is not None else ""]


def _bgpconfig(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, BGPConfiguration)
    spec = obj.spec
    return [obj.name, spec.log_severity_screen or "", str(spec.mesh_enabled).lower(),
            str(spec.as_number) if spec.as_number is not None else "-"]


def _caliconode(obj: Resource, now: datetime) -> list[str]:
    return [obj.name]


def _caliconode_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, CalicoNode)
    bgp = obj.spec.bgp
    asn = str(bgp.as_number) if bgp and bgp.as_number is not None else "(64512)"
    return [asn, (bgp.ipv4_address if bgp else None) or "", (bgp.ipv6_address if bgp else None) or ""]


PRINTERS: dict[type[Resource], Printer] = {
    Pod: Printer(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), _pod,
                 ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"), _pod_wide),
    Namespace: Printer(("NAME", "STATUS", "AGE"), _namespace),
    Node: Printer(("NAME", "STATUS", "ROLES", "AGE", "VERSION"), _node,
                  ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"), _node_wide),
    Service: Printer(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), service_row,
                     ("SELECTOR",), service_wide, wide_row=lambda obj, now: service_row(obj, now, wide=True)),
    Endpoints: Printer(("NAME", "ENDPOINTS", "AGE"), endpoints_row),
    EndpointSlice: Printer(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"), slice_row),
    Deployment: Printer(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), _deployment,
                        ("CONTAINERS", "IMAGES", "SELECTOR"), _deployment_wide),
    ReplicaSet: Printer(("NAME", "DESIRED", "CURRENT", "READY", "AGE"), _replicaset,
                        ("CONTAINERS", "IMAGES", "SELECTOR"), _replicaset_wide),
    Event: Printer(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), _event, has_age=False),
    NetworkPolicy: Printer(("NAME", "POD-SELECTOR", "AGE"), _policy),
    Ingress: Printer(("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"), _ingress),
    IngressClass: Printer(("NAME", "CONTROLLER", "PARAMETERS", "AGE"), _ingressclass),
    BGPPeer: Printer(("NAME", "PEERIP", "NODE", "ASN"), _bgppeer, has_age=False),
    BGPConfiguration: Printer(("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"), _bgpconfig, has_age=False),
    CalicoNode: Printer(("NAME",), _caliconode, ("ASN", "IPV4", "IPV6"), _caliconode_wide, has_age=False),
}
PRINTERS.update(access_printers(Printer))


# --- tiered policy kinds: calicoctl's columns for Calico's, the CRDs' printer columns for the
# network-policy-api's ----------------------------------------------------------------------------


def go_number(value: float | None) -> str:
    """A float as Go's %v prints it (calicoctl's templates): 100, 0.5, 1e+06; nothing for none."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    number = Decimal(repr(float(value))).normalize()
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    exp10 = len(digits) + exponent - 1
    if -4 <= exp10 < 6:
        return format(number, "f")
    mantissa = "".join(map(str, digits))
    mantissa = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"


def _nets(nets: list[str] | None) -> str:
    text = ",".join(nets or ())
    return text if len(text) <= 80 else text[:77] + "..."


def _calico_policy(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, CalicoNetworkPolicy)
    return [obj.name, obj.spec.effective_tier]


def _calico_policy_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, (CalicoNetworkPolicy, GlobalNetworkPolicy))
    return [go_number(obj.spec.order), obj.spec.selector or ""]


def _name_only(obj: Resource, now: datetime) -> list[str]:
    return [obj.name]


def _tier(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, Tier)
    return [obj.name, go_number(obj.spec.order)]


def _netset_wide(obj: Resource) -> list[str]:
    assert isinstance(obj, (NetworkSet, GlobalNetworkSet))
    return [_nets(obj.spec.nets)]


def _anp(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, AdminNetworkPolicy)
    return [obj.name, str(obj.spec.priority), age(obj, now)]


def _banp(obj: Resource, now: datetime) -> list[str]:
    return [obj.name, age(obj, now)]


def _cnp(obj: Resource, now: datetime) -> list[str]:
    assert isinstance(obj, ClusterNetworkPolicy)
    return [obj.name, obj.spec.tier, str(obj.spec.priority), age(obj, now)]


PRINTERS.update({
    CalicoNetworkPolicy: Printer(("NAME", "TIER"), _calico_policy, ("ORDER", "SELECTOR"), _calico_policy_wide,
                                 has_age=False),
    GlobalNetworkPolicy: Printer(("NAME",), _name_only, ("ORDER", "SELECTOR"), _calico_policy_wide, has_age=False),
    Tier: Printer(("NAME", "ORDER"), _tier, has_age=False),
    NetworkSet: Printer(("NAME",), _name_only, ("NETS",), _netset_wide, has_age=False),
    GlobalNetworkSet: Printer(("NAME",), _name_only, ("NETS",), _netset_wide, has_age=False),
    AdminNetworkPolicy: Printer(("NAME", "PRIORITY", "AGE"), _anp),
    BaselineAdminNetworkPolicy: Printer(("NAME", "AGE"), _banp),
    ClusterNetworkPolicy: Printer(("NAME", "TIER", "PRIORITY", "AGE"), _cnp),
})


def rows_for(cls: type[Resource], objs: list[Resource], now: datetime, wide: bool,
             all_namespaces: bool, show_labels: bool, with_kind: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for ``get``; IPPool's wide columns sit before SELECTOR, as calicoctl's.

    ``with_kind``: names read ``pod/web``, as kubectl prints them when rows of several kinds
    are shown together."""
    if cls is IPPool:
        headers = ["NAME", "CIDR"] + (["NAT", "IPIPMODE", "VXLANMODE", "DISABLED"] if wide else []) + ["SELECTOR"]
        rows = [_ippool(o, now) + (_ippool_wide(o) if wide else []) + _ippool_selector(o) for o in objs]
    else:
        printer = PRINTERS[cls]
        headers = list(printer.headers) + (list(printer.wide_headers) if wide else [])
        cells = printer.wide_row if wide and printer.wide_row else printer.cells
        rows = [cells(o, now) + (printer.wide_cells(o) if wide else []) for o in objs]
    if with_kind:
        rows = [[f"{type_name(cls)}/{r[0]}"] + r[1:] for r in rows]
    if all_namespaces and cls.NAMESPACED:
        headers.insert(0, "NAMESPACE")
        rows = [[o.metadata.namespace or "default"] + r for o, r in zip(objs, rows)]
    if show_labels:
        headers.append("LABELS")
        rows = [r + [labels_text(o.labels)] for o, r in zip(objs, rows)]
    return headers, rows
