"""``podnet probe``, ``podnet verify`` and ``explain --trace``: the kernel's side of policy.

probe: real connections from every running pod to every running pod (in parallel, bounded
timeout, a progress bar on a terminal), printed like ``podnet matrix`` (same JSON). verify: the probe
against the engine's matrix; every disagreeing cell with the engine's explanation; exit 1 on
any mismatch. explain --trace: the engine's verdict plus which nft rules counted the packets
of one real attempt, on the source's and the destination's node.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

from podnet.errors import PodnetError
from podnet.policy.cluster import ICMP, ClusterState, Endpoint

from .common import state_dir
from .traffic_args import namespaces_arg, ports_arg, protocols_arg


@dataclass(frozen=True)
class Running:
    """The cluster as probing needs it: the engine's state and each running pod's namespace."""

    state: ClusterState
    netns: dict[str, str]  # "ns/pod" → pod network namespace name
    not_running: tuple[str, ...]


def load_running(ctx: click.Context) -> Running:
    from podnet.agent.pods import pod_netns_name
    from podnet.kernel import netns
    from podnet.model import Pod
    from podnet.policy.sources import cluster_from_snapshot
    from podnet.store.open import open_store

    store = open_store(state_dir(ctx), bootstrap=False, create=False)
    try:
        snap = store.snapshot()
    finally:
        store.close()
    found: dict[str, str] = {}
    missing: list[str] = []
    for pod in snap.of(Pod):
        key = f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"
        if pod.spec.host_network or not pod.status.pod_ip or not pod.spec.node_name:
            missing.append(key)
            continue
        name = pod_netns_name(pod.spec.node_name, pod.metadata.namespace or "default", pod.metadata.name,
                              pod.metadata.uid or "")
        if netns.exists(name):
            found[key] = name
        else:
            missing.append(key)
    return Running(cluster_from_snapshot(snap), found, tuple(sorted(missing)))


def _run_probe(ctx: click.Context, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str,
               timeout: float, workers: int, quiet: bool) -> tuple[Running, list[Endpoint], Any, list[Any]]:
    from podnet.cluster.probe import probe_matrix
    from podnet.kernel.probe import ProbePod

    from .progress import Progress

    running = load_running(ctx)
    wanted = namespaces_arg(namespaces, running.state.namespace_labels)
    eps = [ep for ep in running.state.pods if ep.key in running.netns and (not wanted or ep.namespace in wanted)]
    if not eps:
        raise PodnetError("no running pods to probe", hint="start pods (podnet apply) and wait until they are Running")
    ports, protocols = ports_arg(ports_text, eps), protocols_arg(protocols_text)
    pods = [ProbePod(ep.key, running.netns[ep.key], ep.ip or "") for ep in eps]
    with Progress("probing", counted=True, show=not quiet) as bar:
        observed, results = probe_matrix(pods, ports, protocols, timeout=timeout, workers=workers,
                                         progress=bar.advance if bar.enabled else None)
    return running, eps, observed, results


probe_options = [
    click.option("-n", "--namespace", "namespaces", multiple=True, help="Only pods of these namespaces (repeat or comma-separate)."),
    click.option("--service", "services", multiple=True,
                 help="Through this Service instead: svc/[NAMESPACE/]NAME[:PORT[/PROTO]] (repeatable); from every pod."),
    click.option("--ports", "ports_text", default=None, help="Ports to try, e.g. 80,81 (default: the pods' declared ports, else 80)."),
    click.option("--protocols", "protocols_text", default="TCP", show_default=True, help="TCP,UDP,SCTP (and ICMP)."),
    click.option("--timeout", default=1.0, show_default=True, help="Seconds before an attempt counts as blocked."),
    click.option("--workers", default=64, show_default=True, help="Attempts in flight at once."),
]


def _with_options(fn: Any) -> Any:
    for opt in reversed(probe_options):
        fn = opt(fn)
    return fn


@click.command("probe")
@_with_options
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def probe(ctx: click.Context, namespaces: tuple[str, ...], services: tuple[str, ...], ports_text: str | None,
          protocols_text: str, timeout: float, workers: int, output: str) -> None:
    """Real connection attempts between every pair of running pods: `.` reached, `X` blocked."""
    if services:
        _through_services(ctx, namespaces, services, timeout, workers, output, judge=False)
        return
    running, _eps, observed, results = _run_probe(ctx, namespaces, ports_text, protocols_text, timeout, workers,
                                                  quiet=output == "json")
    if output == "json":
        click.echo(json.dumps(observed.to_json()))
        return
    click.echo("\n\n".join(observed.render_table(key) for key in observed.keys))
    unsupported = sorted({r.key for r in results if r.outcome == "unsupported"})
    if unsupported:
        click.echo(f"\nnot probed (no kernel support): {', '.join(unsupported)}", err=True)
    if running.not_running:
        click.echo(f"\nnot running, left out: {', '.join(running.not_running)}", err=True)


@click.command("verify")
@_with_options
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def verify(ctx: click.Context, namespaces: tuple[str, ...], services: tuple[str, ...], ports_text: str | None,
           protocols_text: str, timeout: float, workers: int, output: str) -> None:
    """Probe the kernel and compare with the engine's matrix; exit 1 on any disagreement."""
    if services:
        if not _through_services(ctx, namespaces, services, timeout, workers, output, judge=True):
            ctx.exit(1)
        return
    from podnet.dataplane.nft.verify import compare
    from podnet.policy.matrix import compute_matrix

    running, eps, observed, results = _run_probe(ctx, namespaces, ports_text, protocols_text, timeout, workers,
                                                 quiet=output == "json")
    expected = compute_matrix(running.state, list(observed.ports), list(observed.protocols), eps)
    report = compare(running.state, expected, observed, {(r.src, r.dst, r.key): r.outcome for r in results})
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for d in report.disagreements:
            click.echo(d.describe())
        verdict = "OK" if report.ok else "MISMATCH"
        click.echo(f"{verdict}: {report.agreed} of {report.cells} cells agree, {len(report.disagreements)} disagree"
                   + (f", {report.skipped} not probed" if report.skipped else ""))
    if not report.ok:
        ctx.exit(1)


# --- explain --trace -----------------------------------------------------------------------


def trace_lines(ctx: click.Context, src_ref: str, dst_ref: str, option_proto: str | None) -> list[str]:
    """``explain --trace``: one real attempt to ``dst_ref`` (``NS/POD|IP[:PORT[/PROTO]]``) and the
    nft rules whose counters moved, per node, as lines of text."""
    from podnet.cli.policy_cmds import parse_target, pod_ref, resolve_port
    from podnet.cluster.trace import kernel_trace
    from podnet.dataplane.nft.render import describe_rule

    ref, port_text, proto = parse_target(dst_ref)
    protocol = (proto or option_proto or "TCP").upper()
    port = None if protocol == ICMP or not port_text or not port_text.isdigit() else int(port_text)
    running = load_running(ctx)
    if protocol != ICMP and port is None:
        port, protocol = resolve_port(running.state.endpoint(pod_ref(ref)), port_text, proto, option_proto)
    t = kernel_trace(state_dir(ctx), running.state, running.netns, pod_ref(src_ref), pod_ref(ref), port, protocol)
    if t.refused:
        return [f"kernel: {t.refused}"]
    lines = [f"kernel: one {protocol if port is None else f'{port}/{protocol}'} attempt "
             f"{t.src.key} → {t.dst.key if t.dst.is_pod else t.dst.ip}: {t.outcome}"
             + (f" ({t.detail})" if t.detail else "")]
    for n in t.nodes:
        hits = [h for h in t.hits if h.node == n]
        if not hits:
            lines.append(f"  node {n}: no podnet rule counted it (accepted by conntrack or not a pod interface)")
        for h in hits:
            lines.append(f"  node {n}: chain {h.chain}: {describe_rule(h.comment)} "
                         f"(+{h.packets} packet{'s' if h.packets > 1 else ''})")
    return lines


# --- through Services ------------------------------------------------------------------------


def _through_services(ctx: click.Context, namespaces: tuple[str, ...], refs: tuple[str, ...], timeout: float,
                      workers: int, output: str, judge: bool) -> bool:
    """probe/verify ``--service``: every running pod through each Service; True when every
    judged attempt agrees with the engine."""
    from podnet.cli.policy_cmds import parse_target
    from podnet.cluster.service_probe import probe_services
    from podnet.policy.services import service_ref

    running = load_running(ctx)
    wanted = namespaces_arg(namespaces, running.state.namespace_labels)
    sources = [ep for ep in running.state.pods if ep.key in running.netns and (not wanted or ep.namespace in wanted)]
    targets = []
    for text in refs:
        ref, port, proto = parse_target(text if "/" in text else f"svc/{text}")
        service = service_ref(ref)
        if service is None:
            raise PodnetError(f"--service {text!r} does not name a Service", hint="write svc/NAME[:PORT]")
        targets.append((service, port, proto))
    try:
        attempts = probe_services(running.state, running.netns, sources, targets, timeout, workers)
    except ValueError as exc:
        raise PodnetError(str(exc)) from None
    if output == "json":
        click.echo(json.dumps([a.to_dict() for a in attempts], indent=2))
    else:
        for a in attempts:
            mark = "" if not judge or a.agrees is None else ("  ok" if a.agrees else "  MISMATCH")
            click.echo(f"{a.src} -> svc/{a.service} {a.address}: {a.outcome}"
                       f" (engine: {a.expected}){mark}")
    bad = [a for a in attempts if a.agrees is False]
    if judge and output != "json":
        judged = sum(a.agrees is not None for a in attempts)
        click.echo(f"{'OK' if not bad else 'MISMATCH'}: {judged - len(bad)} of {judged} attempts through Services "
                   f"agree with the engine" + (f", {len(attempts) - judged} depend on the endpoint picked"
                                               if judged < len(attempts) else ""))
    return not bad


def service_trace_lines(ctx: click.Context, src_ref: str, service: str, port: str | None,
                        proto: str | None) -> list[str]:
    """``explain --trace`` to a Service: one attempt through it, the endpoint its DNAT picked and
    the rules that counted it."""
    from podnet.cluster.service_probe import service_trace
    from podnet.dataplane.nft.render import describe_rule

    running = load_running(ctx)
    src = running.state.endpoint(src_ref.strip())
    try:
        t = service_trace(state_dir(ctx), running.state, running.netns, src, service, port, proto)
    except ValueError as exc:
        return [f"kernel: {exc}"]
    p = t.verdict.port
    lines = [f"kernel: one {p.port}/{p.protocol} attempt {src.key} → svc/{service} "
             f"({t.verdict.view.service.spec.cluster_ip}): {t.outcome}" + (f" ({t.detail})" if t.detail else "")]
    for n in t.nodes:
        for h in (h for h in t.hits if h.node == n):
            lines.append(f"  node {n}: chain {h.chain}: {describe_rule(h.comment)} "
                         f"(+{h.packets} packet{'s' if h.packets > 1 else ''})")
    if not t.hits:
        lines.append("  no podnet rule counted it")
    return lines
