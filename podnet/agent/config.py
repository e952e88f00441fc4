"""What each long-running process is started with, as typed values with their defaults.

The ``podnet`` commands parse their flags into these; ``agent/node.py`` and
``agent/control.py`` build the processes from them. This module imports nothing heavy, so the
CLI can show the defaults without loading the processes' code.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentConfig:
    """The node agent: the CNI socket, this node's pods and its Ready status."""

    node: str
    state_dir: str
    resync: float = 1.0
    keep_pods: bool = False  # leave the pods running when the agent stops
    mtu: int = 0  # 0: the routing plan's pod MTU
    host_network: bool = False  # the machine itself is the node (see agent/guard.py)
    backoff_base: float = 10.0  # the first container restart back-off (the kubelet's 10 s)
    sandbox: bool = True  # each container in its own sandbox (workloads/sandbox.py)
    resolv_conf: str = "/etc/resolv.conf"  # the node's resolver configuration (the kubelet's --resolv-conf)
    heartbeat: float = 10.0  # seconds between renewals of the node's lease (kubelet's 10 s)
    metrics_port: int = 0  # 0: serve no metrics (see podnet.telemetry.serving.PORTS)
    metrics_host: str = "0.0.0.0"
    fast_path: bool = False  # the eBPF fast path for established TCP (agent/fastpath.py)


@dataclass(frozen=True)
class PolicyLoopConfig:
    """The policy loop: this node's ``inet podnet`` table."""

    node: str
    state_dir: str
    resync: float = 2.0
    netns: str | None = None  # program this namespace instead of the current one
    host_network: bool = False
    endpoint_to_host: str = "Drop"  # what a pod's new connection to its own node gets (Felix's)
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"


@dataclass(frozen=True)
class RoutingLoopConfig:
    """The routing loop: routes, VXLAN, natOutgoing and BIRD of this node."""

    node: str
    state_dir: str
    backend: str | None = None  # None: the one `podnet up` recorded
    resync: float = 5.0
    host_network: bool = False
    supervised_bird: bool = False  # BIRD is its own service: configure it, never start it
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"


@dataclass(frozen=True)
class ProxyConfig:
    """The service proxy: this node's ``ip podnet-svc`` table and health-check ports."""

    node: str
    state_dir: str
    resync: float = 5.0
    netns: str | None = None  # program this namespace instead of the current one
    host_network: bool = False
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"


@dataclass(frozen=True)
class ControllersConfig:
    """The control plane: Deployments → Pods, the scheduler, IPAM leak collection."""

    state_dir: str
    resync: float = 1.0
    gc_grace: float = 60.0  # seconds an IPAM leak must persist before it is freed
    gc_interval: float = 10.0  # seconds between IPAM leak scans
    node_grace: float = 40.0  # seconds a node's lease may stand still before it is NotReady
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
