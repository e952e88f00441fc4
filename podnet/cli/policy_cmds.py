"""``podnet explain``, ``podnet matrix``, ``podnet lint``: the policy engine's shells.

Each reads the cluster (the live store, or ``--from-files`` manifests including a
``kubectl get ns,pods,netpol -A -o yaml`` dump; every policy kind, tiers and network sets),
calls one policy function, and formats.
"""
from __future__ import annotations

import ipaddress
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

import click

from podnet.errors import PodnetError
from podnet.policy.cluster import ICMP, ClusterState, Endpoint
from podnet.policy.lint import Locate

from .common import state_dir
from .traffic_args import KNOWN_PROTOCOLS, namespaces_arg, ports_arg, protocols_arg

_PROTOS = KNOWN_PROTOCOLS

from_files_option = click.option(
    "--from-files", "from_files", multiple=True, type=click.Path(exists=True),
    help="Read namespaces, pods, policies (every kind), tiers and network sets from these files or directories "
         "instead of the store (a `kubectl get ns,pods,netpol -A -o yaml` dump works).")
ipblock_option = click.option(
    "--ipblock-matches-pods/--ipblock-ignores-pods", default=True, show_default=True,
    help="Whether ipBlock peers also match pod IPs (Calico and the Kubernetes e2e suite: yes).")


# --- reading the cluster ------------------------------------------------------------------


def read_snapshot(ctx: click.Context) -> Any:
    """One consistent snapshot of the live store."""
    from podnet.store.open import open_store

    store = open_store(state_dir(ctx), bootstrap=False, create=False)
    try:
        return store.snapshot()
    finally:
        store.close()


def load_cluster(ctx: click.Context, from_files: Sequence[str],
                 ipblock_matches_pods: bool = True) -> tuple[ClusterState, Locate]:
    """The cluster state from the files, else from the store; and (for lint) a
    ``locate(policy_ref, field_path) -> file:line``."""
    from podnet.policy.sources import cluster_from_files, cluster_from_snapshot, no_location

    if from_files:
        return cluster_from_files(from_files, ipblock_matches_pods)
    return cluster_from_snapshot(read_snapshot(ctx), ipblock_matches_pods), no_location


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


def resolve_port(dst: Endpoint, port: str | None, proto: str | None, option_proto: str | None) -> tuple[int | None, str]:
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
@click.option("--to", "dst_ref", required=True,
              help="Destination: NAMESPACE/POD, IP or svc/[NAMESPACE/]NAME, optionally :PORT[/PROTO].")
@click.option("--protocol", "option_proto", default=None, help="TCP (default), UDP, SCTP or ICMP.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@from_files_option
@ipblock_option
@click.option("--trace", is_flag=True,
              help="Also send one real attempt and show the nft rules that counted it on each node.")
@click.pass_context
def explain(ctx: click.Context, src_ref: str, dst_ref: str, option_proto: str | None, output: str,
            from_files: tuple[str, ...], ipblock_matches_pods: bool, trace: bool) -> None:
    """Why traffic from one pod or address to another is allowed or denied, down to the rule."""
    from podnet.policy.evaluate import evaluate
    from podnet.policy.render import render_verdict
    from podnet.policy.services import explain_service, render_service_verdict, service_ref, through_ingress_lines

    state, _ = load_cluster(ctx, from_files, ipblock_matches_pods)
    src = state.endpoint(pod_ref(src_ref))
    ref, port, proto = parse_target(dst_ref)
    if (service := service_ref(ref)) is not None:  # svc/NAME: a verdict per backend, after DNAT
        result = explain_service(state, src, service, port, proto or option_proto)
        click.echo(json.dumps(result.to_dict(), indent=2) if output == "json" else render_service_verdict(result))
        if output != "json":
            for line in through_ingress_lines(state, src, result):
                click.echo(line)
        if trace:
            from .probe_cmds import service_trace_lines

            for line in service_trace_lines(ctx, src_ref, service, port, proto or option_proto):
                click.echo(line, err=output == "json")
        return
    dst = state.endpoint(pod_ref(ref))
    number, protocol = resolve_port(dst, port, proto, option_proto)
    verdict = evaluate(state, src, dst, number, protocol)
    if output == "json":
        click.echo(json.dumps(verdict.to_dict(), indent=2))
    else:
        click.echo(render_verdict(verdict))
    if trace:
        from .probe_cmds import trace_lines

        for line in trace_lines(ctx, src_ref, dst_ref, option_proto):
            click.echo(line, err=output == "json")  # keep stdout valid JSON


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
    # Every form is written row by row from the per-class matrix: printing a 100,000-pod matrix
    # must not hold its rows (or its text) in memory, nor dominate the time.
    out = sys.stdout
    if output == "json":
        for piece in result.iter_json():
            out.write(piece)
        out.write("\n")
    elif output == "csv":
        for piece in result.iter_csv():
            out.write(piece)
    else:
        if not result.pods:
            click.echo("no pods")
            return
        from .output import matrix_summary

        summary = matrix_summary(result)
        if summary is not None:  # a table too large for a terminal (a pipe or a file gets it)
            click.echo(summary)
            return
        for k, key in enumerate(result.keys):
            if k:
                out.write("\n\n")
            for n, line in enumerate(result.iter_table(key)):
                out.write(f"\n{line}" if n else line)
        out.write("\n")


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

