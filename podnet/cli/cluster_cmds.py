"""``podnet up | down | status`` and ``podnet node exec | status``: thin shells over
``podnet.cluster.lifecycle`` and the node's BIRD."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

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
@click.option("--cluster-dns", default=None,
              help="The nameserver pods with dnsPolicy ClusterFirst use (default: the service CIDR's .10).")
@click.option("--prefix", default="", help="Put in front of every namespace name.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for nodes to be ready.")
@click.option("--store", type=click.Choice(["sqlite", "etcd"]), default="sqlite", show_default=True,
              help="sqlite: one embedded store file; etcd: a 3-member etcd cluster with TLS on the underlay, "
                   "each node with its own state directory.")
@click.option("--monitoring", is_flag=True,
              help="Also start Prometheus in the lab, scraping every node process (see `podnet status`).")
@click.option("--scrape-interval", default=5.0, show_default=True, type=click.FloatRange(0.5, 300),
              help="Seconds between Prometheus scrapes (with --monitoring).")
@click.option("--router-bgp", is_flag=True,
              help="The lab router speaks BGP (AS 64513) with every node, as a top-of-rack router: Service "
                   "addresses the BGPConfiguration announces reach the external hosts (bgp backend).")
@click.option("--dns/--no-dns", "dns_addon", default=True, show_default=True,
              help="Install the cluster DNS (coredns pods and the kube-dns Service), as kubeadm does.")
@click.option("--ingress", is_flag=True,
              help="Also install the ingress-nginx controller (NodePorts 30380 and 30443 on every node).")
@click.option("--fast-path", is_flag=True,
              help="Every node agent attaches the eBPF fast path: established pod TCP skips netfilter's "
                   "forward path (off by default; see docs/enforcement.md).")
@click.pass_context
def up(ctx: click.Context, nodes: int, underlay: str, backend: str, pod_cidr: str, vxlan_mode: str,
       service_cidr: str, cluster_dns: str | None, prefix: str, timeout: float, store: str, monitoring: bool,
       scrape_interval: float, router_bgp: bool, dns_addon: bool, ingress: bool, fast_path: bool) -> None:
    """Build an emulated cluster on this machine and start its node processes."""
    from podnet.cli.progress import Progress
    from podnet.cluster import lifecycle

    _require_root()
    with Progress("podnet up") as progress:
        res = lifecycle.up(state_dir(ctx), nodes=nodes, underlay=underlay, backend=backend, pod_cidr=pod_cidr,
                           vxlan_mode=vxlan_mode, prefix=prefix, progress=lambda m: progress.step(m, done=True),
                           timeout=timeout, service_cidr=service_cidr, cluster_dns=cluster_dns, store=store,
                           monitoring=scrape_interval if monitoring else 0, router_bgp=router_bgp,
                           dns_addon=dns_addon, ingress=ingress, fast_path=fast_path)
    click.echo(f"cluster up: {len(res['nodes'])} nodes ({', '.join(res['nodes'])}), backend {backend}, "
               f"underlay {underlay}, store {store}, in {res['seconds']:.2f} s")
    if res["monitoring"]:
        click.echo(f"prometheus: {res['monitoring']['url']} (network namespace {res['monitoring']['netns']})")


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
        procs = " ".join(f"{k}:{pid if ok else '(down)'}{_restarts(n, k)}" for k, (pid, ok) in sorted(n["processes"].items()))
        if st["backend"] == "bgp":
            routing = f"{n['bgp'][0]}/{n['bgp'][1]} peers up" if n["bgp"] else "bird not running"
        else:
            routing = f"{n['routes']} routes"
        rows.append([n["name"], n["address"], n["segment"], n["netns"], procs, routing, n["health"]])
    click.echo(table(["NAME", "ADDRESS", "SEGMENT", "NETNS", "PROCESSES", "ROUTING", "HEALTH"], rows))
    for n in st["nodes"]:
        for proc, (count, reason, when) in sorted(n.get("restarts", {}).items()):
            at = time.strftime("%H:%M:%S", time.localtime(when)) if when else "?"
            click.echo(f"{n['name']} {proc}: {count} restart{'s' if count != 1 else ''}, last exit {reason} at {at}")
    for name, pid, ok in st["processes"]:
        click.echo(f"{name}: pid {pid} {'running' if ok else 'not running'}")
    for name, addr in st["externals"]:
        click.echo(f"external host {name}: {addr}")
    if st.get("monitoring"):
        mon = st["monitoring"]
        click.echo(f"prometheus: {mon['url']} (network namespace {mon['netns']}; e.g. "
                   f"ip netns exec {mon['netns']} curl -s '{mon['url']}/api/v1/query?query=up')")


def _restarts(row: dict[str, Any], proc: str) -> str:
    count = row.get("restarts", {}).get(proc, (0,))[0]
    return f"({count}↻)" if count else ""


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


def bgp_table(rows: Sequence[Any]) -> str:
    """calicoctl's boxed table."""
    return boxed_table(["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                       [[r.address, r.peer_type, r.state, r.since, r.info] for r in rows])


@node.command("status")
@click.argument("name", required=False)
@click.pass_context
def node_status(ctx: click.Context, name: str | None) -> None:
    """BGP peers (like `calicoctl node status`) and routing problems of one node or all."""
    from podnet.agent.routing import read_status
    from podnet.cluster import lifecycle
    from podnet.errors import PodnetError
    from podnet.kernel.bird import Bird, peer_rows

    sd = state_dir(ctx)
    host = _installed_host(sd)
    if host is not None:  # a real host made a node by `podnet node install`: this node only
        names, backend = [host[0]], host[1]
    else:
        st = lifecycle.status(sd)
        names, backend = [name] if name else [n["name"] for n in st["nodes"]], st["backend"]
    for i, n in enumerate(names):
        if host is None:
            lifecycle.node_netns(sd, n)  # unknown node: a clear error
        if len(names) > 1:
            click.echo(("\n" if i else "") + f"== {n}")
        rd = os.path.join(sd, "nodes", n) if host else lifecycle.run_dir(sd, n)
        if backend == "bgp":
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
        if backend != "bgp":
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


def _installed_host(sd: str) -> tuple[str, str] | None:
    """(node, backend) when ``sd`` belongs to a host made a node by `podnet node install`."""
    from podnet.agent.install import installed_node
    from podnet.cluster.builder import read_state

    node_name = installed_node(sd)
    if node_name is None or read_state(sd) is not None:
        return None
    from podnet.agent.node import cluster_backend
    from podnet.store.open import open_store

    store = open_store(sd, bootstrap=False)
    try:
        return node_name, cluster_backend(sd, store)
    finally:
        store.close()


def _add_install() -> None:
    from podnet.cli.node_install import install

    node.add_command(install)


_add_install()
