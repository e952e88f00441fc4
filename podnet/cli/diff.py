"""``podnet diff OLD NEW`` and ``podnet diff --live -f NEW``: what a policy change does.

OLD and NEW are files, directories or ``kubectl get -o yaml`` dumps, each a whole cluster
(namespaces, pods and policies); with ``--live`` the old side is the store and the new side the
store with the files applied over it, as ``kubectl diff -f`` shows a change before it is made.
Prints the connections that open or close, grouped by the policy that decides and by
namespaces; ``-o json`` for pipelines. Exit codes as ``diff``: 0 nothing changes, 1 something
does, 2 trouble.
"""
from __future__ import annotations

import json

import click

from podnet.errors import PodnetError

from .policy_cmds import ipblock_option, read_snapshot
from .traffic_args import protocols_arg


@click.command("diff")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--live", is_flag=True, help="Compare the live store with the store plus the files (-f).")
@click.option("-f", "--filename", "files", multiple=True, type=click.Path(exists=True),
              help="With --live: the files to apply over the store.")
@click.option("--ports", "ports_text", default=None, help="Ports to compare, e.g. 80,443 (default: the declared ports, else 80).")
@click.option("--protocols", "protocols_text", default="TCP", show_default=True, help="TCP,UDP,SCTP (and ICMP).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@ipblock_option
@click.pass_context
def command(ctx: click.Context, paths: tuple[str, ...], live: bool, files: tuple[str, ...], ports_text: str | None,
            protocols_text: str, output: str, ipblock_matches_pods: bool) -> None:
    """Which (from, to, port) connections a policy change opens or closes, and by which policy."""
    from podnet.policy.diff import diff_ports, semantic_diff
    from podnet.policy.sources import cluster_from_files, cluster_from_snapshot, snapshot_objects

    try:
        if live:
            new_files = files + paths
            if not new_files:
                raise click.UsageError("--live needs the files to compare with: podnet diff --live -f NEW")
            snapshot = read_snapshot(ctx)
            old = cluster_from_snapshot(snapshot, ipblock_matches_pods)
            new, _ = cluster_from_files(new_files, ipblock_matches_pods, base=snapshot_objects(snapshot))
        else:
            if len(paths) != 2 or files:
                raise click.UsageError("give OLD and NEW (files, directories or dumps), or --live -f NEW")
            old, _ = cluster_from_files([paths[0]], ipblock_matches_pods)
            new, _ = cluster_from_files([paths[1]], ipblock_matches_pods)
        try:
            ports = diff_ports(old, new, ports_text)
        except ValueError:
            raise PodnetError(f"--ports {ports_text!r}: ports are numbers separated by commas") from None
        result = semantic_diff(old, new, ports, protocols_arg(protocols_text))
    except PodnetError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
        return
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.render())
    ctx.exit(1 if result.changed else 0)
