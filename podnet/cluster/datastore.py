"""Where a lab cluster keeps its state: the embedded store in the state directory, or
(``podnet up --store etcd``) a three-member etcd cluster on the underlay, exactly as on
separate hosts.

With etcd every node gets a state directory of its own (``/run/podnet/hosts/<prefix>/<node>``:
short, because a node's sockets — CNI, BIRD's control socket — live in it and a unix socket
path has at most 107 bytes) with its own copy of the client certificate and a ``store.json`` naming the members' underlay
addresses; its processes share nothing with the other nodes through the filesystem. The
members run in namespaces of their own on the first segment (``<prefix>etcd1..3`` at
192.168.10.11–13). The state directory itself gets a ``store.json`` naming the members' unix
sockets, which is how the CLI on this machine reaches them.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
from typing import Any

from podnet.kernel import netns, underlay
from podnet.store.config import StoreConfig, TlsFiles, save

from . import builder
from .etcd import EtcdCluster, Member, memory_data_root
from .topology import Topology

STORES = ("sqlite", "etcd")
MEMBERS = 3
FIRST_MEMBER_HOST = 11  # 192.168.10.11, .12, .13
HOSTS_ROOT = "/run/podnet/hosts"


def is_etcd(state: dict[str, Any] | None) -> bool:
    return bool(state and state.get("store", {}).get("kind") == "etcd")


def node_state_dir(state_dir: str, node: str, state: dict[str, Any] | None = None) -> str:
    """The state directory a node's processes use: its own with etcd, else the cluster's."""
    if state is None:
        state = builder.read_state(state_dir)
    if not is_etcd(state):
        return state_dir
    assert state is not None
    return os.path.join(state["store"]["hosts"], node)


def hosts_dir(topo: Topology) -> str:
    """Where the nodes' own state directories go (removed by ``down``)."""
    return os.path.join(HOSTS_ROOT, topo.prefix or "podnet-")


def etcd_cluster(state: dict[str, Any]) -> EtcdCluster | None:
    return EtcdCluster.from_dict(state["store"]["etcd"]) if is_etcd(state) else None


def plan_members(topo: Topology, state_dir: str) -> EtcdCluster:
    seg = topo.segments[0]
    infra = topo.prefix or "podnet-"
    base = ipaddress.ip_network(seg.cidr).network_address
    members = [Member(f"etcd{i + 1}", str(base + FIRST_MEMBER_HOST + i), netns=f"{infra}etcd{i + 1}")
               for i in range(MEMBERS)]
    return EtcdCluster(os.path.join(state_dir, "etcd"), members, data_root=memory_data_root())


def build_etcd(state_dir: str, topo: Topology) -> EtcdCluster:
    """The members' namespaces wired to the first segment, their certificates, the members
    started and healthy, and the state directory pointed at them. Recorded before anything is
    made, so ``down`` removes it all after a failure half-way."""
    cluster = plan_members(topo, state_dir)
    state = builder.read_state(state_dir) or {}
    state["store"] = {"kind": "etcd", "etcd": cluster.to_dict(), "hosts": hosts_dir(topo)}
    builder.write_state(state_dir, state)
    seg = topo.segments[0]
    plen = seg.cidr.split("/")[1]
    for i, m in enumerate(cluster.members):
        assert m.netns is not None
        builder.record_extra_netns(state_dir, m.netns)
        netns.create(m.netns)
        underlay.wire(m.netns, "eth0", seg.netns, f"e{i}", a_addr=f"{m.address}/{plen}", b_master=seg.bridge)
        underlay.add_route(m.netns, "0.0.0.0/0", gateway=seg.gateway)
    underlay.wait_carrier([m.netns for m in cluster.members if m.netns])
    cluster.create()
    cluster.start()
    save(state_dir, cluster.config(local=True))
    return cluster


def prepare_host(state_dir: str, cluster: EtcdCluster, name: str) -> str:
    """The node's own state directory: its own copy of the client identity and a
    ``store.json`` naming the members' underlay addresses. Returns the directory."""
    host = node_state_dir(state_dir, name)
    pki = os.path.join(host, "pki")
    os.makedirs(pki, mode=0o700, exist_ok=True)
    src = cluster.client_tls
    files = TlsFiles(os.path.join(pki, "etcd-ca"), os.path.join(pki, "etcd-cert"), os.path.join(pki, "etcd-key"))
    for a, b in ((src.ca, files.ca), (src.cert, files.cert), (src.key, files.key)):
        shutil.copyfile(a, b)
        os.chmod(b, 0o600)
    save(host, StoreConfig(cluster.endpoints(), files))
    return host


def stop_etcd(state: dict[str, Any]) -> list[str]:
    """Stop the members (after every client is gone); the namespaces go with the cluster's."""
    cluster = etcd_cluster(state)
    if cluster is None:
        return []
    stopped = [f"etcd member {n}" for n in cluster.stop()]
    cluster.remove_data()
    shutil.rmtree(state["store"]["hosts"], ignore_errors=True)
    return stopped
