"""A node is protected from its pods: the input chain drops a pod's new connections to the node
unless the endpoint-to-host action says Accept (then the pod's egress policy decides), and the
state a node keeps on disk (store, CNI socket, etcd client files) is the owner's only. The
kernel side (a hostile pod trying every way out) is in tests/faults/test_etcd_cluster.py."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from podnet.dataplane.nft.render import base_chains, to_host_rules
from podnet.store.sqlite import SqliteStore


def _comments(chain_name: str, to_host: str) -> list[str]:
    return [r.comment.split(" ", 1)[1] for r in base_chains(to_host)[chain_name].rules]


def test_the_input_chain_drops_pod_to_node_by_default() -> None:
    assert _comments("input", "Drop") == [
        "not from a pod: not ours to filter",
        "replies and related traffic",
        "invalid conntrack state",
        "pod to its node's API server port 6443: its egress policy (failsafe)",
        "pod to its node: dropped (endpoint-to-host Drop)",
    ]
    last = base_chains()["input"].rules[-1]
    assert {"drop": None} in last.expr  # the default is Drop


def test_the_api_server_port_stays_open_to_the_pods_egress_policy() -> None:
    """Pods reach the API server through the `kubernetes` Service, whose endpoint is a node
    address: on that node the connection arrives on the input path and must not be dropped."""
    failsafe = base_chains()["input"].rules[-2]
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6443}} \
        in failsafe.expr
    assert {"goto": {"target": "from-wl"}} in failsafe.expr


def test_accept_hands_pod_to_node_to_the_pods_egress_policy() -> None:
    assert _comments("input", "Accept")[-1] == "pod to its node: its egress policy (endpoint-to-host Accept)"
    assert {"goto": {"target": "from-wl"}} in base_chains("Accept")["input"].rules[-1].expr
    assert base_chains("Accept")["forward"] == base_chains("Drop")["forward"]  # pod-to-pod is untouched
    with pytest.raises(ValueError, match="use one of Drop, Accept"):
        to_host_rules("Return")


def test_the_store_file_is_the_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqliteStore(str(tmp_path / "store.db"))
        store.create("/k", {"v": 1})
        store.close()
    finally:
        os.umask(old)
    for name in ("store.db", "store.db-wal", "store.db-shm"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_the_cni_socket_is_the_owners_only(tmp_path: Path) -> None:
    from podnet.cni.handler import Handler
    from podnet.cni.server import CniServer
    from podnet.store.memory import MemoryStore

    store = MemoryStore()
    server = CniServer(str(tmp_path / "nodes" / "n1" / "cni.sock"), Handler(lambda conf: store))
    try:
        mode = os.stat(server.path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(server.path)  # the owner can
    finally:
        server.server_close()
