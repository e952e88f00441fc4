"""``podnet report -o report.html``: the cluster (live store or ``--from-files``) as one
self-contained HTML page, computed by the policy engine (``podnet.report``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .policy_cmds import from_files_option, ipblock_option
from .traffic_args import namespaces_arg, ports_arg, protocols_arg


def live_facts(snapshot: Any) -> Any:
    """Nodes with addresses, pod CIDRs and the routes between them, from the store. Denied flows:
    none until a flow log source exists (the report then says so)."""
    from podnet.model import Node
    from podnet.policy.sources import snapshot_objects
    from podnet.report.facts import ReportFacts, routes_between

    nodes = sorted((o for o in snapshot_objects(snapshot) if isinstance(o, Node)), key=lambda n: n.metadata.name)
    rows = [(n.metadata.name, tuple(sorted({a.address for a in n.status.addresses or ()})),
             tuple(n.spec.pod_cidrs or ([n.spec.pod_cidr] if n.spec.pod_cidr else []))) for n in nodes]
    return ReportFacts(live=True, source="live cluster", nodes=routes_between(rows), flows=None)


@click.command("report")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="Write the HTML page here (`-` for standard output).")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Only pods of these namespaces.")
@click.option("--ports", "ports_text", default=None, help="Ports to check (default: the pods' declared ports, else 80).")
@click.option("--protocols", "protocols_text", default="TCP", show_default=True, help="TCP,UDP,SCTP (and ICMP).")
@from_files_option
@ipblock_option
@click.pass_context
def command(ctx: click.Context, out: str, namespaces: tuple[str, ...], ports_text: str | None, protocols_text: str,
            from_files: tuple[str, ...], ipblock_matches_pods: bool) -> None:
    """An HTML report: nodes, pods, the connectivity heat map (click a cell: why), the policy graph,
    lint findings and recent denied flows. One file, no network needed to open it."""
    from podnet.policy.sources import cluster_from_files, cluster_from_snapshot
    from podnet.report.build import build_report
    from podnet.report.facts import ReportFacts

    from .policy_cmds import read_snapshot

    if from_files:
        state, locate = cluster_from_files(from_files, ipblock_matches_pods)
        facts = ReportFacts(live=False, source="files: " + ", ".join(from_files))
    else:
        snapshot = read_snapshot(ctx)
        state, locate = cluster_from_snapshot(snapshot, ipblock_matches_pods), None
        facts = live_facts(snapshot)
    wanted = namespaces_arg(namespaces, state.namespace_labels)
    pods = [ep for ep in state.pods if not wanted or ep.namespace in wanted]
    html = build_report(state, ports_arg(ports_text, pods), protocols_arg(protocols_text), pods, facts, locate)
    if out == "-":
        click.echo(html, nl=False)
        return
    Path(out).write_text(html, encoding="utf-8")
    click.echo(f"wrote {out} ({len(html.encode()) // 1024} KiB, {len(pods)} pods, {len(state.policies)} policies)", err=True)
