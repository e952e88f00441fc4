"""The long-running processes: ``podnet agent``, ``policy-loop``, ``routing-loop`` (one each per
node, inside its namespace) and ``controllers`` (one per cluster). Each parses its flags into
its configuration and calls its composition root (``podnet.agent.node``, ``.control``) until
SIGTERM or SIGINT; ``podnet up`` starts them the same way."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import click

from podnet.agent.config import AgentConfig, ControllersConfig, PolicyLoopConfig, RoutingLoopConfig

from .common import state_dir, user_errors

C = TypeVar("C")

node_option = click.option("--node", required=True, help="This node's name (the process runs inside its network namespace).")
host_network_option = click.option(
    "--host-network", is_flag=True,
    help="This machine is the node: change its own namespace (distributed mode, not the lab).")


def _serve(run: Callable[[C, threading.Event], None], config: C) -> None:
    """One logging setup and one stop signal for every process, then its composition root."""
    from podnet.agent.runner import configure_logging, stop_on_signals

    configure_logging()
    run(config, stop_on_signals())


@click.command("agent")
@node_option
@click.option("--resync", default=AgentConfig.resync, show_default=True, help="Seconds between passes without changes.")
@click.option("--keep-pods", is_flag=True, help="Leave pods running when the agent stops.")
@click.option("--mtu", default=AgentConfig.mtu, help="Pod MTU (default: 1450 with VXLAN, else 1500).")
@host_network_option
@click.option("--backoff-base", default=AgentConfig.backoff_base, show_default=True,
              help="First container restart back-off in seconds (doubles up to 30 times this).")
@click.pass_context
@user_errors
def agent(ctx: click.Context, node: str, resync: float, keep_pods: bool, mtu: int, host_network: bool,
          backoff_base: float) -> None:
    """Run the node agent: the CNI socket for podnet-cni and this node's pods."""
    from podnet.agent.node import run_node

    _serve(run_node, AgentConfig(node, os.path.abspath(state_dir(ctx)), resync, keep_pods, mtu, host_network,
                                 backoff_base))


@click.command("policy-loop")
@node_option
@click.option("--resync", default=PolicyLoopConfig.resync, show_default=True,
              help="Seconds between passes without changes (an idle pass reads the table back).")
@click.option("--netns", default=None, help="Program this namespace instead of the current one.")
@host_network_option
@click.pass_context
@user_errors
def policy_loop(ctx: click.Context, node: str, resync: float, netns: str | None, host_network: bool) -> None:
    """Run the node's policy loop: its `inet podnet` nft table follows the policies."""
    from podnet.agent.node import run_policy_loop

    _serve(run_policy_loop, PolicyLoopConfig(node, state_dir(ctx), resync, netns, host_network))


@click.command("routing-loop")
@node_option
@click.option("--backend", type=click.Choice(["bgp", "vxlan", "host-gw"]), default=None,
              help="Routing backend (default: the one `podnet up` recorded).")
@click.option("--resync", default=RoutingLoopConfig.resync, show_default=True,
              help="Seconds between passes without changes (a pass repairs drift).")
@host_network_option
@click.pass_context
@user_errors
def routing_loop(ctx: click.Context, node: str, backend: str | None, resync: float, host_network: bool) -> None:
    """Run the node's routing loop: routes, VXLAN, natOutgoing and BIRD follow the store."""
    from podnet.agent.node import run_routing_loop

    _serve(run_routing_loop, RoutingLoopConfig(node, state_dir(ctx), backend, resync, host_network))


@click.command("controllers")
@click.option("--resync", default=ControllersConfig.resync, show_default=True)
@click.option("--gc-grace", default=ControllersConfig.gc_grace, show_default=True,
              help="Seconds an IPAM leak must persist before it is freed.")
@click.option("--gc-interval", default=ControllersConfig.gc_interval, show_default=True,
              help="Seconds between IPAM leak scans.")
@click.pass_context
@user_errors
def controllers(ctx: click.Context, resync: float, gc_grace: float, gc_interval: float) -> None:
    """Run the control plane: Deployments → Pods, the scheduler and IPAM leak collection."""
    from podnet.agent.control import run_controllers

    _serve(run_controllers, ControllersConfig(state_dir(ctx), resync, gc_grace, gc_interval))
