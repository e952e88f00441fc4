"""The composition root of a node: each of its processes built from its configuration.

Like calico-node, which runs confd, BIRD and Felix side by side, a node runs one process per
concern inside its network namespace, each on the loop runner:

- ``run_node``: the node agent: the CNI socket for podnet-cni, the node's pods and its Ready
  status (``podnet agent``);
- ``run_policy_loop``: the node's ``inet podnet`` table (``podnet policy-loop``);
- ``run_routing_loop``: routes, VXLAN, natOutgoing and BIRD (``podnet routing-loop``).

Each refuses to start in a namespace podnet did not create unless told the machine is the
node (``agent/guard.py``), and runs until ``stop`` is set (the CLI sets it on SIGTERM).
Each function imports what its process needs, so a process loads only its own code.
"""
from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING

from podnet.errors import PodnetError
from podnet.store.open import open_store

from .config import AgentConfig, PolicyLoopConfig, RoutingLoopConfig
from .guard import require_node_namespace
from .runner import LoopRunner, StoreChanges, Timing, loop_logger

if TYPE_CHECKING:
    from podnet.store.resources import ResourceStore

log = loop_logger("agent")


def cluster_backend(state_dir: str) -> str:
    """The backend ``podnet up`` chose, from the cluster record."""
    try:
        with open(os.path.join(state_dir, "cluster.json")) as f:
            return str(json.load(f)["backend"])
    except (OSError, ValueError, KeyError):
        raise PodnetError(f"no cluster recorded in {state_dir}", hint="start the cluster with `podnet up`") from None


def node_pod_mtu(store: ResourceStore, state_dir: str, node: str) -> int:
    """The routing plan's pod MTU in a cluster made by `podnet up`; elsewhere the pools'."""
    from podnet.model import IPPool
    from podnet.routing.mtu import pod_mtu

    from .routing import pod_mtu as planned_pod_mtu

    try:
        return planned_pod_mtu(store.snapshot(), node, cluster_backend(state_dir))
    except Exception as exc:  # no cluster record, or a node the planner does not know yet
        log.info("pod MTU from pools, not the routing plan: %s", exc)
    return pod_mtu(None, [p for p in store.list(IPPool) if isinstance(p, IPPool)])


def run_node(config: AgentConfig, stop: threading.Event) -> None:
    """The node agent until ``stop``; then its pods are torn down (unless ``keep_pods``) and
    the node is marked NotReady."""
    from podnet.cni.handler import Handler
    from podnet.cni.install import install
    from podnet.cni.server import CniServer
    from podnet.workloads.podbin import ensure_podbin

    from .cnicall import CniRuntime
    from .core import Agent
    from .node_status import NodeStatusReporter
    from .pods import PodRunner, podbin_dir

    require_node_namespace("agent", "links and routes (one veth and /32 route per pod)",
                           host_network=config.host_network)
    node, sd = config.node, os.path.abspath(config.state_dir)
    store = open_store(sd, bootstrap=False)
    node_dir = os.path.join(sd, "nodes", node)
    bin_dir, conf_dir = os.path.join(node_dir, "cni", "bin"), os.path.join(node_dir, "cni", "net.d")
    _, conf_path = install(bin_dir, conf_dir, node=node, state_dir=sd, mtu=config.mtu or node_pod_mtu(store, sd, node))
    with open(conf_path) as f:
        conflist = json.load(f)
    server = CniServer(conflist["plugins"][0]["agentSocket"], Handler(lambda conf: store.kv, node)).start()
    runner = PodRunner(store, node, sd, CniRuntime(conflist, bin_dirs=(bin_dir,)), ensure_podbin(podbin_dir(sd)),
                       backoff_base=config.backoff_base)
    reporter = NodeStatusReporter(store, node)
    loop = Agent(store, node, [reporter, runner], resync=config.resync, stop=stop)
    ready = os.path.join(node_dir, "agent.ready")
    with open(ready, "w") as f:
        f.write(str(os.getpid()))
    log.info("agent for node %s running", node)
    try:
        loop.run()
    finally:
        if not config.keep_pods:
            runner.teardown_all()
        server.close()
        reporter.mark_stopped()
        try:
            os.unlink(ready)
        except FileNotFoundError:
            pass
        store.close()


def run_policy_loop(config: PolicyLoopConfig, stop: threading.Event) -> None:
    """Enforce the policies in this node's (or ``netns``'s) nft table until ``stop``; the table
    stays when it stops."""
    from .policy import PolicyReconciler
    from .policy_loop import LOOP, PolicyPass
    from .policy_view import LiveView

    require_node_namespace("policy loop", "nftables rules", target=config.netns, host_network=config.host_network)
    store = open_store(config.state_dir, bootstrap=False)
    try:
        reconciler = PolicyReconciler(config.node, netns=config.netns, state_dir=config.state_dir)
        run_pass = PolicyPass(reconciler, LiveView(store))
        LoopRunner(LOOP, run_pass, StoreChanges(store.kv), Timing(max_interval=config.resync), stop=stop).run()
    finally:
        store.close()


def run_routing_loop(config: RoutingLoopConfig, stop: threading.Event) -> None:
    """Reconcile this node's routing, in the namespace this process runs in, until ``stop``."""
    from .routing import RoutingReconciler
    from .routing_loop import LOOP, MIN_INTERVAL, ROUTING_KEYS, RoutingPass

    require_node_namespace("routing loop", "routes, VXLAN devices, NAT table and BGP daemon",
                           host_network=config.host_network)
    store = open_store(config.state_dir, bootstrap=False)
    try:
        backend = config.backend or cluster_backend(config.state_dir)
        run_pass = RoutingPass(store, RoutingReconciler(config.node, backend, config.state_dir), config.node)
        timing = Timing(min_interval=MIN_INTERVAL, max_interval=config.resync)
        LoopRunner(LOOP, run_pass, StoreChanges(store.kv, ROUTING_KEYS), timing, stop=stop).run()
    finally:
        store.close()
