"""Opening stores: state directories, URLs, and the SQLite file's own invariants."""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from podnet.errors import PodnetError
from podnet.model import Namespace
from podnet.store.memory import MemoryStore
from podnet.store.open import default_state_dir, open_backend, open_store, open_store_url
from podnet.store.sqlite import SqliteStore


def test_open_store_creates_a_private_state_dir_and_bootstraps(tmp_path: Path) -> None:
    state = tmp_path / "state" / "podnet"
    rs = open_store(str(state))
    try:
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        assert (state / "store.db").exists()
        assert [n.name for n in rs.list(Namespace)] == ["default", "kube-system"]
        rev = rs.revision()
    finally:
        rs.close()
    again = open_store(str(state))  # reopening writes nothing
    try:
        assert again.revision() == rev
    finally:
        again.close()


def test_default_state_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODNET_STATE_DIR", raising=False)
    assert default_state_dir() == "/var/lib/podnet"
    monkeypatch.setenv("PODNET_STATE_DIR", "/tmp/elsewhere")
    assert default_state_dir() == "/tmp/elsewhere"


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend("memory://"), MemoryStore)
    sq = open_backend(f"sqlite://{tmp_path}/sub/x.db")
    assert isinstance(sq, SqliteStore) and (tmp_path / "sub" / "x.db").exists()
    sq.close()
    rs = open_store_url("memory://")
    assert rs.get(Namespace, "default") is not None
    for bad, message in [("sqlite://relative.db", "sqlite:///absolute"), ("etcd://nohost", "etcd://host:port"),
                         ("redis://x:1", "unknown store URL")]:
        with pytest.raises(PodnetError, match=message):
            open_backend(bad)


def test_unreachable_etcd_is_a_clear_error() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = open_backend(f"etcd://127.0.0.1:{port}")
    with pytest.raises(PodnetError, match="unreachable"):
        store.get("/x")
    store.close()


def test_state_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PodnetError, match="cannot create state directory") as info:
        open_store(str(blocker / "state"))
    assert "--state-dir" in str(info.value)


def test_sqlite_file_from_a_newer_podnet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(PodnetError, match="schema version 99"):
        SqliteStore(str(path))


def test_sqlite_uses_wal_and_keeps_history_bounded(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"), history=10)
    try:
        for i in range(50):
            store.create(f"/k/{i}", {"i": i})
        conn = sqlite3.connect(tmp_path / "s.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows, oldest = conn.execute("SELECT count(*), min(revision) FROM history").fetchone()
        conn.close()
        assert rows <= 20 and oldest >= 30
        assert len(store.list("/k/")[0]) == 50
    finally:
        store.close()


def test_memory_history_is_bounded_too() -> None:
    store = MemoryStore(history=10)
    for i in range(50):
        store.create(f"/k/{i}", {"i": i})
    events = []
    with pytest.raises(Exception) as info:
        events = list(store.watch("/k/", 1, timeout=0.01))
    assert type(info.value).__name__ == "Compacted" and events == []
    assert len(list(store.watch("/k/", 45, timeout=0.01))) == 6


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    store.close()
    with pytest.raises(PodnetError, match="closed"):
        store.get("/x")


def test_a_snapshot_tells_kinds_of_the_same_name_apart(tmp_path: Path) -> None:
    """v1 Node and Calico's Node, Kubernetes' and Calico's NetworkPolicy share kind names: a
    snapshot answers each by its class, so a planner never sees the other group's objects."""
    from podnet.model import CalicoNetworkPolicy, CalicoNode, NetworkPolicy, Node

    rs = open_store(str(tmp_path / "s"))
    try:
        rs.apply([Node.model_validate({"metadata": {"name": "n1"}}),
                  CalicoNode.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                                             "metadata": {"name": "n1"}, "spec": {}}),
                  NetworkPolicy.model_validate({"metadata": {"name": "p", "namespace": "default"},
                                                "spec": {"podSelector": {}}}),
                  CalicoNetworkPolicy.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                                                      "metadata": {"name": "p", "namespace": "default"},
                                                      "spec": {"selector": "all()"}})])
        snap = rs.snapshot()
    finally:
        rs.close()
    assert [type(o) for o in snap.of(Node)] == [Node] and [type(o) for o in snap.of(CalicoNode)] == [CalicoNode]
    assert [type(o) for o in snap.of(NetworkPolicy)] == [NetworkPolicy]
    assert [type(o) for o in snap.of(CalicoNetworkPolicy)] == [CalicoNetworkPolicy]
    assert isinstance(snap.get(Node, "n1"), Node) and isinstance(snap.get(CalicoNode, "n1"), CalicoNode)
    assert isinstance(snap.get(CalicoNetworkPolicy, "p", "default"), CalicoNetworkPolicy)
    assert isinstance(snap.get(NetworkPolicy, "p", "default"), NetworkPolicy)
