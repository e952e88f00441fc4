"""The composition root of a node: each of its processes built from its configuration.

Like calico-node, which runs confd, BIRD and Felix side by side, a node runs one process per
concern inside its network namespace, each on the loop runner:

- ``run_node``: the node agent: the CNI socket for podnet-cni, the node's pods and its Ready
  status (``podnet agent``);
- ``run_policy_loop``: the node's ``inet podnet`` table (``podnet policy-loop``);
- ``run_routing_loop``: routes, VXLAN, natOutgoing and BIRD (``podnet routing-loop``);
- ``run_proxy``: the node's ``ip podnet-svc`` service table (``podnet proxy``).

Each refuses to start in a namespace podnet did not create unless told the machine is the
node (``agent/guard.py``), runs until ``stop`` is set (the CLI sets it on SIGTERM), and serves
its Prometheus metrics while it runs when given a port (``podnet.telemetry``).
Each function imports what its process needs, so a process loads only its own code.
"""
from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING

from podnet.errors import PodnetError
from podnet.store.open import open_store
from podnet.telemetry.loops import LoopMetrics
from podnet.telemetry.serving import open_metrics

from .config import AgentConfig, PolicyLoopConfig, ProxyConfig, RoutingLoopConfig
from .guard import require_node_namespace
from .runner import LoopRunner, StoreChanges, Timing, loop_logger

if TYPE_CHECKING:
    from podnet.store.resources import ResourceStore, Snapshot

log = loop_logger("agent")


#: the cluster's network settings in the store, as Flannel keeps them in etcd
NETWORK_CONFIG_KEY = "/podnet/config/network"


def record_network_config(store: ResourceStore, backend: str, pod_cidr: str) -> None:
    """Write the routing backend and pod CIDR every node reads at start (``podnet up``)."""
    from podnet.store.api import Compare, Put

    want = {"backend": backend, "podCIDR": pod_cidr}
    current = store.kv.get(NETWORK_CONFIG_KEY)
    if current is None or current.value != want:
        store.kv.txn([Compare(NETWORK_CONFIG_KEY, current.mod_revision if current else 0)], [Put(NETWORK_CONFIG_KEY, want)])


def cluster_backend(state_dir: str, store: ResourceStore | None = None) -> str:
    """The routing backend of the cluster: from the store's network settings (a node on its
    own host has nothing else), else from the cluster record of ``podnet up``."""
    if store is not None:
        record = store.kv.get(NETWORK_CONFIG_KEY)
        if record is not None and record.value.get("backend"):
            return str(record.value["backend"])
    try:
        with open(os.path.join(state_dir, "cluster.json")) as f:
            return str(json.load(f)["backend"])
    except (OSError, ValueError, KeyError):
        raise PodnetError(f"no routing backend recorded for {state_dir}",
                          hint="start the cluster with `podnet up`, or pass --backend") from None


def node_pod_mtu(store: ResourceStore, state_dir: str, node: str, snapshot: Snapshot | None = None) -> int:
    """The routing plan's pod MTU in a cluster made by `podnet up`; elsewhere the pools'."""
    from podnet.model import IPPool
    from podnet.routing.mtu import pod_mtu

    from .routing import pod_mtu as planned_pod_mtu

    try:
        return planned_pod_mtu(snapshot or store.snapshot(), node, cluster_backend(state_dir, store))
    except Exception as exc:  # no cluster record, or a node the planner does not know yet
        log.info("pod MTU from pools, not the routing plan: %s", exc)
    return pod_mtu(None, [p for p in store.list(IPPool) if isinstance(p, IPPool)])


def run_node(config: AgentConfig, stop: threading.Event) -> None:
    """The node agent until ``stop``; then its pods are torn down (unless ``keep_pods``) and
    the node is marked NotReady."""
    from podnet.cni.handler import Handler
    from podnet.cni.install import install
    from podnet.cni.server import CniServer
    from podnet.telemetry.cni import CniMetrics
    from podnet.workloads.podbin import ensure_podbin

    from .cnicall import CniRuntime
    from .core import Agent
    from .fastpath import FastPathDevices
    from .node_status import NodeStatusReporter
    from .pods import PodRunner, podbin_dir

    require_node_namespace("agent", "links and routes (one veth and /32 route per pod)",
                           host_network=config.host_network)
    node, sd = config.node, os.path.abspath(config.state_dir)
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    store = open_store(sd, bootstrap=False)
    node_dir = os.path.join(sd, "nodes", node)
    bin_dir, conf_dir = os.path.join(node_dir, "cni", "bin"), os.path.join(node_dir, "cni", "net.d")
    # one full read of the store serves the MTU and the first pass (a restarted agent's
    # convergence waits for both; the next pass catches up with what changed in between)
    first = store.snapshot()
    _, conf_path = install(bin_dir, conf_dir, node=node, state_dir=sd,
                           mtu=config.mtu or node_pod_mtu(store, sd, node, first))
    with open(conf_path) as f:
        conflist = json.load(f)
    server = CniServer(conflist["plugins"][0]["agentSocket"], Handler(lambda conf: store.kv, node),
                       CniMetrics(metrics.telemetry)).start()
    runner = PodRunner(store, node, sd, CniRuntime(conflist, bin_dirs=(bin_dir,)), ensure_podbin(podbin_dir(sd)),
                       backoff_base=config.backoff_base, sandboxed=config.sandbox,
                       resolv_conf_path=config.resolv_conf)
    reporter = NodeStatusReporter(store, node, renew_interval=config.heartbeat)
    fast = FastPathDevices(host_network=config.host_network) if config.fast_path else None
    loop = Agent(store, node, [reporter, runner, *([fast] if fast else [])], resync=config.resync, stop=stop, telemetry=metrics.telemetry,
                 first_snapshot=first)
    runner.progress = reporter.alive_while(loop.runner.notify.watchdog)  # a pass starting many pods
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
        if fast:
            fast.close()
        reporter.mark_stopped()
        try:
            os.unlink(ready)
        except FileNotFoundError:
            pass
        store.close()
        metrics.close()


def run_policy_loop(config: PolicyLoopConfig, stop: threading.Event) -> None:
    """Enforce the policies in this node's (or ``netns``'s) nft table until ``stop``; the table
    stays when it stops."""
    from podnet.dataplane.nft.model import POLICY_TABLE
    from podnet.telemetry.dataplane import DataplaneMetrics

    from .policy import PolicyReconciler
    from .policy_loop import LOOP, PolicyPass
    from .policy_view import LiveView

    require_node_namespace("policy loop", "nftables rules", target=config.netns, host_network=config.host_network)
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    telemetry = metrics.telemetry
    store = open_store(config.state_dir, bootstrap=False)
    try:
        reconciler = PolicyReconciler(config.node, netns=config.netns, state_dir=config.state_dir,
                                      to_host=config.endpoint_to_host,
                                      metrics=DataplaneMetrics(telemetry, str(POLICY_TABLE)))
        if telemetry.enabled:
            from podnet.telemetry.policy_table import register_policy_table

            register_policy_table(telemetry, reconciler.applier.table, config.netns)
        run_pass = PolicyPass(reconciler, LiveView(store))
        LoopRunner(LOOP, run_pass, StoreChanges(store.kv), Timing(max_interval=config.resync), stop=stop,
                   metrics=LoopMetrics(telemetry, LOOP)).run()
    finally:
        store.close()
        metrics.close()


def run_routing_loop(config: RoutingLoopConfig, stop: threading.Event) -> None:
    """Reconcile this node's routing, in the namespace this process runs in, until ``stop``."""
    from .routing import RoutingReconciler
    from .routing_loop import LOOP, MIN_INTERVAL, ROUTING_KEYS, RoutingPass

    require_node_namespace("routing loop", "routes, VXLAN devices, NAT table and BGP daemon",
                           host_network=config.host_network)
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    telemetry = metrics.telemetry
    store = open_store(config.state_dir, bootstrap=False)
    try:
        backend = config.backend or cluster_backend(config.state_dir, store)
        reconciler = RoutingReconciler(config.node, backend, config.state_dir, supervised_bird=config.supervised_bird)
        if telemetry.enabled and backend == "bgp":
            from podnet.kernel.bird import peer_rows
            from podnet.telemetry.bgp import BgpCollector

            bird = reconciler.applier.bird
            telemetry.register(BgpCollector(lambda: peer_rows(bird.protocols())))
        run_pass = RoutingPass(store, reconciler, config.node, telemetry)
        timing = Timing(min_interval=MIN_INTERVAL, max_interval=config.resync)
        LoopRunner(LOOP, run_pass, StoreChanges(store.kv, ROUTING_KEYS), timing, stop=stop,
                   metrics=LoopMetrics(telemetry, LOOP)).run()
    finally:
        store.close()
        metrics.close()


def run_proxy(config: ProxyConfig, stop: threading.Event) -> None:
    """Program this node's (or ``netns``'s) service table until ``stop``; the table stays when
    it stops (fail static)."""
    from .policy_view import LiveView
    from .proxy import ProxyReconciler, ProxyView
    from .proxy_loop import LOOP, PROXY_KEYS, ProxyPass

    require_node_namespace("service proxy", "nftables rules", target=config.netns, host_network=config.host_network)
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    store = open_store(config.state_dir, bootstrap=False)
    reconciler = ProxyReconciler(config.node, netns=config.netns, state_dir=config.state_dir)
    try:
        run_pass = ProxyPass(reconciler, ProxyView(LiveView(store), config.node))
        LoopRunner(LOOP, run_pass, StoreChanges(store.kv, PROXY_KEYS), Timing(max_interval=config.resync),
                   stop=stop, metrics=LoopMetrics(metrics.telemetry, LOOP)).run()
    finally:
        reconciler.close()
        store.close()
        metrics.close()
