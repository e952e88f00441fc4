"""``podnet explain``, ``podnet matrix``, ``podnet lint``: the policy engine's shells.

Each reads the cluster (the live store, or ``--from-files`` manifests including a
``kubectl get ns,pods,netpol -A -o yaml`` dump), calls one policy function, and formats.
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Sequence

import click

from podnet.errors import PodnetError
from podnet.model import Deployment, Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ICMP, ClusterState, Endpoint

from .common import state_dir
from .traffic_args import KNOWN_PROTOCOLS, namespaces_arg, ports_arg, protocols_arg

_PROTOS = KNOWN_PROTOCOLS

from_files_option = click.option(
    "--from-files", "from_files", multiple=True, type=click.Path(exists=True),
    help="Read namespaces, pods and policies from these files or directories instead of the store "
         "(a `kubectl get ns,pods,netpol -A -o yaml` dump works).")
ipblock_option = click.option(
    "--ipblock-matches-pods/--ipblock-ignores-pods", default=True, show_default=True,
    help="Whether ipBlock peers also match pod IPs (Calico and the Kubernetes e2e suite: yes).")


# --- reading the cluster ------------------------------------------------------------------


#: Offline, a Deployment stands for at most this many replicas: more identical pods without IPs
#: would say nothing new (and `replicas: 1000000` would be a million pods).
STAND_INS = 10


def _deployment_pods(dep: Deployment, existing: set[tuple[str, frozenset]]) -> list[Pod]:
    """Offline only: a Deployment without pods in the files stands for its replicas (no IPs
    yet), at most STAND_INS of them."""
    ns = dep.metadata.namespace or "default"
    labels = dict(dep.spec.template.metadata.labels)
    if (ns, frozenset(labels.items())) in existing:
        return []
    return [
        Pod.model_validate({
            "metadata": {"name": f"{dep.metadata.name}-{i}", "namespace": ns, "labels": labels},
            "spec": dep.spec.template.spec.to_dict(),
        })
        for i in range(min(max(dep.spec.replicas, 1), STAND_INS))
    ]


def _loc(location: Any) -> str:
    return f"{location.file}:{location.line}"


def load_cluster(ctx: click.Context, from_files: Sequence[str], ipblock_matches_pods: bool = True,
                 want_locator: bool = False) -> tuple[ClusterState, Any]:
    """The cluster state, and (for lint) a ``locate(policy_ref, field_path) -> file:line``."""
    locators: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if from_files:
        from podnet.manifest import load_paths

        loaded = load_paths(list(from_files), recursive=True)
        objs = [item.obj for item in loaded]
        for item in loaded:
            if isinstance(item.obj, NetworkPolicy):
                ref = f"{item.obj.metadata.namespace or 'default'}/{item.obj.metadata.name}"
                sources[ref] = _loc(item.source)
                locators[ref] = (lambda path, item=item: _loc(item.locate(path)))
        pods = [o for o in objs if isinstance(o, Pod)]
        existing = {(p.metadata.namespace or "default", frozenset(p.metadata.labels.items())) for p in pods}
        for dep in (o for o in objs if isinstance(o, Deployment)):
            pods += _deployment_pods(dep, existing)  # type: ignore[arg-type]
        namespaces = [o for o in objs if isinstance(o, Namespace)]
        # A later manifest for the same policy replaces an earlier one, as `apply` would.
        latest = {(o.metadata.namespace or "default", o.metadata.name): o for o in objs if isinstance(o, NetworkPolicy)}
        policies = list(latest.values())
        extra_ns = {p.metadata.namespace or "default" for p in policies} | {"default"}
        known = {n.metadata.name for n in namespaces}
        namespaces += [Namespace.model_validate({"metadata": {"name": n}}) for n in sorted(extra_ns - known)]
    else:
        from podnet.store.open import open_store

        store = open_store(state_dir(ctx), bootstrap=False, create=False)
        try:
            snap = store.snapshot()
        finally:
            store.close()
        namespaces = list(snap.of(Namespace))  # type: ignore[arg-type]
        pods = list(snap.of(Pod))  # type: ignore[arg-type]
        policies = list(snap.of(NetworkPolicy))  # type: ignore[arg-type]
    state = ClusterState.build(namespaces, pods, policies, ipblock_matches_pods=ipblock_matches_pods,
                               sources=sources, locators=locators)

    def locate(ref: str, path: tuple) -> str | None:
        fn = locators.get(ref)
        return fn(path) if fn else None

    return state, locate


# --- explain ------------------------------------------------------------------------------


_TARGET = re.compile(r"^(?P<ref>[^:\[\]]+|\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:]+:[0-9a-fA-F:]*:[0-9a-fA-F:.]*)"
                     r"(?::(?P<port>[A-Za-z0-9-]+)(?:/(?P<proto>[A-Za-z]+))?)?$")


def parse_target(text: str) -> tuple[str, str | None, str | None]:
    """``NS/POD|IP[:PORT[/PROTO]]`` → (ref, port, protocol); IPv6 with a port as ``[v6]:80``."""
    text = text.strip()
    try:
        ipaddress.ip_address(text)
        return text, None, None
    except ValueError:
        pass
    match = _TARGET.match(text)
    if not match:
        raise PodnetError(f"cannot read target {text!r}", hint="write NAMESPACE/POD or IP, optionally :PORT or :PORT/PROTO")
    ref = match.group("ref").strip("[]")
    return ref, match.group("port"), match.group("proto")


def pod_ref(text: str) -> str:
    """``client2`` → ``default/client2`` (kubectl's default namespace); ``ns/pod`` and IP
    addresses as they are."""
    text = text.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        return text if "/" in text else f"default/{text}"


def _resolve_port(dst: Endpoint, port: str | None, proto: str | None, option_proto: str | None) -> tuple[int | None, str]:
    protocol = (proto or option_proto or "TCP").upper()
    if port and port.upper() == ICMP and not proto:
        return None, ICMP
    if protocol not in _PROTOS:
        raise PodnetError(f"unknown protocol {protocol!r}", hint=f"use one of {', '.join(_PROTOS)}")
    if protocol == ICMP:
        return None, ICMP
    if port is None:
        declared = dst.container_ports
        if dst.is_pod and declared:
            return declared[0][0], protocol if proto or option_proto else declared[0][1]
        raise PodnetError(f"no port given for {dst.key}", hint="write e.g. --to default/web:80 (or :80/UDP, or :ICMP)")
    if port.isdigit():
        number = int(port)
        if not 1 <= number <= 65535:
            raise PodnetError(f"port {number} is outside 1-65535")
        return number, protocol
    number_for = dict(dst.named_ports).get((port, protocol))
    if number_for is None:
        raise PodnetError(f"{dst.key} declares no {protocol} port named {port!r}",
                          hint="give a number, or a name from the pod's containerPorts")
    return number_for, protocol


@click.command("explain")
@click.option("--from", "src_ref", required=True, help="Source: NAMESPACE/POD or an IP address.")
@click.option("--to", "dst_ref", required=True, help="Destination: NAMESPACE/POD or IP, optionally :PORT[/PROTO].")
@click.option("--protocol", "option_proto", default=None, help="TCP (default), UDP, SCTP or ICMP.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@from_files_option
@ipblock_option
@click.pass_context
def explain(ctx: click.Context, src_ref: str, dst_ref: str, option_proto: str | None, output: str,
            from_files: tuple[str, ...], ipblock_matches_pods: bool) -> None:
    """Why traffic from one pod or address to another is allowed or denied, down to the rule."""
    from podnet.policy.evaluate import evaluate
    from podnet.policy.render import render_verdict

    state, _ = load_cluster(ctx, from_files, ipblock_matches_pods)
    src = state.endpoint(pod_ref(src_ref))
    ref, port, proto = parse_target(dst_ref)
    dst = state.endpoint(pod_ref(ref))
    number, protocol = _resolve_port(dst, port, proto, option_proto)
    verdict = evaluate(state, src, dst, number, protocol)
    if output == "json":
        click.echo(json.dumps(verdict.to_dict(), indent=2))
    else:
        click.echo(render_verdict(verdict))


# --- matrix -------------------------------------------------------------------------------


@click.command("matrix")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Only pods of these namespaces (repeat or comma-separate).")
@click.option("--ports", "ports_text", default=None, help="Ports to check, e.g. 80,81 (default: the pods' declared ports, else 80).")
@click.option("--protocols", "protocols_text", default="TCP", show_default=True, help="TCP,UDP,SCTP (and ICMP).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@from_files_option
@ipblock_option
@click.pass_context
def matrix(ctx: click.Context, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str, output: str,
           from_files: tuple[str, ...], ipblock_matches_pods: bool) -> None:
    """The simulated connectivity truth table: rows = from, columns = to, `.` allowed, `X` denied."""
    from podnet.policy.matrix import compute_matrix

    state, _ = load_cluster(ctx, from_files, ipblock_matches_pods)
    wanted = namespaces_arg(namespaces, state.namespace_labels)
    pods = [ep for ep in state.pods if not wanted or ep.namespace in wanted]
    result = compute_matrix(state, ports_arg(ports_text, pods), protocols_arg(protocols_text), pods)
    if output == "json":
        click.echo(json.dumps(result.to_json()))
    elif output == "csv":
        click.echo(result.render_csv(), nl=False)
    else:
        if not result.pods:
            click.echo("no pods")
            return
        from .output import matrix_summary

        summary = matrix_summary(result)
        if summary is not None:  # a table too large for a terminal (a pipe or a file gets it)
            click.echo(summary)
            return
        click.echo("\n\n".join(result.render_table(key) for key in result.keys))


# --- lint ---------------------------------------------------------------------------------


@click.command("lint")
@click.option("-f", "--filename", "files", multiple=True, type=click.Path(exists=True),
              help="Lint these files or directories (with the namespaces and pods they hold).")
@from_files_option
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@ipblock_option
@click.pass_context
def lint(ctx: click.Context, files: tuple[str, ...], from_files: tuple[str, ...], output: str,
         ipblock_matches_pods: bool) -> None:
    """Policies that are valid but probably wrong, with file:line and a fix. Exit 1 if any."""
    from podnet.errors import ValidationError
    from podnet.policy.lint import lint as run_lint

    try:
        state, locate = load_cluster(ctx, tuple(files) + tuple(from_files), ipblock_matches_pods)
    except ValidationError as exc:
        # Invalid manifests (e.g. an except outside its cidr) are lint errors too, with file:line.
        if output == "json":
            click.echo(json.dumps({"errors": [str(p) for p in exc.problems], "warnings": []}, indent=2))
        else:
            for problem in exc.problems:
                click.echo(f"error: {problem}")
        ctx.exit(1)
        return
    warnings = run_lint(state, locate)
    skipped = [] if state.pods else [
        "no pods in the input, so the checks of what the selectors select were skipped: add the pods "
        "(a `kubectl get pods -A -o yaml` dump will do) to run them"]
    if output == "json":
        click.echo(json.dumps({"errors": [], "warnings": [w.to_dict() for w in warnings], "notes": skipped}, indent=2))
    else:
        for w in warnings:
            click.echo(f"warning: {w}")
        if not warnings:
            click.echo(f"no findings ({len(state.policies)} policies, {len(state.pods)} pods)")
        for note in skipped:
            click.echo(f"note: {note}")
    if warnings:
        ctx.exit(1)

