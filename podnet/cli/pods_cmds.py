"""Pod commands: exec, logs, ipam show, install-cni (thin shells)."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from podnet.errors import NotFound, PodnetError

from .common import namespace_option, state_dir, user_errors


def _find_pod(ctx: click.Context, name: str, namespace: str | None) -> Any:
    from podnet.model.core import Pod
    from podnet.store.open import open_store

    store = open_store(state_dir(ctx), bootstrap=False, create=False)
    try:
        pod = store.get(Pod, name, namespace or "default")
    finally:
        store.close()
    if pod is None:
        raise NotFound(f'pods "{name}" not found in namespace "{namespace or "default"}"')
    return pod


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("pod")
@namespace_option
@click.option("-c", "--container", default=None, help="Container name (default: the first).")
@click.option("-i", "--stdin", "interactive", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Stdin is a terminal.")
@click.option("-it", "it", is_flag=True, hidden=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
@user_errors
def exec_(ctx: click.Context, pod: str, namespace: str | None, container: str | None, interactive: bool, tty: bool,
          it: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND inside a container of POD (its sandbox: namespaces, files, capabilities and
    environment); its exit code is ours."""
    from podnet.workloads.records import load_pods, proc_start_time
    from podnet.workloads.sandbox import enter_argv, privileges

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise PodnetError("no command given", hint="podnet exec POD -- CMD [ARGS…]")
    p = _find_pod(ctx, pod, namespace)
    ns = p.namespace or "default"
    if not p.spec.node_name:
        raise PodnetError(f"pod {ns}/{pod} is not scheduled to a node yet", hint="wait for it to be Running")
    spec = next((c for c in p.spec.containers if container in (None, c.name)), None)
    if spec is None:
        raise PodnetError(f"container {container} is not valid for pod {pod}",
                          hint=f"choose one of: {', '.join(c.name for c in p.spec.containers)}")
    sd = _node_state_dir(ctx, p.spec.node_name)
    record = next((lp for lp in load_pods(sd, p.spec.node_name) if lp.uid == (p.metadata.uid or "")), None)
    st = record.container(spec.name) if record is not None else None
    if record is None or st is None or st.pid <= 0 or proc_start_time(st.pid) != st.start_ticks:
        raise PodnetError(f"container {spec.name} of pod {ns}/{pod} is not running (phase {p.status.phase or 'Pending'})",
                          hint=f"check `podnet get pod {pod} -n {ns}` and `podnet logs {pod} -n {ns}`")
    env = {"POD_IP": record.ip or "", **st.env, "HOME": "/root", "TERM": os.environ.get("TERM", "dumb")}
    sys.stdout.flush()
    argv = enter_argv(st.pid, privileges(spec.security_context), command)
    if not (interactive or it):
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
    os.execvpe(argv[0], argv, env)


def _node_state_dir(ctx: click.Context, node: str) -> str:
    """Where the node's agent keeps its pods: its own directory in an etcd lab, else ours."""
    from podnet.cluster.datastore import node_state_dir

    return node_state_dir(os.path.abspath(state_dir(ctx)), node)


@click.command("logs")
@click.argument("pod")
@namespace_option
@click.option("-c", "--container", default=None, help="Container name (default: the first).")
@click.option("-f", "--follow", is_flag=True)
@click.option("--tail", default=-1, help="Lines from the end (-1: all).")
@click.pass_context
@user_errors
def logs(ctx: click.Context, pod: str, namespace: str | None, container: str | None, follow: bool, tail: int) -> None:
    """Print a container's output."""
    from podnet.workloads.records import pod_dir

    p = _find_pod(ctx, pod, namespace)
    ns = p.namespace or "default"
    names = [c.name for c in p.spec.containers]
    cname = container or names[0]
    if cname not in names:
        raise PodnetError(f"container {cname} is not valid for pod {pod}", hint=f"choose one of: {' '.join(names)}")
    if not p.spec.node_name:
        raise PodnetError(f"pod {ns}/{pod} is not scheduled yet; it has no logs")
    path = os.path.join(pod_dir(_node_state_dir(ctx, p.spec.node_name), p.spec.node_name, ns, p.name), f"{cname}.log")
    if not os.path.exists(path):
        raise PodnetError(f"container {cname} in pod {ns}/{pod} has not started (phase {p.status.phase or 'Pending'})")
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines(keepends=True)
        click.echo("".join(lines[len(lines) - tail:] if 0 <= tail < len(lines) else lines), nl=False)
        while follow:
            chunk = f.read()
            if chunk:
                click.echo(chunk.decode(errors="replace"), nl=False)
            else:
                time.sleep(0.2)


@click.group("ipam")
def ipam() -> None:
    """IP address management (calicoctl ipam style)."""


@ipam.command("show")
@click.option("--show-blocks", is_flag=True, help="Also list every block with its node and usage.")
@click.pass_context
@user_errors
def ipam_show(ctx: click.Context, show_blocks: bool) -> None:
    """Pools (and blocks) with total, used and free addresses."""
    from podnet.ipam.allocator import IPAM
    from podnet.store.open import open_store

    store = open_store(state_dir(ctx), bootstrap=False, create=False)
    try:
        rows = IPAM(store.kv).usage()
    finally:
        store.close()
    if not rows:
        click.echo("No IP pools yet: the first pod creates default-ipv4-ippool (10.244.0.0/16, blockSize 26).")
        return
    click.echo(render_usage(rows, show_blocks), nl=False)


def _pct(n: int, total: int) -> str:
    return f"{n} ({round(100 * n / total) if total else 0}%)"


def render_usage(rows: Any, show_blocks: bool) -> str:
    """calicoctl's table: GROUPING, CIDR, (NODE), IPS TOTAL, IPS IN USE, IPS FREE."""
    from .output import boxed_table

    head = ["GROUPING", "CIDR"] + (["NODE"] if show_blocks else []) + ["IPS TOTAL", "IPS IN USE", "IPS FREE"]
    table = []
    for u in rows:
        table.append(["IP Pool" + (" (disabled)" if u.disabled else ""), u.cidr] + ([""] if show_blocks else [])
                     + [str(u.size), _pct(u.used, u.size), _pct(u.free, u.size)])
        if show_blocks:
            for b in u.blocks:
                table.append(["Block", b.cidr, b.node or "(none)", str(b.size), _pct(b.used, b.size),
                              _pct(b.free, b.size)])
    return boxed_table(head, table) + "\n"


@click.command("install-cni")
@click.option("--bin-dir", default="/opt/cni/bin", show_default=True)
@click.option("--conf-dir", default="/etc/cni/net.d", show_default=True)
@click.option("--node", default=None, help="This node's name (default: the host name).")
@click.option("--mtu", default=1500, show_default=True)
@click.option("--pod-cidr", default="10.244.0.0/16", show_default=True)
@click.option("--network", default="k8s-pod-network", show_default=True)
@click.pass_context
@user_errors
def install_cni(ctx: click.Context, bin_dir: str, conf_dir: str, node: str | None, mtu: int, pod_cidr: str,
                network: str) -> None:
    """Install the podnet-cni plugin and write its conflist."""
    from podnet.cni.install import install

    exe, conf = install(bin_dir, conf_dir, node=node or os.uname().nodename, state_dir=state_dir(ctx),
                        mtu=mtu, pod_cidr=pod_cidr, name=network)
    click.echo(f"installed {exe}\nwrote {conf}")
