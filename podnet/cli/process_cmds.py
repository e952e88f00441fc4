"""The long-running processes: ``podnet agent``, ``policy-loop``, ``routing-loop``, ``proxy`` (one each
per node, inside its namespace), ``controllers`` and ``apiserver`` (one per cluster), and
``supervise`` (which runs a node's processes as services). Each parses its flags into
its configuration and calls its composition root (``podnet.agent.node``, ``.control``) until
SIGTERM or SIGINT; ``podnet up`` starts them the same way."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import click

from podnet.agent.config import AgentConfig, ControllersConfig, PolicyLoopConfig, ProxyConfig, RoutingLoopConfig
from podnet.telemetry.serving import DEFAULT_HOST, PORTS

from .common import state_dir, user_errors

C = TypeVar("C")

node_option = click.option("--node", required=True, help="This node's name (the process runs inside its network namespace).")
host_network_option = click.option(
    "--host-network", is_flag=True,
    help="This machine is the node: change its own namespace (distributed mode, not the lab).")


def metrics_options(command: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--metrics-port`` and ``--metrics-host`` of a process (off unless a port is given)."""

    def add(fn: Callable[..., None]) -> Callable[..., None]:
        fn = click.option("--metrics-host", default=DEFAULT_HOST, show_default=True,
                          help="Address the metrics endpoint listens on.")(fn)
        return click.option("--metrics-port", default=0, show_default=True, type=click.IntRange(0, 65535),
                            help=f"Serve Prometheus metrics at /metrics on this port (podnet up uses "
                                 f"{PORTS[command]}); 0 serves none.")(fn)

    return add


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
@click.option("--sandbox/--no-sandbox", default=AgentConfig.sandbox, show_default=True,
              help="Run each container in its own sandbox (namespaces, capabilities, its own files).")
@click.option("--resolv-conf", default=AgentConfig.resolv_conf, show_default=True,
              help="The node's resolver configuration: dnsPolicy Default, and the search domains ClusterFirst adds.")
@click.option("--heartbeat", default=AgentConfig.heartbeat, show_default=True,
              help="Seconds between renewals of the node's lease (its liveness).")
@click.option("--fast-path", is_flag=True,
              help="Established pod TCP flows skip netfilter's forward path (eBPF at tc ingress; "
                   "see docs/enforcement.md). Not with --host-network.")
@metrics_options("agent")
@click.pass_context
@user_errors
def agent(ctx: click.Context, node: str, resync: float, keep_pods: bool, mtu: int, host_network: bool,
          backoff_base: float, sandbox: bool, resolv_conf: str, heartbeat: float, fast_path: bool, metrics_port: int,
          metrics_host: str) -> None:
    """Run the node agent: the CNI socket for podnet-cni and this node's pods."""
    from podnet.agent.node import run_node

    _serve(run_node, AgentConfig(node, os.path.abspath(state_dir(ctx)), resync, keep_pods, mtu, host_network,
                                 backoff_base, sandbox=sandbox, resolv_conf=resolv_conf, heartbeat=heartbeat,
                                 metrics_port=metrics_port, metrics_host=metrics_host, fast_path=fast_path))


@click.command("policy-loop")
@node_option
@click.option("--resync", default=PolicyLoopConfig.resync, show_default=True,
              help="Seconds between passes without changes (an idle pass reads the table back).")
@click.option("--netns", default=None, help="Program this namespace instead of the current one.")
@host_network_option
@click.option("--endpoint-to-host", type=click.Choice(["Drop", "Accept"]), default=PolicyLoopConfig.endpoint_to_host,
              show_default=True, help="A pod's new connection to its own node (Felix's DefaultEndpointToHostAction): "
                                      "Drop, or Accept after the pod's egress policy.")
@metrics_options("policy-loop")
@click.pass_context
@user_errors
def policy_loop(ctx: click.Context, node: str, resync: float, netns: str | None, host_network: bool,
                endpoint_to_host: str, metrics_port: int, metrics_host: str) -> None:
    """Run the node's policy loop: its `inet podnet` nft table follows the policies."""
    from podnet.agent.node import run_policy_loop

    _serve(run_policy_loop, PolicyLoopConfig(node, state_dir(ctx), resync, netns, host_network, endpoint_to_host,
                                             metrics_port=metrics_port, metrics_host=metrics_host))


@click.command("routing-loop")
@node_option
@click.option("--backend", type=click.Choice(["bgp", "vxlan", "host-gw"]), default=None,
              help="Routing backend (default: the one `podnet up` recorded).")
@click.option("--resync", default=RoutingLoopConfig.resync, show_default=True,
              help="Seconds between passes without changes (a pass repairs drift).")
@host_network_option
@click.option("--bird-supervised", is_flag=True,
              help="BIRD runs as its own service (systemd, podnet supervise): write and reload its "
                   "configuration, never start it.")
@metrics_options("routing-loop")
@click.pass_context
@user_errors
def routing_loop(ctx: click.Context, node: str, backend: str | None, resync: float, host_network: bool,
                 bird_supervised: bool, metrics_port: int, metrics_host: str) -> None:
    """Run the node's routing loop: routes, VXLAN, natOutgoing and BIRD follow the store."""
    from podnet.agent.node import run_routing_loop

    _serve(run_routing_loop, RoutingLoopConfig(node, state_dir(ctx), backend, resync, host_network, bird_supervised,
                                               metrics_port=metrics_port, metrics_host=metrics_host))


@click.command("proxy")
@node_option
@click.option("--resync", default=ProxyConfig.resync, show_default=True,
              help="Seconds between passes without changes (the table is read back every 30 s of them).")
@click.option("--netns", default=None, help="Program this namespace instead of the current one.")
@host_network_option
@metrics_options("proxy")
@click.pass_context
@user_errors
def proxy(ctx: click.Context, node: str, resync: float, netns: str | None, host_network: bool, metrics_port: int,
          metrics_host: str) -> None:
    """Run the node's service proxy: its `ip podnet-svc` nft table follows Services and EndpointSlices."""
    from podnet.agent.node import run_proxy

    _serve(run_proxy, ProxyConfig(node, state_dir(ctx), resync, netns, host_network, metrics_port=metrics_port,
                                     metrics_host=metrics_host))


@click.command("controllers")
@click.option("--resync", default=ControllersConfig.resync, show_default=True)
@click.option("--gc-grace", default=ControllersConfig.gc_grace, show_default=True,
              help="Seconds an IPAM leak must persist before it is freed.")
@click.option("--gc-interval", default=ControllersConfig.gc_interval, show_default=True,
              help="Seconds between IPAM leak scans.")
@click.option("--node-grace", default=ControllersConfig.node_grace, show_default=True,
              help="Seconds a node's lease may stand still before the node is marked NotReady (Unknown).")
@metrics_options("controllers")
@click.pass_context
@user_errors
def controllers(ctx: click.Context, resync: float, gc_grace: float, gc_interval: float, node_grace: float,
                metrics_port: int, metrics_host: str) -> None:
    """Run the control plane: Deployments → Pods, the scheduler, IPAM leak collection, node liveness."""
    from podnet.agent.control import run_controllers

    _serve(run_controllers, ControllersConfig(state_dir(ctx), resync, gc_grace, gc_interval, node_grace,
                                              metrics_port=metrics_port, metrics_host=metrics_host))


@click.command("apiserver")
@click.option("--advertise-address", required=True,
              help="The address pods reach this server on (the kubernetes Service's endpoint).")
@click.option("--bind-address", default="0.0.0.0", show_default=True, help="Where to listen.")
@click.option("--port", default=6443, show_default=True, help="The HTTPS port.")
@click.pass_context
@user_errors
def apiserver(ctx: click.Context, advertise_address: str, bind_address: str, port: int) -> None:
    """Run the read-only Kubernetes API server: lists and watches for pods, with RBAC."""
    from podnet.apiserver.main import ApiServerConfig, run_apiserver

    _serve(run_apiserver, ApiServerConfig(os.path.abspath(state_dir(ctx)), advertise_address, bind_address, port))


@click.command("supervise")
@click.option("--spec", "spec_path", required=True, help="The services to run (JSON, written by `podnet up`).")
@click.option("--run-dir", required=True, help="Where the notify sockets and supervisor.json go.")
@click.option("--log-dir", required=True, help="Where each service's output is appended.")
@click.option("--log-prefix", default="", help="Put in front of each service's log file name.")
@user_errors
def supervise(spec_path: str, run_dir: str, log_dir: str, log_prefix: str) -> None:
    """Run a node's services as systemd would: restart with back-off, watchdog, status file."""
    from podnet.cluster.supervisor import Supervisor, read_spec

    _serve(lambda _, stop: Supervisor(read_spec(spec_path), run_dir, log_dir, log_prefix, stop).run(), None)
