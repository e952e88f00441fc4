"""``podnet probe``, ``podnet verify`` and ``podnet explain --trace``: the kernel's side of policy.

probe: real connections from every running pod to every running pod (in parallel, bounded
timeout, progress on stderr), printed like ``podnet matrix`` (same JSON). verify: the probe
against the engine's matrix; every disagreeing cell with the engine's explanation; exit 1 on
any mismatch. explain --trace: the engine's verdict plus which nft rules counted the packets
of one real attempt, on the source's and the destination's node.
"""
from __future__ import annotations

import json
import sys
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
    from podnet.agent.policy import cluster_state
    from podnet.kernel import netns
    from podnet.model import Pod
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
    return Running(cluster_state(snap), found, tuple(sorted(missing)))


def _run_probe(ctx: click.Context, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str,
               timeout: float, workers: int, quiet: bool) -> tuple[Running, list[Endpoint], Any, list[Any]]:
    from podnet.kernel.nft_probe import ProbePod, probe_all

    running = load_running(ctx)
    wanted = namespaces_arg(namespaces, running.state.namespace_labels)
    eps = [ep for ep in running.state.pods if ep.key in running.netns and (not wanted or ep.namespace in wanted)]
    if not eps:
        raise PodnetError("no running pods to probe", hint="start pods (podnet apply) and wait until they are Running")
    ports, protocols = ports_arg(ports_text, eps), protocols_arg(protocols_text)
    pods = [ProbePod(ep.key, running.netns[ep.key], ep.ip or "") for ep in eps]
    progress = None
    bar: Any = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(transient=True, console=Console(stderr=True))
        task = bar.add_task("probing", total=None)
        bar.start()
        progress = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
    elif not quiet:
        step = {"next": 0.0}

        def progress(done: int, total: int) -> None:  # type: ignore[misc]
            if done / total >= step["next"]:
                click.echo(f"probing: {done}/{total}", err=True)
                step["next"] += 0.25
    try:
        observed, results = probe_all(pods, ports, protocols, timeout=timeout, workers=workers, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    return running, eps, observed, results


probe_options = [
    click.option("-n", "--namespace", "namespaces", multiple=True, help="Only pods of these namespaces (repeat or comma-separate)."),
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
def probe(ctx: click.Context, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str,
          timeout: float, workers: int, output: str) -> None:
    """Real connection attempts between every pair of running pods: `.` reached, `X` blocked."""
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
def verify(ctx: click.Context, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str,
           timeout: float, workers: int, output: str) -> None:
    """Probe the kernel and compare with the engine's matrix; exit 1 on any disagreement."""
    from podnet.dataplane.nft_verify import compare
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


def kernel_trace(ctx: click.Context, src_ref: str, dst_ref: str, port: int | None, protocol: str,
                 timeout: float = 1.0) -> list[str]:
    """One real attempt from ``src_ref`` and the nft rules whose counters moved, per node."""
    from podnet.cluster.lifecycle import node_netns
    from podnet.kernel.nft import NftApplier
    from podnet.kernel.nft_probe import probe as probe_once

    running = load_running(ctx)
    src, dst = running.state.endpoint(src_ref), running.state.endpoint(dst_ref)
    if not src.is_pod or src.key not in running.netns:
        return [f"kernel: cannot trace from {src.describe()} (only a running pod can send a probe)"]
    if not dst.ip:
        return [f"kernel: {dst.describe()} has no address"]
    sd = state_dir(ctx)
    nodes = sorted({n for n in (src.node, dst.node) if n})
    appliers = {n: NftApplier(node_netns(sd, n)) for n in nodes}
    before = {n: {(c.chain, c.comment): c.packets for c in a.counters()} for n, a in appliers.items()}
    outcome, detail = probe_once(running.netns[src.key], dst.ip, port, protocol, timeout)
    lines = [f"kernel: one {protocol if port is None else f'{port}/{protocol}'} attempt "
             f"{src.key} → {dst.key if dst.is_pod else dst.ip}: {outcome}" + (f" ({detail})" if detail else "")]
    from podnet.dataplane.nft_render import describe_rule

    for n, a in appliers.items():
        moved = [(c.chain, c.comment, c.packets - before[n].get((c.chain, c.comment), 0)) for c in a.counters()]
        hits = [m for m in moved if m[2] > 0]
        if not hits:
            lines.append(f"  node {n}: no podnet rule counted it (accepted by conntrack or not a pod interface)")
        for chain, comment, delta in hits:
            lines.append(f"  node {n}: chain {chain}: {describe_rule(comment)} (+{delta} packet{'s' if delta > 1 else ''})")
    return lines


def _explain_with_trace() -> click.Command:
    """The engine's ``explain`` plus ``--trace``: the same command, one more option."""
    from podnet.cli import policy_cmds

    base: click.Command = policy_cmds.explain

    @click.pass_context
    def callback(ctx: click.Context, trace: bool, **kwargs: Any) -> None:
        ctx.invoke(base.callback, **kwargs)  # type: ignore[arg-type]
        if not trace:
            return
        ref, port_text, proto = policy_cmds.parse_target(kwargs["dst_ref"])
        protocol = (proto or kwargs.get("option_proto") or "TCP").upper()
        port = None if protocol == ICMP or not port_text or not port_text.isdigit() else int(port_text)
        if protocol != ICMP and port is None:
            running = load_running(ctx)
            dst = running.state.endpoint(policy_cmds.pod_ref(ref))
            port, protocol = policy_cmds._resolve_port(dst, port_text, proto, kwargs.get("option_proto"))
        to_stderr = kwargs.get("output") == "json"  # keep stdout valid JSON
        for line in kernel_trace(ctx, policy_cmds.pod_ref(kwargs["src_ref"]), policy_cmds.pod_ref(ref), port,
                                 protocol):
            click.echo(line, err=to_stderr)

    trace = click.Option(["--trace"], is_flag=True,
                         help="Also send one real attempt and show the nft rules that counted it on each node.")
    return click.Command("explain", params=[*base.params, trace], callback=callback, help=base.help,
                         short_help=base.short_help)


explain = _explain_with_trace()
