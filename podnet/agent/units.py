"""A node's processes as services: what runs, how it shows it is alive, and when it may start.

One list serves both ways a node is run: ``podnet node install`` writes it as systemd units
(``Restart=always``, ``Type=notify`` with ``WatchdogSec=`` for the loops), and the lab's
``podnet supervise`` runs it with the same restart and watchdog rules, since systemd is not
PID 1 there. BIRD is a service of its own, as in calico-node (confd writes its configuration,
runit runs it): the routing loop writes ``bird.conf`` and reloads it, and BIRD starts once that
file exists.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from podnet.kernel.bird import Bird
from podnet.telemetry.serving import metrics_args

WATCHDOG_SEC = 30.0  # a loop that sends no WATCHDOG=1 this long is hung (Felix's health timeout)
START_TIMEOUT_SEC = 120.0  # before READY=1 (its first pass) a loop is starting, not hung: systemd's TimeoutStartSec


@dataclass(frozen=True)
class Service:
    name: str  # "agent", "routing", "policy", "bird"
    description: str
    argv: tuple[str, ...]
    watchdog_sec: float = 0.0  # 0: the process does not speak the notify protocol
    requires_file: str | None = None  # start only once this file exists

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Service:
        return cls(name=d["name"], description=d["description"], argv=tuple(d["argv"]),
                   watchdog_sec=float(d.get("watchdog_sec", 0.0)), requires_file=d.get("requires_file"))


def podnet_argv(state_dir: str, python: str | None = None) -> list[str]:
    """How a service runs ``podnet``: this interpreter and this podnet, whatever PATH holds."""
    return [python or sys.executable, "-m", "podnet.cli.main", "--state-dir", os.path.abspath(state_dir)]


def node_services(node: str, state_dir: str, *, bgp: bool = True, host_network: bool = False,
                  watchdog_sec: float = WATCHDOG_SEC, python: str | None = None,
                  heartbeat: float | None = None, metrics: bool = False, flow_logs: bool = True,
                  fast_path: bool = False) -> list[Service]:
    """The agent, routing loop, policy loop, service proxy, flow logger (``flow_logs``) and (with
    BGP) BIRD of ``node``;
    ``metrics`` serves each podnet process's metrics on its port (``telemetry.serving.PORTS``);
    ``fast_path`` starts the agent with the eBPF fast path."""
    podnet = podnet_argv(state_dir, python)
    host = ["--host-network"] if host_network else []
    beat = [] if heartbeat is None else ["--heartbeat", f"{heartbeat:g}"]

    def port(command: str) -> list[str]:
        return metrics_args(command) if metrics else []

    services = [
        Service("agent", f"podnet node agent for {node}: CNI socket, pods, node status",
                (*podnet, "agent", "--node", node, *host, *beat, *(["--fast-path"] if fast_path else []),
                 *port("agent")), watchdog_sec),
        Service("routing", f"podnet routing loop for {node}: routes, VXLAN, natOutgoing, BIRD configuration",
                (*podnet, "routing-loop", "--node", node, "--bird-supervised", *host, *port("routing-loop")),
                watchdog_sec),
        Service("policy", f"podnet policy loop for {node}: the inet podnet nftables table",
                (*podnet, "policy-loop", "--node", node, *host, *port("policy-loop")), watchdog_sec),
        Service("proxy", f"podnet service proxy for {node}: the ip podnet-svc nftables table",
                (*podnet, "proxy", "--node", node, *host, *port("proxy")), watchdog_sec),
    ]
    if flow_logs:  # without it nothing binds the NFLOG group: the kernel drops the logs at once
        services.append(Service("flow-logger", f"podnet flow logger for {node}: policy decisions into its flow ring",
                                (*podnet, "flow-logger", "--node", node, *host, *port("flow-logger"))))
    if bgp:
        bird = Bird(os.path.join(os.path.abspath(state_dir), "nodes", node))
        services.append(Service("bird", f"BIRD, the BGP daemon of {node}", tuple(bird.foreground_argv()),
                                requires_file=bird.conf))
    return services
