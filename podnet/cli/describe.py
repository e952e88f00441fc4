"""``podnet describe``: kubectl's describe layout. NetworkPolicy, Pod and Namespace get
kubectl's dedicated layouts; other kinds the generic one (fields as "Title Case: value").
Every object ends with its Events, as kubectl lists them (``5s (x3 over 25s)``)."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

from podnet.errors import NotFound
from podnet.model import Event, Namespace, NetworkPolicy, Pod, Resource, Service
from podnet.model.core import Container, ContainerStatus
from podnet.model.ingress import Ingress
from podnet.model.probes import Probe

from .common import (
    label_selector,
    name_choices,
    namespace_option,
    no_resources,
    open_resources,
    refuse_names_with_selector,
    split_kind_names,
    user_errors,
)
from .output import NONE, human_duration, parse_timestamp, table

W = 14  # width of the first column: len("Annotations:  ")


def _field(label: str, value: str) -> str:
    return f"{label + ':':<{W}}{value}"


def _map_lines(label: str, mapping: dict[str, str], sep: str) -> list[str]:
    if not mapping:
        return [_field(label, NONE)]
    items = [f"{k}{sep}{v}" for k, v in sorted(mapping.items())]
    return [_field(label, items[0])] + [" " * W + item for item in items[1:]]


def _when(timestamp: str | None) -> str:
    """kubectl's describe time format (RFC 1123 with a numeric zone)."""
    when = parse_timestamp(timestamp)
    return when.strftime("%a, %d %b %Y %H:%M:%S %z") if when else NONE


def _header(obj: Resource) -> list[str]:
    lines = [_field("Name", obj.name)]
    if type(obj).NAMESPACED:
        lines.append(_field("Namespace", obj.namespace or "default"))
    return lines


def _peers(peers: list[Any] | None, word: str, indent: str, none_text: str) -> list[str]:
    if not peers:
        return [f"{indent}{word}: <any> ({none_text})"]
    lines = []
    for peer in peers:
        lines.append(f"{indent}{word}:")
        if peer.pod_selector is not None and peer.namespace_selector is not None:
            lines.append(f"{indent}  NamespaceSelector: {peer.namespace_selector.describe()}")
            lines.append(f"{indent}  PodSelector: {peer.pod_selector.describe()}")
        elif peer.pod_selector is not None:
            lines.append(f"{indent}  PodSelector: {peer.pod_selector.describe()}")
        elif peer.namespace_selector is not None:
            lines.append(f"{indent}  NamespaceSelector: {peer.namespace_selector.describe()}")
        elif peer.ip_block is not None:
            lines.append(f"{indent}  IPBlock:")
            lines.append(f"{indent}    CIDR: {peer.ip_block.cidr}")
            lines.append(f"{indent}    Except: {', '.join(peer.ip_block.except_ or [])}")
    return lines


def _rules(rules: list[Any] | None, direction: str) -> list[str]:
    indent = "    "
    if not rules:
        return [f"{indent}<none> (Selected pods are isolated for {direction} connectivity)"]
    lines: list[str] = []
    for index, rule in enumerate(rules):
        if not rule.ports:
            lines.append(f"{indent}To Port: <any> (traffic allowed to all ports)")
        for port in rule.ports or []:
            number = "<any>" if port.port is None else str(port.port)
            if port.end_port is not None:
                number = f"{port.port}-{port.end_port}"
            lines.append(f"{indent}To Port: {number}/{port.protocol}")
        if direction == "ingress":
            lines += _peers(rule.from_, "From", indent, "traffic not restricted by source")
        else:
            lines += _peers(rule.to, "To", indent, "traffic not restricted by destination")
        if index != len(rules) - 1:
            lines.append(f"{indent}----------")
    return lines


def describe_network_policy(obj: NetworkPolicy) -> str:
    spec = obj.spec
    lines = _header(obj) + [_field("Created on", _when(obj.metadata.creation_timestamp))]
    lines += _map_lines("Labels", obj.labels, "=") + _map_lines("Annotations", obj.metadata.annotations, ": ")
    lines.append("Spec:")
    if spec.pod_selector.is_empty:
        lines.append("  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)")
    else:
        lines.append(f"  PodSelector:     {spec.pod_selector.describe()}")
    types = spec.effective_policy_types
    if "Ingress" in types:
        lines.append("  Allowing ingress traffic:")
        lines += _rules(spec.ingress, "ingress")
    else:
        lines.append("  Not affecting ingress traffic")
    if "Egress" in types:
        lines.append("  Allowing egress traffic:")
        lines += _rules(spec.egress, "egress")
    else:
        lines.append("  Not affecting egress traffic")
    lines.append(f"  Policy Types: {', '.join(types)}")
    return "\n".join(lines)


def describe_probe(probe: Probe) -> str:
    """kubectl's one-line probe: ``http-get http://:8080/healthz delay=0s timeout=1s …``."""
    attrs = (f"delay={probe.delay}s timeout={probe.timeout}s period={probe.period}s "
             f"#success={probe.successes} #failure={probe.failures}")
    if probe.exec is not None:
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.http_get is not None:
        get = probe.http_get
        return f"http-get {get.scheme.lower()}://{get.host or ''}:{get.port}{get.path or ''} {attrs}"
    if probe.tcp_socket is not None:
        return f"tcp-socket {probe.tcp_socket.host or ''}:{probe.tcp_socket.port} {attrs}"
    assert probe.grpc is not None
    return f"grpc <pod>:{probe.grpc.port} {probe.grpc.service or ''} {attrs}"


def _state_lines(title: str, state: dict[str, Any] | None) -> list[str]:
    if not state:
        return [f"    {title + ':':<15}{'Waiting' if title == 'State' else NONE}"] if title == "State" else []
    kind, detail = next(iter(state.items()))
    lines = [f"    {title + ':':<15}{kind.capitalize()}"]
    detail = detail or {}
    if kind == "running":
        lines.append(f"      {'Started:':<13}{_when(detail.get('startedAt'))}")
    elif kind == "waiting":
        if detail.get("reason"):
            lines.append(f"      {'Reason:':<13}{detail['reason']}")
    else:
        for label, key in (("Reason", "reason"), ("Exit Code", "exitCode"), ("Signal", "signal")):
            if key in detail:
                lines.append(f"      {label + ':':<13}{detail[key]}")
        lines.append(f"      {'Started:':<13}{_when(detail.get('startedAt'))}")
        lines.append(f"      {'Finished:':<13}{_when(detail.get('finishedAt'))}")
    return lines


def _env_lines(container: Container) -> list[str]:
    if not container.env:
        return [f"    {'Environment:':<15}{NONE}"]
    lines = ["    Environment:"]
    for var in container.env:
        ref = var.value_from.field_ref if var.value_from else None
        value = f" ({ref.api_version or 'v1'}:{ref.field_path})" if ref else (var.value or "")
        lines.append(f"      {var.name}:{' ' if ref else '  '}{value}")
    return lines


def _container_lines(container: Container, state: ContainerStatus | None) -> list[str]:
    lines = [f"  {container.name}:"]
    if state and state.container_id:
        lines.append(f"    {'Container ID:':<15}{state.container_id}")
    lines.append(f"    {'Image:':<15}{container.image or ''}")
    ports = ", ".join(f"{p.container_port}/{p.protocol}" for p in container.ports or []) or NONE
    lines.append(f"    {'Port:':<15}{ports}")
    for title, items in (("Command", container.command), ("Args", container.args)):
        if items:
            lines.append(f"    {title}:")
            lines += [f"      {item}" for item in items]
    if state is not None:
        lines += _state_lines("State", state.state)
        lines += _state_lines("Last State", state.last_state)
    lines.append(f"    {'Ready:':<15}{str(bool(state and state.ready)).lower().capitalize()}")
    lines.append(f"    {'Restart Count:':<15}{state.restart_count if state else 0}")
    for title, probe in (("Liveness", container.liveness_probe), ("Readiness", container.readiness_probe),
                         ("Startup", container.startup_probe)):
        if probe is not None:
            lines.append(f"    {title + ':':<15}{describe_probe(probe)}")
    return lines + _env_lines(container)


def describe_pod(obj: Pod) -> str:
    status = obj.status
    lines = _header(obj)
    node = obj.spec.node_name or NONE
    if obj.spec.node_name and status.host_ip:
        node = f"{obj.spec.node_name}/{status.host_ip}"
    lines += [_field("Node", node), _field("Start Time", _when(status.start_time))]
    lines += _map_lines("Labels", obj.labels, "=") + _map_lines("Annotations", obj.metadata.annotations, ": ")
    deleting = obj.metadata.deletion_timestamp
    if deleting and status.phase not in ("Failed", "Succeeded"):
        until = parse_timestamp(deleting)
        left = human_duration((until - datetime.now(UTC)).total_seconds()) if until else "0s"
        lines.append(_field("Status", f"Terminating (lasts {left})"))
        lines.append(f"Termination Grace Period:  {obj.metadata.deletion_grace_period_seconds or 0}s")
    else:
        lines.append(_field("Status", status.phase or "Pending"))
    lines.append(_field("IP", status.pod_ip or ""))
    ips = [p.ip for p in status.pod_ips or []]
    lines.append("IPs:" if ips else _field("IPs", NONE))
    lines += [f"  IP:  {ip}" for ip in ips]
    restarts = {s.name: s for s in status.container_statuses or []}
    lines.append("Containers:")
    for container in obj.spec.containers:
        lines += _container_lines(container, restarts.get(container.name))
    if status.conditions:
        lines.append("Conditions:")
        lines += ["  " + line for line in table(["Type", "Status"], [[str(c.get("type")), str(c.get("status"))]
                                                                    for c in status.conditions]).splitlines()]
    lines.append(_field("Host Network", str(obj.spec.host_network).lower()))
    return "\n".join(lines)


def describe_events(obj: Resource, events: list[Event], now: datetime | None = None) -> str:
    """kubectl's Events table for the object (matched by uid, or kind and name)."""
    now = now or datetime.now(UTC)
    mine = [e for e in events if e.involved_object.name == obj.name and e.involved_object.kind == obj.kind
            and (not obj.metadata.uid or not e.involved_object.uid or e.involved_object.uid == obj.metadata.uid)]
    if not mine:
        return "Events:       <none>"
    mine.sort(key=lambda e: (e.last_timestamp or e.first_timestamp or "", e.metadata.name))
    rows = []
    for e in mine:
        last, first = parse_timestamp(e.last_timestamp or e.first_timestamp), parse_timestamp(e.first_timestamp)
        seen = human_duration((now - last).total_seconds()) if last else NONE
        if (e.count or 1) > 1 and first is not None:
            seen = f"{seen} (x{e.count} over {human_duration((now - first).total_seconds())})"
        source = (e.source.component if e.source else None) or e.reporting_component or ""
        rows.append([e.type or "", e.reason or "", seen, source, (e.message or "").strip()])
    head = ["Type", "Reason", "Age", "From", "Message"]
    rule = ["-" * len(h) for h in head]
    body = table(head, [rule] + rows).splitlines()
    return "\n".join(["Events:"] + ["  " + line for line in body])


def describe_namespace(obj: Namespace) -> str:
    lines = [_field("Name", obj.name)]
    lines += _map_lines("Labels", obj.labels, "=") + _map_lines("Annotations", obj.metadata.annotations, ": ")
    lines.append(_field("Status", str((obj.status or {}).get("phase", "Active"))))
    lines += ["", "No resource quota.", "", "No LimitRange resource."]
    return "\n".join(lines)


def _title(key: str) -> str:
    """``ipipMode`` → ``Ipip Mode``, as kubectl's generic describer words field names."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key).split(" ")
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _generic(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        width = max((len(_title(k)) + 2 for k in value), default=0)
        for key, item in value.items():
            label = f"{_title(key)}:"
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{label}")
                lines += _generic(item, indent + 2)
            else:
                lines.append(f"{pad}{label:<{width}}{_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                sub = _generic(item, indent + 2)
                if sub:
                    lines.append(pad + sub[0].lstrip())
                    lines += sub[1:]
            else:
                lines.append(f"{pad}{_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value in (None, {}, []):
        return NONE
    return str(value)


def describe_generic(obj: Resource) -> str:
    data = obj.to_dict()
    lines = _header(obj)
    lines += _map_lines("Labels", obj.labels, "=") + _map_lines("Annotations", obj.metadata.annotations, ": ")
    lines += [_field("API Version", obj.api_version), _field("Kind", obj.kind)]
    meta = {k: v for k, v in data["metadata"].items() if k in ("creationTimestamp", "generation", "resourceVersion", "uid")}
    lines.append("Metadata:")
    lines += _generic(meta, 2)
    for section in ("spec", "status"):
        if data.get(section):
            lines.append(f"{_title(section)}:")
            lines += _generic(data[section], 2)
    return "\n".join(lines)


def describe(obj: Resource, store: Any = None, events: list[Event] | None = None) -> str:
    """kubectl's page for ``obj``; ``store`` is read for what a page shows of other objects
    (a Service's endpoints); ``events`` end every page but a Service's and a Namespace's."""
    if isinstance(obj, Service):
        from .service_output import describe_service, service_slices

        return describe_service(obj, [] if store is None else service_slices(store, obj))
    if isinstance(obj, NetworkPolicy):
        return describe_network_policy(obj)
    if isinstance(obj, Ingress):
        from .ingress_output import describe_ingress

        return describe_ingress(obj, store) + "\n" + describe_events(obj, events or [])
    if isinstance(obj, Namespace):
        return describe_namespace(obj)
    text = describe_pod(obj) if isinstance(obj, Pod) else describe_generic(obj)
    return text + "\n" + describe_events(obj, events or [])


@click.command("describe")
@click.argument("args", nargs=-1, metavar="KIND [NAME…] | KIND/NAME…", shell_complete=name_choices)
@namespace_option
@click.option("-l", "--selector", default=None, help="Describe the objects matching this label selector.")
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], namespace: str | None, selector: str | None) -> None:
    """Show one or more objects in detail (all of a kind if no name is given)."""
    ns = namespace or "default"
    texts: list[str] = []
    groups = split_kind_names(args)
    refuse_names_with_selector(groups, selector)
    matcher = label_selector(selector)
    with open_resources(ctx) as store:
        events: list[Event] = store.list(Event, ns)  # type: ignore[assignment]
        for cls, names in groups:
            scope = ns if cls.NAMESPACED else None
            if names:
                for name in names:
                    obj = store.get(cls, name, scope)
                    if obj is None:
                        raise NotFound(f'{cls.resource_name()} "{name}" not found')
                    texts.append(describe(obj, store, events))
            else:
                texts += [describe(o, store, events) for o in store.list(cls, scope, matcher)]
    if not texts:
        click.echo(no_resources([cls for cls, _ in groups], ns), err=True)
        return
    click.echo("\n\n\n".join(texts))

