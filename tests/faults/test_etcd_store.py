"""The store on a three-member etcd cluster with TLS, under faults (members on loopback): the
leader SIGKILLed during compare-and-set writes loses no acknowledged write and writes resume
within seconds (a Jepsen-style register check, unknown outcomes counted apart); a watch across
the kill sees every revision once and in order; a member whose data is lost is replaced and
catches up; a client without the cluster's certificate is refused."""
from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cluster.etcd import EtcdCluster
from podnet.cluster.pki import CertificateAuthority, client_files
from podnet.errors import PodnetError
from podnet.store.api import Event
from podnet.store.etcd import EtcdStore
from podnet.testing.etcd_lab import client, loopback_cluster
from podnet.testing.history import check_register, register_history, run_register

pytestmark = pytest.mark.kernel


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One per test: a test that restarts members owns what it started."""
    with loopback_cluster(str(tmp_path / "etcd")) as c:
        yield c


def test_leader_killed_during_writes_loses_no_acknowledged_write(cluster: EtcdCluster) -> None:
    leader = cluster.leader()
    watched: list[Event] = []
    watcher = client(cluster)
    done = threading.Event()

    def watch() -> None:
        for ev in watcher.watch("/register", watcher.revision() + 1, timeout=None):
            watched.append(ev)
            if done.is_set() and ev.revision >= final[0]:
                return

    final = [1 << 60]
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    killed_at: list[float] = []

    def kill_leader() -> None:
        time.sleep(1.0)
        killed_at.append(time.monotonic())
        cluster.kill(leader.name)

    ops = run_register(lambda: client(cluster), "/register", writers=3, seconds=4.0, during=kill_leader)
    store = client(cluster)
    history = register_history(store, "/register")
    report = check_register(ops, history)
    final[0] = store.revision()
    done.set()
    store.create("/register-end", {})  # wakes the watcher if it is idle
    thread.join(15)
    watcher.close()
    store.close()

    assert report.clean, report
    assert report.ok > 10
    assert report.longest_gap < 5.0, f"writes stopped for {report.longest_gap:.2f} s after the leader kill"
    first_after = min(o.end for o in ops if o.outcome == "ok" and o.start > killed_at[0])
    assert first_after - killed_at[0] < 5.0
    revisions = [e.revision for e in watched if e.key == "/register"]
    assert revisions == [e.revision for e in history if e.revision > history[0].revision - 1][-len(revisions):]
    assert revisions == sorted(set(revisions)), "the watch repeated or reordered a revision"
    cluster.start_member(leader)  # a SIGKILLed member comes back (its socket file was left behind)
    deadline = time.monotonic() + 15
    while cluster.member_status(leader) is None:
        assert cluster.alive(leader.name) and time.monotonic() < deadline, open(cluster.log(leader.name)).read()[-500:]
        time.sleep(0.1)


def test_a_member_whose_data_is_lost_is_replaced_and_catches_up(cluster: EtcdCluster) -> None:
    store = client(cluster)
    for i in range(50):
        store.create(f"/lost/{i}", {"i": i})
    victim = next(m for m in cluster.members if m.name != cluster.leader().name)
    cluster.replace_member(victim.name)
    only = EtcdStore([victim.client_url], cluster.client_tls)
    deadline = time.monotonic() + 10
    while len(only.list("/lost/")[0]) != 50:
        assert time.monotonic() < deadline, "the new member did not catch up"
        time.sleep(0.1)
    assert only.revision() == store.revision()
    only.close()
    store.close()


def test_clients_without_the_clusters_certificate_are_refused(cluster: EtcdCluster, tmp_path: Path) -> None:
    plain = EtcdStore([cluster.endpoints()[0].replace("https://", "http://")], request_timeout=1.0)
    with pytest.raises(PodnetError):
        plain.get("/x")
    plain.close()
    other = client_files(str(tmp_path / "other"), CertificateAuthority("another CA"))
    with pytest.raises(PodnetError):
        EtcdStore(cluster.endpoints(), other, request_timeout=1.0).get("/x")  # our CA does not know the server
    mixed = type(other)(cluster.client_tls.ca, other.cert, other.key)  # right CA, foreign client certificate
    with pytest.raises(PodnetError, match="TLS|unreachable"):
        EtcdStore(cluster.endpoints(), mixed, request_timeout=1.0).get("/x")
    ctx = ssl.create_default_context(cafile=cluster.client_tls.ca)
    assert ctx is not None
