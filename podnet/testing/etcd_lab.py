"""A three-member etcd cluster with TLS on loopback, for tests and benchmarks of the store under
faults (the lab's own cluster, with members in namespaces, is ``podnet up --store etcd``)."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from podnet.cluster.etcd import EtcdCluster, Member, memory_data_root
from podnet.store.etcd import EtcdStore


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_members(count: int = 3) -> list[Member]:
    ports = free_ports(2 * count)
    return [Member(f"m{i + 1}", "127.0.0.1", ports[2 * i], ports[2 * i + 1]) for i in range(count)]


@contextmanager
def loopback_cluster(directory: str, count: int = 3) -> Iterator[EtcdCluster]:
    """Started and healthy; always stopped and removed afterwards."""
    cluster = EtcdCluster(directory, loopback_members(count), data_root=memory_data_root())
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def client(cluster: EtcdCluster, request_timeout: float = 5.0) -> EtcdStore:
    """A store over every member's loopback endpoint, with the cluster's client certificate."""
    return EtcdStore(cluster.endpoints(), cluster.client_tls, request_timeout=request_timeout)
