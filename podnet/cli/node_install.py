"""``podnet node install``: a thin shell over ``podnet.agent.install`` (docs/hosts.md)."""
from __future__ import annotations

import click

from .common import state_dir, user_errors


@click.command("install")
@click.option("--node", "node_name", default=None, help="This node's name (default: the host name).")
@click.option("--store", "store_url", required=True, metavar="ENDPOINTS",
              help="The etcd cluster: https://host:2379,https://host:2379 (or etcd://host:2379,… for plain http).")
@click.option("--etcd-ca", default=None, help="The CA bundle that signed the members' certificates (etcd_ca).")
@click.option("--etcd-cert", default=None, help="This node's client certificate (etcd_cert).")
@click.option("--etcd-key", default=None, help="This node's client key (etcd_key).")
@click.option("--address", default="", help="This node's address and prefix on the underlay, e.g. 192.168.10.72/24 "
                                             "(default: the source address of its default route).")
@click.option("--backend", type=click.Choice(["bgp", "vxlan", "host-gw"]), default="bgp", show_default=True,
              help="Routing backend, recorded by the first node installed (later ones use the recorded one).")
@click.option("--pod-cidr", default="10.244.0.0/16", show_default=True)
@click.option("--mtu", default=1500, show_default=True, help="Pod MTU written to the CNI conflist.")
@click.option("--cni-bin-dir", default="/opt/cni/bin", show_default=True)
@click.option("--cni-conf-dir", default="/etc/cni/net.d", show_default=True)
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True)
@click.option("--no-check", is_flag=True, help="Do not read the store first (write the files only).")
@click.pass_context
@user_errors
def install(ctx: click.Context, node_name: str | None, store_url: str, etcd_ca: str | None, etcd_cert: str | None,
            etcd_key: str | None, address: str, backend: str, pod_cidr: str, mtu: int, cni_bin_dir: str,
            cni_conf_dir: str, unit_dir: str, no_check: bool) -> None:
    """Make this machine a node: store configuration, its registration, the CNI plugin and
    systemd units for the agent, routing loop, policy loop and BIRD."""
    import os
    import socket

    from podnet.agent.install import install as do_install
    from podnet.agent.install import options

    opts = options(node_name or socket.gethostname(), store_url, etcd_ca, etcd_cert, etcd_key,
                   state_dir=os.path.abspath(state_dir(ctx)), address=address, backend=backend, pod_cidr=pod_cidr,
                   cni_bin_dir=cni_bin_dir, cni_conf_dir=cni_conf_dir, unit_dir=unit_dir, mtu=mtu)
    for line in do_install(opts, check=not no_check):
        click.echo(line)
    click.echo(f"next: systemctl daemon-reload && systemctl enable --now podnet-agent podnet-routing "
               f"podnet-policy podnet-flow-logger{' podnet-bird' if backend == 'bgp' else ''}; then `podnet node status`")
