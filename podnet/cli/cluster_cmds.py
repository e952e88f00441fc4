"""``podnet up | down | status`` and ``podnet node exec | status``: thin shells over
``podnet.cluster.lifecycle`` and the node's BIRD."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

import click

from podnet.cli.common import state_dir
from podnet.cli.output import boxed_table, table


def _require_root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException("this command builds network namespaces and needs root (run it with sudo)")


@click.command("up")
@click.option("--nodes", default=3, show_default=True, help="Number of nodes (k8s-master01, k8s-node01, ...).")
@click.option("--underlay", type=click.Choice(["l2", "l3"]), default="l2", show_default=True,
              help="l2: one segment; l3: two subnets joined by a router.")
@click.option("--backend", type=click.Choice(["bgp", "vxlan", "host-gw"]), default="bgp", show_default=True)
@click.option("--pod-cidr", default="10.244.0.0/16", show_default=True)
@click.option("--vxlan-mode", type=click.Choice(["Never", "CrossSubnet", "Always"]), default="Never",
              show_default=True, help="The default IPPool's vxlanMode (bgp backend).")
@click.option("--service-cidr", default="10.96.0.0/12", show_default=True,
              help="Where ClusterIPs come from (.1 is the kubernetes Service, .10 is kept for cluster DNS).")
@click.option("--prefix", default="", help="Put in front of every namespace name.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for nodes to be ready.")
@click.pass_context
def up(ctx: click.Context, nodes: int, underlay: str, backend: str, pod_cidr: str, vxlan_mode: str,
       service_cidr: str, prefix: str, timeout: float) -> None:
    """Build an emulated cluster on this machine and start its node processes."""
    from rich.console import Console

    from podnet.cluster import lifecycle

    _require_root()
    console = Console(stderr=True, log_path=False)
    with console.status("podnet up") as spinner:
        def progress(msg: str) -> None:
            spinner.update(f"podnet up: {msg}")
            console.log(msg)

        res = lifecycle.up(state_dir(ctx), nodes=nodes, underlay=underlay, backend=backend, pod_cidr=pod_cidr,
                           vxlan_mode=vxlan_mode, prefix=prefix, progress=progress, timeout=timeout,
                           service_cidr=service_cidr)
    click.echo(f"cluster up: {len(res['nodes'])} nodes ({', '.join(res['nodes'])}), backend {backend}, "
               f"underlay {underlay}, in {res['seconds']:.2f} s")


@click.command("down")
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop every cluster process and remove every namespace `podnet up` made."""
    from podnet.cluster import lifecycle

    _require_root()
    removed = lifecycle.down(state_dir(ctx))
    click.echo(f"cluster down: removed {len(removed)} objects" if removed else "no cluster is running")


@click.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Nodes, their processes, backend and health."""
    from podnet.cluster import lifecycle

    st = lifecycle.status(state_dir(ctx))
    click.echo(f"backend {st['backend']}  underlay {st['underlay']}  pod CIDR {st['pod_cidr']}")
    rows = []
    for n in st["nodes"]:
        procs = " ".join(f"{k}:{pid}{'' if ok else '(dead)'}" for k, (pid, ok) in sorted(n["processes"].items()))
        if st["backend"] == "bgp":
            routing = f"{n['bgp'][0]}/{n['bgp'][1]} peers up" if n["bgp"] else "bird not running"
        else:
            routing = f"{n['routes']} routes"
        rows.append([n["name"], n["address"], n["segment"], n["netns"], procs, routing, n["health"]])
    click.echo(table(["NAME", "ADDRESS", "SEGMENT", "NETNS", "PROCESSES", "ROUTING", "HEALTH"], rows))
    for name, pid, ok in st["processes"]:
        click.echo(f"{name}: pid {pid} {'running' if ok else 'not running'}")
    for name, addr in st["externals"]:
        click.echo(f"external host {name}: {addr}")


@click.group("node")
def node() -> None:
    """Work with one node of the emulated cluster."""


@node.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def node_exec(ctx: click.Context, name: str, command: Sequence[str]) -> None:
    """Run COMMAND in node NAME's network namespace (e.g. `ip route`, `birdc show protocols`)."""
    from podnet.cluster import lifecycle
    from podnet.kernel import netns

    ns = lifecycle.node_netns(state_dir(ctx), name)
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv and argv[0] == "birdc" and "-s" not in argv:
        argv = ["birdc", "-s", os.path.join(lifecycle.run_dir(state_dir(ctx), name), "bird.ctl"), *argv[1:]]
    sys.stdout.flush()
    rc = subprocess.call(netns.nsenter_argv(ns, argv))
    ctx.exit(rc)


def bgp_table(rows: Sequence) -> str:
    """calicoctl's boxed table."""
    return boxed_table(["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                       [[r.address, r.peer_type, r.state, r.since, r.info] for r in rows])


@node.command("status")
@click.argument("name", required=False)
@click.pass_context
def node_status(ctx: click.Context, name: str | None) -> None:
    """BGP peers (like `calicoctl node status`) and routing problems of one node or all."""
    from podnet.cluster import lifecycle
    from podnet.errors import PodnetError
    from podnet.kernel.bird import Bird, peer_rows
    from podnet.agent.routing import read_status

    sd = state_dir(ctx)
    st = lifecycle.status(sd)
    names = [name] if name else [n["name"] for n in st["nodes"]]
    for i, n in enumerate(names):
        lifecycle.node_netns(sd, n)  # unknown node: a clear error
        if len(names) > 1:
            click.echo(("\n" if i else "") + f"== {n}")
        rd = lifecycle.run_dir(sd, n)
        if st["backend"] == "bgp":
            try:
                rows = peer_rows(Bird(rd).protocols())
                click.echo("Calico process is running.\n\nIPv4 BGP status")
                click.echo(bgp_table(rows) if rows else "No IPv4 peers found.")
                click.echo("\nIPv6 BGP status\nNo IPv6 peers found.")
            except PodnetError:
                click.echo("Calico process is not running.")
        rep = read_status(rd)
        if rep is None:
            click.echo("routing: no report yet")
            continue
        if st["backend"] != "bgp":
            click.echo(f"routing backend {rep['backend']}: {len(rep['routes'])} routes")
            for r in rep["routes"]:
                click.echo(f"  {r}")
        if rep.get("vtep"):
            v = rep["vtep"]
            click.echo(f"VTEP {v['name']}: mac {v['mac']} address {v['address']} mtu {v['mtu']}")
        for r in rep["refusals"]:
            click.echo(f"unreachable: {r}")
        for p in rep["problems"] + rep["errors"]:
            click.echo(f"problem: {p}")
