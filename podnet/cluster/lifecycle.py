"""``podnet up`` / ``down`` / ``status`` as library calls (the CLI only formats).

up: topology -> Node and Calico Node resources with underlay addresses, the IP pool, one IPAM
tunnel address (and so one block) per node -> per-node processes inside the node namespaces
-> wait until every node reports its routing. Any failure takes down what was made.
down: stop recorded PIDs, stop BIRD, remove recorded namespaces and files podnet created."""
from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

from podnet.agent.registration import block_size, default_pool
from podnet.agent.routing import read_status
from podnet.agent.units import node_services
from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.kernel.bird import Bird, peer_rows
from podnet.model import CalicoNode, IPPool, Node, Resource, Service
from podnet.routing import BACKENDS
from podnet.services.allocation import CLUSTER_IPS, CONFIG_KEY, DEFAULT_SERVICE_CIDR
from podnet.services.cluster import kubernetes_service, service_config
from podnet.telemetry.serving import metrics_args

from . import builder, bytecode, datastore, ingress_addon, processes, supervisor, tor
from .lab import node_resources
from .topology import Topology, plan_topology

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


CONTROL_PLANE = "control-plane"  # the controllers' own state directory with etcd
LAB_WATCHDOG = 10.0  # seconds without WATCHDOG=1 before the lab's supervisor restarts a loop
LAB_HEARTBEAT = 2.0  # the lab's lease renewal and grace: kubelet's 10 s and 40 s, shortened
LAB_NODE_GRACE = 8.0


def run_dir(state_dir: str, node: str) -> str:
    return os.path.join(datastore.node_state_dir(state_dir, node), "nodes", node)


def up(state_dir: str, nodes: int = 3, underlay: str = "l2", backend: str = "bgp",
       pod_cidr: str = "10.244.0.0/16", vxlan_mode: str = "Never", prefix: str = "", externals: int = 1,
       progress: Progress = _noop, timeout: float = 30.0,
       service_cidr: str = DEFAULT_SERVICE_CIDR, cluster_dns: str | None = None,
       store: str = "sqlite", monitoring: float = 0.0, router_bgp: bool = False,
       dns_addon: bool = True, ingress: bool = False, fast_path: bool = False) -> dict[str, Any]:
    """Build and start a cluster: per node a routing loop, a node agent, a policy loop and a
    service proxy, and one control plane, each serving its metrics; ``store`` etcd puts the
    state in a 3-member etcd cluster on the underlay; ``monitoring`` > 0 also starts Prometheus
    scraping them at that interval (seconds); ``router_bgp`` makes the lab router a BGP speaker
    every node peers with (``cluster/tor.py``); ``dns_addon`` installs the cluster DNS
(``cluster/dns_addon.py``) with the external host's resolver as its upstream; ``ingress``
the ingress-nginx controller (``cluster/ingress_addon.py``); ``fast_path`` starts every agent
with the eBPF fast path (``agent/fastpath.py``)."""
    if backend not in BACKENDS:
        raise PodnetError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(sorted(BACKENDS))}")
    if store not in datastore.STORES:
        raise PodnetError(f"unknown store {store!r}", hint=f"choose one of: {', '.join(datastore.STORES)}")
    if router_bgp and backend != "bgp":
        raise PodnetError(f"--router-bgp needs the bgp backend, not {backend}",
                          hint="use --backend bgp (host-gw and VXLAN announce nothing over BGP)")
    topo = plan_topology(nodes, underlay, prefix, externals)
    pool = _pool(pod_cidr, backend, vxlan_mode)
    services = service_config(service_cidr, pod_cidr)
    dns = cluster_dns_config(cluster_dns, services["serviceCIDR"])
    preexisting = sorted(os.listdir(state_dir)) if os.path.isdir(state_dir) else []
    t0 = time.monotonic()
    progress(f"underlay {underlay}: {len(topo.namespaces())} namespaces")
    # The links' carrier (up to a second of the kernel's link watch) is waited for after the
    # node processes are started, which take longer than that to import and make their first
    # pass; etcd members talk over the underlay as soon as they start, so they wait first.
    builder.build(topo, state_dir, {"kind": "cluster", "backend": backend, "pod_cidr": pod_cidr,
                                    "vxlan_mode": vxlan_mode, "preexisting": preexisting,
                                    "started": time.time(), "store": {"kind": store},
                                    "fast_path": fast_path},
                  wait_carrier=store == "etcd")
    try:
        if store == "etcd":
            progress("etcd: 3 members with TLS client auth on the underlay")
            cluster = datastore.build_etcd(state_dir, topo)
            for name in [n.name for n in topo.nodes] + [CONTROL_PLANE]:
                datastore.prepare_host(state_dir, cluster, name)
        progress("registering nodes and the IP pool")
        _register(state_dir, topo, pool, services, backend)
        _register_control_plane(state_dir, dns)
        if dns_addon:
            progress("cluster DNS: coredns in kube-system, kube-dns at " + dns["clusterDNS"][0])
            _install_dns(state_dir, topo, dns["clusterDNS"][0])
        if ingress:
            progress("ingress-nginx: the controller behind NodePorts 30380/30443")
            _apply_objects(state_dir, ingress_addon.ingress_objects())
        if router_bgp:
            progress("the lab router peers with every node over BGP")
            _start_router_bgp(state_dir, topo)
        if backend == "bgp":
            _write_bird_configs(state_dir, topo)
        progress("starting node processes")
        bytecode.compile_podnet()  # once here, not in each of the processes below
        _start_processes(state_dir, topo)
        builder.wait_for_carrier(topo)
        progress("waiting for nodes to report ready")
        wait_ready(state_dir, topo, backend, timeout)
        if monitoring:
            progress("starting Prometheus")
            _start_monitoring(state_dir, topo, monitoring)
    except BaseException:
        down(state_dir, keep_logs=True)  # the error's hint points at them
        raise
    return {"nodes": [n.name for n in topo.nodes], "seconds": time.monotonic() - t0, "backend": backend,
            "monitoring": (builder.read_state(state_dir) or {}).get("monitoring")}


def _pool(cidr: str, backend: str, vxlan_mode: str) -> IPPool:
    return default_pool(cidr, block_size(backend), vxlan_mode)

def _register(state_dir: str, topo: Topology, pool: IPPool, services: dict[str, Any], backend: str) -> None:
    from podnet.agent.node import record_network_config
    from podnet.ipam.allocator import IPAM
    from podnet.store.open import open_store

    store = open_store(state_dir)
    try:
        record_network_config(store, backend, pool.spec.cidr)
        register_services(store, services)
        objs: list[Resource] = node_resources(topo)
        if not any(isinstance(p, IPPool) and p.spec.allows("Workload") for p in store.list(IPPool)):
            objs.append(pool)
        store.apply(objs)
        for obj in objs:  # apply keeps status out (a subresource): the addresses go in here
            if isinstance(obj, Node):
                store.update_status(obj)
        ipam = IPAM(store.kv)
        for n in topo.nodes:
            # Like Calico's tunnel address: it also gives every node its first block up front.
            tunnel = ipam.assign(f"podnet-tunnel.{n.name}", n.name, {"node": n.name, "type": "tunnel"})
            cur = store.get(CalicoNode, n.name)
            assert cur is not None
            data = cur.to_dict()
            data["spec"]["ipv4VXLANTunnelAddr"] = tunnel.ip
            store.update(CalicoNode.model_validate(data), check_version=False)
    finally:
        store.close()


def cluster_dns_config(cluster_dns: str | None, service_cidr: str) -> dict[str, Any]:
    """The kubelets' --cluster-dns/--cluster-domain: by default the service CIDR's tenth address."""
    import ipaddress

    from podnet.services.allocation import DNS_OFFSET, service_network

    ip = cluster_dns or str(service_network(service_cidr).network_address + DNS_OFFSET)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise PodnetError(f"--cluster-dns {ip!r} is not an IP address", hint="e.g. --cluster-dns 10.96.0.10") from None
    return {"clusterDNS": [ip], "clusterDomain": "cluster.local"}


def _register_control_plane(state_dir: str, dns: dict[str, Any]) -> None:
    """The cluster CA and token key (made once: pods keep their tokens across restarts) and
    the cluster DNS the nodes write into resolv.conf."""
    from podnet.pki import CLUSTER_CA_KEY, new_cluster_ca
    from podnet.store.open import open_store
    from podnet.workloads.podfiles import DNS_CONFIG_KEY

    store = open_store(state_dir)
    try:
        if store.kv.get(CLUSTER_CA_KEY) is None:
            store.kv.create(CLUSTER_CA_KEY, new_cluster_ca().to_dict())
        current = store.kv.get(DNS_CONFIG_KEY)
        if current is None:
            store.kv.create(DNS_CONFIG_KEY, dns)
        elif current.value != dns:
            store.kv.update(DNS_CONFIG_KEY, dns)
    finally:
        store.close()


def register_services(store: Any, config: dict[str, Any]) -> None:
    """Record the service CIDR (refused if Services already hold addresses of another one) and
    create the ``kubernetes`` Service on its first address."""
    from podnet.store.api import Compare, Put

    current = store.kv.get(CONFIG_KEY)
    if current is None or current.value != config:
        taken, _ = store.kv.list(CLUSTER_IPS)
        if taken and current is not None:
            raise PodnetError(f"this store's Services have addresses in {current.value.get('serviceCIDR')}; "
                              f"cannot change the service CIDR to {config['serviceCIDR']}",
                              hint="keep the service CIDR, or start over with a new --state-dir")
        store.kv.txn([Compare(CONFIG_KEY, current.mod_revision if current else 0)], [Put(CONFIG_KEY, config)])
    if store.get(Service, "kubernetes", "default") is None:
        store.apply([kubernetes_service(config["serviceCIDR"])])


def _record_process(state_dir: str, rec: processes.ProcessRecord) -> None:
    state = builder.read_state(state_dir) or {}
    state.setdefault("processes", []).append(rec.to_dict())
    builder.write_state(state_dir, state)


def _apply_objects(state_dir: str, objs: list[Resource]) -> None:
    from podnet.store.open import open_store

    store = open_store(state_dir)
    try:
        store.apply(objs)
    finally:
        store.close()


def _install_dns(state_dir: str, topo: Topology, cluster_dns: str) -> None:
    from podnet.store.open import open_store

    from . import dns_addon, external_dns

    upstreams = []
    if topo.externals:
        _record_process(state_dir, external_dns.start(state_dir, topo.externals[0]))
        upstreams.append(topo.externals[0].address)
    store = open_store(state_dir)
    try:
        store.apply(dns_addon.dns_objects(cluster_dns, upstreams))
    finally:
        store.close()


def _start_router_bgp(state_dir: str, topo: Topology) -> None:
    from podnet.store.open import open_store

    store = open_store(state_dir)
    try:
        store.apply(list(tor.peer_resources(topo)))
    finally:
        store.close()
    record = tor.start(state_dir, topo)
    state = builder.read_state(state_dir) or {}
    state["router_bgp"] = record
    builder.write_state(state_dir, state)


def _start_monitoring(state_dir: str, topo: Topology, interval: float) -> None:
    from . import monitoring

    record = monitoring.start(state_dir, topo, interval)
    state = builder.read_state(state_dir) or {}
    state.setdefault("processes", []).append(record["process"])
    state["monitoring"] = record
    builder.write_state(state_dir, state)


def _write_bird_configs(state_dir: str, topo: Topology) -> None:
    """Each node's BIRD configuration, as its routing loop's first pass will render it, written
    before the node processes start: each node's supervisor starts BIRD as soon as the file is
    there, so the BGP sessions come up while the Python processes are still importing, instead
    of a second after the routing loops' first passes. A loop that renders something else
    reconfigures BIRD, as on any change."""
    from podnet.agent.routing import facts_from_snapshot
    from podnet.dataplane.bird_config import render_bird_config
    from podnet.kernel.routes import kernel_has_ipip
    from podnet.routing.registry import plan_node
    from podnet.store.open import open_store

    store = open_store(state_dir)
    try:
        facts = facts_from_snapshot(store.snapshot(), ipip_supported=kernel_has_ipip())
    finally:
        store.close()
    for n in topo.nodes:
        plan = plan_node(facts, n.name, "bgp")
        if plan.bgp is None:
            continue
        bird = Bird(run_dir(state_dir, n.name))
        bird.write_config(render_bird_config(plan.bgp, n.name, bird.log))


def _start_processes(state_dir: str, topo: Topology) -> None:
    """Every process through the ``podnet`` command, as on a real node (where each would be a
    service), so the lab runs exactly what a user would."""
    state = builder.read_state(state_dir)
    logs = os.path.join(state_dir, "logs")

    def start(name: str, sd: str, args: list[str], log: str, ns: str | None = None) -> None:
        argv = [sys.executable, "-m", "podnet.cli.main", "--state-dir", sd, *args]
        _record_process(state_dir, processes.start(name, argv, os.path.join(logs, log), ns))

    for n in topo.nodes:
        sd = datastore.node_state_dir(state_dir, n.name, state)
        rd = run_dir(state_dir, n.name)
        os.makedirs(rd, exist_ok=True)
        spec = os.path.join(rd, "services.json")
        supervisor.write_spec(spec, node_services(n.name, sd, bgp=(state or {}).get("backend") == "bgp",
                                                  watchdog_sec=LAB_WATCHDOG, heartbeat=LAB_HEARTBEAT, metrics=True,
                                                  fast_path=bool((state or {}).get("fast_path"))))
        start(f"supervisor/{n.name}", sd, ["supervise", "--spec", spec, "--run-dir", rd, "--log-dir", logs,
                                           "--log-prefix", f"{n.name}-"], f"{n.name}-supervisor.log", n.netns)
    control = ["controllers", "--node-grace", f"{LAB_NODE_GRACE:g}", *metrics_args("controllers")]
    # On the first node, as a control plane node (its metrics are reachable from the lab), and
    # with etcd through the underlay like the others.
    start("controllers", datastore.node_state_dir(state_dir, CONTROL_PLANE, state), control,
          "controllers.log", topo.nodes[0].netns)
    first = topo.nodes[0]  # the control plane's API server runs on the first node, as kubeadm's would
    start("apiserver", datastore.node_state_dir(state_dir, CONTROL_PLANE, state),
          ["apiserver", "--advertise-address", first.address], "apiserver.log", first.netns)


def wait_ready(state_dir: str, topo: Topology, backend: str, timeout: float) -> None:
    """Every node's routing loop has reported, and (bgp) every BGP session is Established."""
    state = builder.read_state(state_dir) or {}
    started = state.get("started", 0)
    deadline = time.monotonic() + timeout
    pending = [n.name for n in topo.nodes]
    while True:
        procs = [processes.ProcessRecord.from_dict(p) for p in state.get("processes", [])]
        dead = [p.name for p in procs if not processes.alive(p)]
        if dead:
            logs = ", ".join(p.log for p in procs if p.name in dead)
            raise PodnetError(f"{', '.join(dead)} exited during start-up", hint=f"see {logs}")
        agents = {p.name.split("/")[1] for p in procs if p.name.startswith("supervisor/")}
        pending = [n for n in pending if not _node_ready(state_dir, n, backend, started, n in agents)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise PodnetError(f"nodes not ready after {timeout:.0f} s: {', '.join(pending)}",
                              hint=f"see {os.path.join(state_dir, 'logs')}")
        time.sleep(0.05)


def _node_ready(state_dir: str, node: str, backend: str, started: float, agent: bool) -> bool:
    if agent and not os.path.exists(os.path.join(run_dir(state_dir, node), "agent.ready")):
        return False
    st = read_status(run_dir(state_dir, node))
    if st is None or st.get("time", 0) < started:
        return False
    if backend == "bgp":
        try:
            rows = peer_rows(Bird(run_dir(state_dir, node)).protocols())
        except PodnetError:
            return False
        return all(r.info == "Established" for r in rows)
    return True


def down(state_dir: str, progress: Progress = _noop, keep_logs: bool = False) -> list[str]:
    """Remove the recorded cluster; returns what was removed. Idempotent."""
    state = builder.read_state(state_dir)
    if state is None:
        return []
    done: list[str] = []
    recs = [processes.ProcessRecord.from_dict(p) for p in state.get("processes", [])]
    progress(f"stopping {len(recs)} processes")
    done += [f"process {r.name} ({r.pid})" for r in processes.stop_all(recs)]
    topo = Topology.from_dict(state["topology"])
    for n in topo.nodes:
        done += [f"pod {p}" for p in _stop_leftover_pods(datastore.node_state_dir(state_dir, n.name, state), n.name)]
        if Bird(run_dir(state_dir, n.name)).stop():
            done.append(f"bird on {n.name}")
    done += datastore.stop_etcd(state)
    done += tor.stop(state.get("router_bgp"))
    progress(f"removing {len(state.get('netns', []))} namespaces")
    done += [f"netns {n}" for n in builder.destroy(state_dir)]
    for sub in ("nodes",) if keep_logs else ("nodes", "logs"):
        shutil.rmtree(os.path.join(state_dir, sub), ignore_errors=True)
    if "preexisting" in state:  # whatever the cluster's processes added to the state directory
        keep = set(state["preexisting"])
        for entry in os.listdir(state_dir):
            if entry not in keep:
                path = os.path.join(state_dir, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
    return done


def _stop_leftover_pods(state_dir: str, node: str) -> list[str]:
    """The pods a node agent recorded and did not tear down (it died, or was killed after
    its stop grace): their recorded processes are stopped and their namespaces removed, if
    still the pod's own, before ``down`` drops the records. CNI DEL is not needed: the node
    namespace holding the host ends and the store holding the addresses go next."""
    from podnet.workloads.records import load_pods, sandbox_owner, stop_recorded

    pods = load_pods(state_dir, node)
    stop_recorded(pods)
    removed = []
    for lp in pods:
        if lp.netns and netns.owner(lp.netns) == sandbox_owner(lp.sandbox) and netns.remove(lp.netns):
            removed.append(f"{lp.namespace}/{lp.name}")
        elif lp.netns and netns.remove_stale(lp.netns):  # its start was killed before the mount
            removed.append(f"{lp.namespace}/{lp.name}")
    return removed


def status(state_dir: str) -> dict[str, Any]:
    """The cluster record plus, per node, its processes, last routing report and health."""
    state = builder.read_state(state_dir)
    if state is None:
        raise PodnetError(f"no cluster recorded in {state_dir}", hint="start one with `podnet up`")
    topo = Topology.from_dict(state["topology"])
    procs = [processes.ProcessRecord.from_dict(p) for p in state.get("processes", [])]
    rows = []
    for n in topo.nodes:
        mine = [p for p in procs if p.name.endswith("/" + n.name)]
        services = (supervisor.read_status(run_dir(state_dir, n.name)) or {}).get("services", {})
        st = read_status(run_dir(state_dir, n.name)) or {}
        bgp = None
        if state.get("backend") == "bgp":
            try:
                peers = peer_rows(Bird(run_dir(state_dir, n.name)).protocols())
                bgp = (sum(1 for p in peers if p.info == "Established"), len(peers))
            except PodnetError:
                bgp = None
        row = {"bgp": bgp, "name": n.name, "netns": n.netns, "address": n.address, "segment": n.segment,
               "processes": {**{p.name.split("/")[0]: (p.pid, processes.alive(p)) for p in mine},
                             **{name: (s["pid"], bool(s["running"])) for name, s in services.items()}},
               "restarts": {name: (s["restarts"], s["last_exit"], s["last_exit_time"])
                            for name, s in services.items() if s["restarts"]},
               "routes": len(st.get("routes", [])), "refusals": st.get("refusals", []),
               "errors": st.get("errors", []) + st.get("problems", []), "reported": st.get("time")}
        rows.append({**row, "health": node_health(row, state.get("backend") == "bgp")})
    others = [(p.name, p.pid, processes.alive(p)) for p in procs if "/" not in p.name]
    return {"backend": state.get("backend"), "underlay": topo.underlay, "pod_cidr": state.get("pod_cidr"),
            "nodes": rows, "processes": others, "externals": [(e.name, e.address) for e in topo.externals],
            "topology": topo, "monitoring": state.get("monitoring")}


def node_health(row: dict[str, Any], bgp: bool) -> str:
    """A node of ``status`` as kubectl shows one: Ready when all its processes run and its
    routing reports no error (and, with BGP, every session is Established), with the blocks it
    cannot reach noted."""
    health = "Ready" if all(ok for _, ok in row["processes"].values()) and not row["errors"] else "NotReady"
    if row["refusals"]:
        health += f" ({len(row['refusals'])} unreachable blocks)"
    if bgp and (not row["bgp"] or row["bgp"][0] < row["bgp"][1]):
        health = "NotReady"
    return health


def node_netns(state_dir: str, node: str) -> str:
    state = builder.read_state(state_dir)
    if state is None:
        raise PodnetError(f"no cluster recorded in {state_dir}", hint="start one with `podnet up`")
    return Topology.from_dict(state["topology"]).node(node).netns


__all__ = ["down", "node_health", "node_netns", "status", "up", "wait_ready"]
