"""``podnet describe``: kubectl's describe layout. NetworkPolicy, Pod and Namespace get
kubectl's dedicated layouts; other kinds the generic one (fields as "Title Case: value")."""
from __future__ import annotations

import re
from typing import Any

import click

from podnet.errors import NotFound
from podnet.model import Namespace, NetworkPolicy, Pod, Resource, Service

from .common import (label_selector, name_choices, namespace_option, no_resources, open_resources,
                     refuse_names_with_selector, split_kind_names, user_errors)
from .output import NONE, parse_timestamp

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


def describe_pod(obj: Pod) -> str:
    status = obj.status
    lines = _header(obj)
    node = obj.spec.node_name or NONE
    if obj.spec.node_name and status.host_ip:
        node = f"{obj.spec.node_name}/{status.host_ip}"
    lines += [_field("Node", node), _field("Start Time", _when(status.start_time))]
    lines += _map_lines("Labels", obj.labels, "=") + _map_lines("Annotations", obj.metadata.annotations, ": ")
    lines += [_field("Status", status.phase or "Pending"), _field("IP", status.pod_ip or "")]
    ips = [p.ip for p in status.pod_ips or []]
    lines.append("IPs:" if ips else _field("IPs", NONE))
    lines += [f"  IP:  {ip}" for ip in ips]
    restarts = {s.name: s for s in status.container_statuses or []}
    lines.append("Containers:")
    for container in obj.spec.containers:
        lines.append(f"  {container.name}:")
        lines.append(f"    {'Image:':<15}{container.image or ''}")
        ports = ", ".join(f"{p.container_port}/{p.protocol}" for p in container.ports or []) or NONE
        lines.append(f"    {'Port:':<15}{ports}")
        for title, items in (("Command", container.command), ("Args", container.args)):
            if items:
                lines.append(f"    {title}:")
                lines += [f"      {item}" for item in items]
        state = restarts.get(container.name)
        lines.append(f"    {'Ready:':<15}{str(bool(state and state.ready)).lower().capitalize()}")
        lines.append(f"    {'Restart Count:':<15}{state.restart_count if state else 0}")
    lines.append(_field("Host Network", str(obj.spec.host_network).lower()))
    lines.append("Events:       <none>")
    return "\n".join(lines)


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
    lines.append("Events:       <none>")
    return "\n".join(lines)


def describe(obj: Resource, store: Any = None) -> str:
    """kubectl's page for ``obj``; ``store`` is read for what a page shows of other objects
    (a Service's endpoints)."""
    if isinstance(obj, Service):
        from .service_output import describe_service, service_slices

        return describe_service(obj, [] if store is None else service_slices(store, obj))
    if isinstance(obj, NetworkPolicy):
        return describe_network_policy(obj)
    if isinstance(obj, Pod):
        return describe_pod(obj)
    if isinstance(obj, Namespace):
        return describe_namespace(obj)
    return describe_generic(obj)


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
        for cls, names in groups:
            scope = ns if cls.NAMESPACED else None
            if names:
                for name in names:
                    obj = store.get(cls, name, scope)
                    if obj is None:
                        raise NotFound(f'{cls.resource_name()} "{name}" not found')
                    texts.append(describe(obj, store))
            else:
                texts += [describe(o, store) for o in store.list(cls, scope, matcher)]
    if not texts:
        click.echo(no_resources([cls for cls, _ in groups], ns), err=True)
        return
    click.echo("\n\n\n".join(texts))

