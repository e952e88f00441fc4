"""The store contract: what every Store backend must do, as one suite parametrised over backends.

A new backend (etcd) joins by adding a case to ``Backend.make``; nothing else changes. Cross-process cases run real child processes for
backends several processes can share, and threads for the in-process memory backend.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podnet.errors import AlreadyExists, Compacted, Conflict, NotFound, PodnetError
from podnet.store.api import Compare, Delete, Event, Put, Store
from podnet.store.open import open_backend

BACKENDS = ["memory", "sqlite", "etcd"]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdServer:
    """A single-member etcd on loopback, started for one test and always stopped (by PID)."""

    def __init__(self, tmp: Path) -> None:
        client, peer = free_port(), free_port()
        self.url = f"etcd://127.0.0.1:{client}"
        self.log = open(tmp / "etcd.log", "wb")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "pt", "--data-dir", str(tmp / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"pt=http://127.0.0.1:{peer}", "--initial-cluster-state", "new",
             "--heartbeat-interval", "10", "--election-timeout", "100",
             # podnet's apply is one transaction of every object it touches
             "--max-txn-ops", "100000", "--max-request-bytes", str(64 << 20)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{client}/health", timeout=1) as resp:
                    if json.load(resp).get("health") == "true":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not become healthy; see {tmp / 'etcd.log'}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        assert self.proc.poll() is not None


@dataclass
class Backend:
    """How to reach one backend's data: more handles (another 'client'), and a URL for children."""

    name: str
    url: str
    shared: Store | None = None  # memory: one instance is the whole store
    server: EtcdServer | None = None

    @property
    def multiprocess(self) -> bool:
        return self.shared is None

    def open(self) -> Store:
        return self.shared if self.shared is not None else open_backend(self.url)

    @classmethod
    def make(cls, name: str, tmp: Path) -> Backend:
        if name == "memory":
            return cls(name, "memory://", open_backend("memory://"))
        if name == "sqlite":
            return cls(name, f"sqlite://{tmp}/store.db")
        if name == "etcd":
            if shutil.which("etcd") is None:
                pytest.skip("etcd is not installed (make setup installs etcd-server)")
            server = EtcdServer(tmp)
            return cls(name, server.url, server=server)
        raise ValueError(name)

    def stop(self) -> None:
        if self.shared is not None:
            self.shared.close()
        if self.server is not None:
            self.server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend.make(request.param, tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    s = backend.open()
    yield s
    s.close()


def run_children(script: str, args: list[list[str]], timeout: float = 60) -> list[str]:
    """Run one Python child per argument list (all at once) and return their stdout."""
    code = textwrap.dedent(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    procs = [subprocess.Popen([sys.executable, "-c", code, *a], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for a in args]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"child failed: {err}"
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def cas_increments(store: Store, key: str, count: int) -> int:
    """Increment a counter ``count`` times by compare-and-swap; returns how many CAS attempts lost."""
    lost = 0
    done = 0
    while done < count:
        rec = store.get(key)
        assert rec is not None
        try:
            store.update(key, {"n": rec.value["n"] + 1}, mod_revision=rec.mod_revision)
            done += 1
        except Conflict:
            lost += 1
    return lost


def txn_increments(store: Store, key: str, count: int) -> int:
    """The same through ``txn`` with a Compare, as IPAM does it."""
    lost = 0
    done = 0
    while done < count:
        rec = store.get(key)
        assert rec is not None
        if store.txn([Compare(key, rec.mod_revision)], [Put(key, {"n": rec.value["n"] + 1})]).succeeded:
            done += 1
        else:
            lost += 1
    return lost


def quiet(store: Store) -> float:
    """How long a replay may pause before the watch counts as idle: etcd streams history over
    HTTP, which a loaded machine can stall for more than the in-process backends' 50 ms."""
    return 0.5 if type(store).__name__ == "EtcdStore" else 0.05


def collect(store: Store, prefix: str, start: int, until: int, timeout: float = 10) -> list[Event]:
    """Watch until an event at revision ``until`` arrives (or fail after ``timeout``)."""
    out: list[Event] = []
    deadline = time.monotonic() + timeout
    for ev in store.watch(prefix, start, timeout=timeout):
        out.append(ev)
        if ev.revision >= until:
            break
        assert time.monotonic() < deadline, "watch too slow"
    return out


class TestRevisions:
    def test_empty_store_is_at_revision_zero(self, store: Store) -> None:
        assert store.revision() == 0
        assert store.get("/a") is None
        assert store.list("/") == ([], 0)

    def test_each_write_bumps_the_global_revision(self, store: Store) -> None:
        r1 = store.create("/k/a", {"v": 1})
        assert (r1.create_revision, r1.mod_revision, r1.version) == (1, 1, 1)
        r2 = store.create("/k/b", {"v": 1})
        assert (r2.create_revision, r2.mod_revision) == (2, 2)
        r3 = store.update("/k/a", {"v": 2})
        assert (r3.create_revision, r3.mod_revision, r3.version) == (1, 3, 2)
        assert store.get("/k/a") == r3
        assert store.delete("/k/b") is True
        assert store.revision() == 4

    def test_failed_writes_do_not_bump_the_revision(self, store: Store) -> None:
        store.create("/k/a", {"v": 1})
        with pytest.raises(AlreadyExists):
            store.create("/k/a", {"v": 2})
        with pytest.raises(Conflict):
            store.update("/k/a", {"v": 2}, mod_revision=99)
        with pytest.raises(NotFound):
            store.update("/k/missing", {"v": 2})
        assert store.delete("/k/missing") is False
        assert store.revision() == 1
        assert store.get("/k/a").value == {"v": 1}  # type: ignore[union-attr]

    def test_recreated_key_starts_a_new_life(self, store: Store) -> None:
        store.create("/k/a", {"v": 1})
        store.update("/k/a", {"v": 2})
        store.delete("/k/a")
        again = store.create("/k/a", {"v": 3})
        assert (again.create_revision, again.mod_revision, again.version) == (4, 4, 1)

    def test_values_are_copies(self, store: Store) -> None:
        value = {"spec": {"items": [1, 2]}}
        store.create("/k/a", value)
        value["spec"]["items"].append(3)
        got = store.get("/k/a")
        assert got is not None and got.value == {"spec": {"items": [1, 2]}}
        got.value["spec"]["items"].clear()
        assert store.get("/k/a").value == {"spec": {"items": [1, 2]}}  # type: ignore[union-attr]

    def test_bad_values_and_keys_are_refused(self, store: Store) -> None:
        with pytest.raises(PodnetError, match="JSON"):
            store.create("/k/a", {"when": object()})
        with pytest.raises(PodnetError, match="non-empty"):
            store.create("", {})
        assert store.revision() == 0

    def test_state_survives_reopening(self, backend: Backend, store: Store) -> None:
        store.create("/k/a", {"v": 1})
        other = backend.open()
        assert other.get("/k/a").value == {"v": 1}  # type: ignore[union-attr]
        assert other.revision() == 1
        if other is not store:
            other.close()


class TestConditionalWrites:
    def test_update_at_current_revision_succeeds_then_stale_conflicts(self, store: Store) -> None:
        rec = store.create("/k/a", {"v": 1})
        new = store.update("/k/a", {"v": 2}, mod_revision=rec.mod_revision)
        with pytest.raises(Conflict, match="modified"):
            store.update("/k/a", {"v": 3}, mod_revision=rec.mod_revision)
        assert store.get("/k/a") == new

    def test_guarded_update_of_an_absent_key_is_not_found_and_creates_nothing(self, store: Store) -> None:
        # mod_revision 0 means "absent" in a txn compare; an update must still need the key.
        with pytest.raises(NotFound):
            store.update("/k/missing", {"v": 1}, mod_revision=0)
        assert store.get("/k/missing") is None and store.revision() == 0

    def test_delete_with_stale_revision_conflicts_and_keeps_the_key(self, store: Store) -> None:
        rec = store.create("/k/a", {"v": 1})
        store.update("/k/a", {"v": 2})
        with pytest.raises(Conflict):
            store.delete("/k/a", mod_revision=rec.mod_revision)
        assert store.get("/k/a") is not None
        assert store.delete("/k/a", mod_revision=rec.mod_revision + 1) is True
        assert store.delete("/k/a") is False  # idempotent

    def test_two_clients_racing_one_update_one_wins(self, backend: Backend) -> None:
        a, b = backend.open(), backend.open()
        try:
            rec = a.create("/k/x", {"n": 0})
            a.update("/k/x", {"n": 1}, mod_revision=rec.mod_revision)
            with pytest.raises(Conflict):
                b.update("/k/x", {"n": 1}, mod_revision=rec.mod_revision)
            assert b.get("/k/x").value == {"n": 1}  # type: ignore[union-attr]
        finally:
            for s in {id(a): a, id(b): b}.values():
                s.close()


class TestList:
    def test_prefix_is_exact_and_sorted(self, store: Store) -> None:
        for key in ["/r/pods/ns1/b", "/r/pods/ns1/a", "/r/pods/ns10/a", "/r/podsx/a", "/r/pod", "/s/a"]:
            store.create(key, {"k": key})
        records, rev = store.list("/r/pods/ns1/")
        assert [r.key for r in records] == ["/r/pods/ns1/a", "/r/pods/ns1/b"]
        assert rev == 6
        assert [r.key for r in store.list("/r/pods/")[0]] == ["/r/pods/ns1/a", "/r/pods/ns1/b", "/r/pods/ns10/a"]
        assert len(store.list("")[0]) == 6
        assert store.list("/nothing/")[0] == []
        assert all(r.value == {"k": r.key} for r in records)

    def test_list_reports_each_records_revisions(self, store: Store) -> None:
        store.create("/p/a", {})
        store.create("/p/b", {})
        store.update("/p/a", {"x": 1})
        records, rev = store.list("/p/")
        assert [(r.key, r.create_revision, r.mod_revision, r.version) for r in records] == [
            ("/p/a", 1, 3, 2), ("/p/b", 2, 2, 1)]
        assert rev == 3


class TestTxn:
    def test_all_ops_land_at_one_revision(self, store: Store) -> None:
        a = store.create("/t/a", {"v": 1})
        result = store.txn([Compare("/t/a", a.mod_revision), Compare("/t/new", 0)],
                           [Put("/t/new", {"v": 9}), Put("/t/a", {"v": 2}), Delete("/t/gone")])
        assert result.succeeded and result.revision == 2 and result.failed_keys == ()
        assert store.get("/t/a").mod_revision == store.get("/t/new").mod_revision == 2  # type: ignore[union-attr]

    def test_one_failed_compare_means_nothing_happens(self, store: Store) -> None:
        a = store.create("/t/a", {"v": 1})
        store.create("/t/b", {"v": 1})
        before = store.list("")
        result = store.txn([Compare("/t/a", a.mod_revision), Compare("/t/b", 0), Compare("/t/c", 5)],
                           [Put("/t/a", {"v": 2}), Delete("/t/b"), Put("/t/c", {})])
        assert not result.succeeded
        assert result.revision == 2
        assert set(result.failed_keys) == {"/t/b", "/t/c"}
        assert store.list("") == before

    def test_ops_without_compares_and_delete_of_absent_keys(self, store: Store) -> None:
        assert store.txn([], [Delete("/t/none")]) .revision == 0  # nothing changed, no revision
        assert store.txn([], [Put("/t/x", {}), Delete("/t/none")]).revision == 1
        assert store.txn([], []).succeeded

    def test_a_key_twice_in_one_txn_is_refused(self, store: Store) -> None:
        with pytest.raises(PodnetError, match="twice"):
            store.txn([], [Put("/t/a", {}), Delete("/t/a")])
        assert store.revision() == 0

    def test_txn_put_then_delete_in_op_order(self, store: Store) -> None:
        store.create("/t/old", {"v": 0})
        store.txn([], [Put("/t/b", {}), Delete("/t/old"), Put("/t/a", {})])
        events = list(store.watch("/t/", 2, timeout=quiet(store)))
        assert [(e.type, e.key, e.revision) for e in events] == [
            ("PUT", "/t/b", 2), ("DELETE", "/t/old", 2), ("PUT", "/t/a", 2)]


class TestWatch:
    def _history(self, store: Store) -> None:
        store.create("/w/a", {"v": 1})                   # 1
        store.create("/x/other", {"v": 1})               # 2
        store.update("/w/a", {"v": 2})                   # 3
        store.txn([], [Put("/w/b", {"v": 1}), Put("/w/c", {"v": 1})])  # 4
        store.delete("/w/a")                             # 5

    def test_replays_history_in_order_with_values(self, store: Store) -> None:
        self._history(store)
        events = list(store.watch("/w/", 1, timeout=quiet(store)))
        assert [(e.type, e.key, e.revision, e.version) for e in events] == [
            ("PUT", "/w/a", 1, 1), ("PUT", "/w/a", 3, 2), ("PUT", "/w/b", 4, 1), ("PUT", "/w/c", 4, 1),
            ("DELETE", "/w/a", 5, 0)]
        assert events[1].value == {"v": 2}
        assert events[-1].value is None and events[-1].prev_value == {"v": 2}

    def test_start_revision_and_resume(self, store: Store) -> None:
        self._history(store)
        everything = list(store.watch("", 1, timeout=quiet(store)))
        assert [e.revision for e in everything] == [1, 2, 3, 4, 4, 5]
        first = []
        for ev in store.watch("", 1, timeout=quiet(store)):
            first.append(ev)
            if ev.revision == 3:
                break
        rest = list(store.watch("", first[-1].revision + 1, timeout=quiet(store)))
        assert first + rest == everything
        assert list(store.watch("", 6, timeout=quiet(store))) == []

    def test_live_events_arrive_in_order_without_gaps(self, backend: Backend, store: Store) -> None:
        writer = backend.open()
        count = 61  # the last write is a single create, so the watch can stop at it

        def write() -> None:
            for i in range(count):
                if i % 3 == 2:
                    writer.txn([], [Put(f"/live/{i}", {"i": i}), Put(f"/live/{i}b", {"i": i})])
                else:
                    writer.create(f"/live/{i}", {"i": i})

        thread = threading.Thread(target=write)
        thread.start()
        events = collect(store, "/live/", 1, until=count)
        thread.join()
        revisions = [e.revision for e in events]
        assert sorted(set(revisions)) == list(range(1, count + 1))  # every revision, no gaps
        assert revisions == sorted(revisions)
        assert len(events) == count + sum(1 for i in range(count) if i % 3 == 2)
        if writer is not store:
            writer.close()

    def test_timeout_ends_an_idle_watch(self, store: Store) -> None:
        start = time.monotonic()
        assert list(store.watch("/", 1, timeout=0.2)) == []
        assert 0.15 <= time.monotonic() - start < 2

    def test_compacted_history_raises_with_the_oldest_kept(self, store: Store) -> None:
        for i in range(10):
            store.create(f"/c/{i}", {})
        store.compact(6)
        with pytest.raises(Compacted) as info:
            list(store.watch("/c/", 3, timeout=quiet(store)))
        assert info.value.requested == 3 and info.value.compacted == 6
        assert "list again" in str(info.value)
        assert [e.revision for e in store.watch("/c/", 6, timeout=quiet(store))] == [6, 7, 8, 9, 10]
        assert len(store.list("/c/")[0]) == 10  # compaction keeps current values

    def test_watcher_falling_behind_compaction_is_told(self, store: Store) -> None:
        store.create("/c/0", {})
        it = store.watch("/c/", 1, timeout=0.5)
        assert next(it).revision == 1
        for i in range(1, 5):
            store.create(f"/c/{i}", {})
        store.compact(4)
        try:  # told to relist, or (etcd: already streamed before the compaction) got everything
            assert [e.revision for e in it] == [2, 3, 4, 5]
        except Compacted as exc:
            assert exc.compacted == 4


class TestConcurrency:
    WORKERS = 8
    EACH = 100

    def test_concurrent_cas_increments_lose_nothing(self, backend: Backend, store: Store) -> None:
        """8 writers (processes when the backend allows, else threads) increment one counter."""
        store.create("/cnt", {"n": 0})
        each = 25 if backend.name == "etcd" else self.EACH  # each etcd write is an HTTP round trip
        if backend.multiprocess:
            outs = run_children(
                """
                import sys, time
                from podnet.store.open import open_backend
                from test_store_contract import cas_increments, txn_increments
                s = open_backend(sys.argv[1])
                fn = cas_increments if sys.argv[3] == "update" else txn_increments
                time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # all start together
                print(fn(s, "/cnt", int(sys.argv[2])))
                """,
                [[backend.url, str(each), "update" if i % 2 else "txn", str(time.time() + 1.5)]
                 for i in range(self.WORKERS)],
            )
            lost = sum(int(o) for o in outs)
        else:
            losses: list[int] = []
            threads = [threading.Thread(target=lambda f=f: losses.append(f(store, "/cnt", self.EACH)))
                       for f in [cas_increments, txn_increments] * (self.WORKERS // 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            lost = sum(losses)
        total = self.WORKERS * each
        final = store.get("/cnt")
        assert final is not None and final.value == {"n": total}
        assert final.version == total + 1
        values = [e.value["n"] for e in store.watch("/cnt", 1, timeout=quiet(store))]  # type: ignore[index]
        assert values == list(range(total + 1))  # every increment is in the history, in order
        print(f"{backend.name}: {lost} CAS attempts lost the race and retried")

    def test_watcher_in_another_process_sees_every_revision_in_order(self, backend: Backend, store: Store) -> None:
        writes = 150
        start = store.revision() + 1
        if backend.multiprocess:
            proc = subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent("""
                    import json, sys, time
                    from podnet.store.open import open_backend
                    s = open_backend(sys.argv[1])
                    last = int(sys.argv[3])
                    print("ready", flush=True)
                    for ev in s.watch("/", int(sys.argv[2]), timeout=20):
                        print(json.dumps([ev.revision, ev.type, ev.key, ev.value, time.time()]), flush=True)
                        if ev.revision >= last:
                            break
                    """), backend.url, str(start), str(start + writes - 1)],
                stdout=subprocess.PIPE, text=True, env=dict(os.environ))
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        try:
            sent: dict[int, float] = {}
            for i in range(writes):
                time.sleep(0.002 if i % 10 == 0 else 0)
                sent[start + i] = time.time()
                if i % 5 == 4:
                    store.delete(f"/w/{i - 1}")
                else:
                    store.create(f"/w/{i}", {"i": i})
            if backend.multiprocess:
                out, _ = proc.communicate(timeout=30)
                assert proc.returncode == 0
                seen = [json.loads(line) for line in out.splitlines()]
            else:
                seen = [[e.revision, e.type, e.key, e.value, time.time()] for e in collect(store, "/", start, start + writes - 1)]
        finally:
            if backend.multiprocess and proc.poll() is None:
                proc.kill()
                proc.wait()
        expected = [[e.revision, e.type, e.key, e.value] for e in store.watch("/", start, timeout=quiet(store))]
        assert [s[:4] for s in seen] == expected
        assert [s[0] for s in seen] == list(range(start, start + writes))
        if backend.multiprocess:  # delivery latency of the writes paced by sleeps (not a backlog)
            lags = sorted(s[4] - sent[s[0]] for s in seen if (s[0] - start) % 10 == 0)
            assert lags[len(lags) // 2] < 0.05, f"median cross-process watch delivery {lags[len(lags) // 2]:.3f}s"


# -- ResourceStore over every backend -----------------------------------------------------------
from podnet.model import IPPool, Namespace, NetworkPolicy, Pod, Resource  # noqa: E402
from podnet.model.selectors import parse_label_selector_string  # noqa: E402
from podnet.store.resources import ResourceStore, key_for  # noqa: E402


@pytest.fixture
def rs(store: Store) -> ResourceStore:
    r = ResourceStore(store)
    r.bootstrap()
    return r


def ns(name: str, **labels: str) -> Namespace:
    return Namespace.model_validate({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def pod(name: str, namespace: str | None = None, image: str = "nginx", status: dict | None = None, **labels: str) -> Pod:
    meta: dict = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": 80}]}]}}
    if status:
        doc["status"] = status
    return Pod.model_validate(doc)


def netpol(name: str, namespace: str = "default") -> NetworkPolicy:
    return NetworkPolicy.model_validate({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}})


def pool(name: str, cidr: str) -> IPPool:
    return IPPool.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                  "metadata": {"name": name}, "spec": {"cidr": cidr}})


def state(r: ResourceStore) -> tuple[int, list]:
    """Everything the store holds, for before/after comparisons."""
    records, rev = r.kv.list("")
    return rev, records


class TestResourceBasics:
    def test_bootstrap_creates_the_standard_namespaces_once(self, rs: ResourceStore) -> None:
        names = [n.name for n in rs.list(Namespace)]
        assert names == ["default", "kube-system"]
        before = rs.revision()
        rs.bootstrap()
        assert rs.revision() == before
        assert rs.get(Namespace, "kube-system").labels == {"kubernetes.io/metadata.name": "kube-system"}  # type: ignore[union-attr]

    def test_create_sets_server_metadata(self, rs: ResourceStore) -> None:
        created = rs.create(pod("web", app="web"))
        meta = created.metadata
        assert meta.namespace == "default"
        assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid or "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.creation_timestamp or "")
        assert meta.generation == 1
        assert meta.resource_version == str(rs.revision())
        assert rs.get(Pod, "web") == created
        assert rs.kv.get("/registry/pods/default/web") is not None
        assert "resourceVersion" not in rs.kv.get("/registry/pods/default/web").value["metadata"]  # type: ignore[union-attr]

    def test_create_refuses_duplicates_and_missing_namespaces(self, rs: ResourceStore) -> None:
        rs.create(pod("web"))
        with pytest.raises(AlreadyExists, match='pods "web" already exists in namespace "default"'):
            rs.create(pod("web"))
        before = state(rs)
        with pytest.raises(NotFound, match='namespaces "prod" not found') as info:
            rs.create(pod("web", "prod"))
        assert "Pod prod/web" in str(info.value) and "create the namespace first" in str(info.value)
        assert state(rs) == before

    def test_generate_name(self, rs: ResourceStore) -> None:
        obj = Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                                  "spec": {"containers": [{"name": "c"}]}})
        made = rs.create(obj)
        assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", made.name)  # the API server's alphabet

    def test_namespace_label_is_enforced(self, rs: ResourceStore) -> None:
        made = rs.create(ns("team-a", env="prod", **{"kubernetes.io/metadata.name": "wrong"}))
        assert made.labels == {"env": "prod", "kubernetes.io/metadata.name": "team-a"}
        (applied, action), = rs.apply([ns("team-b")])
        assert action == "created" and applied.labels == {"kubernetes.io/metadata.name": "team-b"}

    def test_cluster_scoped_objects_ignore_namespace(self, rs: ResourceStore) -> None:
        made = rs.create(pool("p1", "10.244.0.0/16").with_meta(namespace="default"))
        assert made.metadata.namespace is None
        assert rs.get(IPPool, "p1") == made
        assert rs.kv.get(key_for(IPPool, "p1")) is not None and key_for(IPPool, "p1") == "/registry/ippools/p1"

    def test_list_by_namespace_and_selector(self, rs: ResourceStore) -> None:
        rs.apply([ns("prod"), pod("a", app="web", tier="fe"), pod("b", app="db"),
                  pod("c", "prod", app="web"), pod("d", "prod")])
        assert [p.ref for p in rs.list(Pod)] == ["default/a", "default/b", "prod/c", "prod/d"]
        assert [p.ref for p in rs.list(Pod, "prod")] == ["prod/c", "prod/d"]
        sel = parse_label_selector_string("app=web")
        assert [p.ref for p in rs.list(Pod, selector=sel)] == ["default/a", "prod/c"]
        sel = parse_label_selector_string("app in (web,db),!tier")
        assert [p.ref for p in rs.list(Pod, selector=sel)] == ["default/b", "prod/c"]
        assert rs.list(Pod, "nowhere") == []


class TestResourceUpdates:
    def test_update_keeps_server_metadata_and_status(self, rs: ResourceStore) -> None:
        made = rs.create(pod("web", status={"phase": "Running", "podIP": "10.244.1.5"}, app="web"))
        changed = rs.update(pod("web", image="httpd", app="web").with_meta(resource_version=made.metadata.resource_version))
        assert changed.metadata.uid == made.metadata.uid
        assert changed.metadata.creation_timestamp == made.metadata.creation_timestamp
        assert changed.metadata.generation == 2  # the spec changed
        assert changed.status.pod_ip == "10.244.1.5"  # type: ignore[attr-defined]
        relabelled = rs.update(pod("web", image="httpd", app="web2"))
        assert relabelled.metadata.generation == 2  # metadata only: generation stays
        assert relabelled.labels == {"app": "web2"}

    def test_update_at_a_stale_version_conflicts(self, rs: ResourceStore) -> None:
        made = rs.create(pod("web"))
        rs.update(pod("web", app="x"))
        before = state(rs)
        with pytest.raises(Conflict, match="has been modified"):
            rs.update(pod("web", app="y").with_meta(resource_version=made.metadata.resource_version))
        assert state(rs) == before
        done = rs.update(pod("web", app="y").with_meta(resource_version=made.metadata.resource_version), check_version=False)
        assert done.labels == {"app": "y"}

    def test_update_of_a_missing_object(self, rs: ResourceStore) -> None:
        with pytest.raises(NotFound, match='pods "ghost" not found'):
            rs.update(pod("ghost"))

    def test_update_status_changes_only_status(self, rs: ResourceStore) -> None:
        made = rs.create(pod("web", app="web"))
        reported = rs.update_status(pod("web", image="IGNORED", app="IGNORED", status={"phase": "Running", "podIP": "10.244.0.9"}))
        assert reported.status.pod_ip == "10.244.0.9"  # type: ignore[attr-defined]
        assert reported.labels == {"app": "web"} and reported.spec.containers[0].image == "nginx"  # type: ignore[attr-defined]
        assert reported.metadata.generation == made.metadata.generation
        rev = rs.revision()
        rs.update_status(reported)  # same status: no write
        assert rs.revision() == rev
        with pytest.raises(Conflict):
            rs.update_status(made, check_version=True)


class TestApply:
    def test_created_configured_unchanged(self, rs: ResourceStore) -> None:
        first = rs.apply([ns("prod"), pod("a", "prod", app="web"), netpol("deny", "prod")])
        assert [a for _, a in first] == ["created", "created", "created"]
        rev = rs.revision()
        assert all(o.metadata.resource_version == str(rev) for o, _ in first)
        again = rs.apply([ns("prod"), pod("a", "prod", app="web"), netpol("deny", "prod")])
        assert [a for _, a in again] == ["unchanged"] * 3
        assert rs.revision() == rev  # nothing written
        assert [o for o, _ in again] == [o for o, _ in first]
        third = rs.apply([ns("prod"), pod("a", "prod", image="httpd", app="web"), netpol("deny", "prod")])
        assert [a for _, a in third] == ["unchanged", "configured", "unchanged"]
        assert third[1][0].metadata.uid == first[1][0].metadata.uid

    def test_server_metadata_and_status_in_the_input_do_not_count(self, rs: ResourceStore) -> None:
        (made, _), = rs.apply([pod("a", app="web")])
        dump = made.model_copy(update={"status": made.status.model_copy(update={"phase": "Failed"})})  # type: ignore[attr-defined]
        dump = dump.with_meta(uid="00000000-0000-0000-0000-000000000000", resource_version="999", generation=7)
        (kept, action), = rs.apply([dump])
        assert action == "unchanged" and kept == made

    def test_provenance_annotation_alone_is_refreshed_but_unchanged(self, rs: ResourceStore) -> None:
        rs.apply([pod("a").with_meta(annotations={"podnet.io/source": "a.yaml:1"})])
        (obj, action), = rs.apply([pod("a").with_meta(annotations={"podnet.io/source": "b.yaml:7"})])
        assert action == "unchanged"
        assert rs.get(Pod, "a").metadata.annotations == {"podnet.io/source": "b.yaml:7"}  # type: ignore[union-attr]

    def test_apply_keeps_the_stored_status(self, rs: ResourceStore) -> None:
        rs.create(pod("a", status={"phase": "Running", "podIP": "10.0.0.3"}))
        (obj, action), = rs.apply([pod("a", image="httpd")])
        assert action == "configured" and obj.status.pod_ip == "10.0.0.3"  # type: ignore[attr-defined]

    def test_missing_namespace_fails_everything(self, rs: ResourceStore) -> None:
        rs.apply([pod("keep")])
        before = state(rs)
        with pytest.raises(NotFound) as info:
            rs.apply([pod("new"), pod("keep", image="changed"), pod("x", "staging"), netpol("p", "qa")])
        text = str(info.value)
        assert 'namespaces "staging" not found (needed by Pod staging/x)' in text
        assert 'namespaces "qa" not found (needed by NetworkPolicy qa/p)' in text
        assert "nothing was applied" in text and "include it in the same apply" in text
        assert state(rs) == before  # revision and contents identical

    def test_duplicates_fail_everything(self, rs: ResourceStore) -> None:
        before = state(rs)
        with pytest.raises(PodnetError, match="appears twice"):
            rs.apply([pod("a"), pod("b"), pod("a", image="other")])
        assert state(rs) == before

    def test_large_apply_is_one_revision(self, rs: ResourceStore) -> None:
        objs = [ns("bulk")] + [pod(f"p{i:03d}", "bulk", app=str(i % 7)) for i in range(200)]
        rev = rs.revision()
        result = rs.apply(objs)
        assert rs.revision() == rev + 1
        assert {a for _, a in result} == {"created"}
        again = rs.apply(objs[:1] + [pod(f"p{i:03d}", "bulk", app="x" if i == 5 else str(i % 7)) for i in range(200)])
        assert [a for _, a in again].count("configured") == 1 and rs.revision() == rev + 2

    def test_a_concurrent_status_report_is_not_lost(self, backend: Backend, rs: ResourceStore) -> None:
        """An agent reports status between apply's read and its transaction: apply retries."""
        rs.apply([pod("a", app="v1")])
        agent = ResourceStore(backend.open())
        racing = RacingStore(rs.kv, lambda: agent.update_status(pod("a", status={"phase": "Running", "podIP": "10.1.1.1"})))
        (obj, action), = ResourceStore(racing).apply([pod("a", app="v2")])
        assert racing.fired and racing.failed_txns == 1
        assert action == "configured"
        final = rs.get(Pod, "a")
        assert final.labels == {"app": "v2"} and final.status.pod_ip == "10.1.1.1"  # type: ignore[union-attr]
        assert final == obj


class RacingStore:
    """A real store with one concurrent write slipped in just before the first transaction."""

    def __init__(self, inner: Store, race: Callable[[], object]) -> None:
        self.inner, self.race, self.fired, self.failed_txns = inner, race, False, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def txn(self, compares, ops):  # type: ignore[no-untyped-def]
        if not self.fired:
            self.fired = True
            self.race()
        result = self.inner.txn(compares, ops)
        self.failed_txns += not result.succeeded
        return result


class TestDelete:
    def test_delete_is_idempotent(self, rs: ResourceStore) -> None:
        rs.create(pod("a"))
        assert rs.delete(Pod, "a") is True
        assert rs.delete(Pod, "a") is False
        assert rs.get(Pod, "a") is None

    def test_deleting_a_namespace_deletes_its_objects(self, rs: ResourceStore) -> None:
        rs.apply([ns("prod"), ns("dev"), pod("a", "prod"), netpol("np", "prod"), pod("a", "dev")])
        assert rs.delete(Namespace, "prod") is True
        assert rs.list(Pod, "prod") == [] and rs.list(NetworkPolicy) == []
        assert [p.ref for p in rs.list(Pod)] == ["dev/a"]
        with pytest.raises(NotFound):
            rs.create(pod("b", "prod"))

    def test_an_object_created_while_its_namespace_is_deleted_goes_too(self, rs: ResourceStore) -> None:
        rs.apply([ns("prod")])  # empty when read: only a sweep after the txn can catch the late one
        other = ResourceStore(rs.kv)
        racing = RacingStore(rs.kv, lambda: other.create(pod("late", "prod")))
        assert ResourceStore(racing).delete(Namespace, "prod") is True
        assert racing.fired and racing.failed_txns == 0  # the late create slipped past the compares
        assert rs.list(Pod, "prod") == [] and rs.get(Namespace, "prod") is None

    def test_delete_many_is_all_or_nothing(self, rs: ResourceStore) -> None:
        rs.apply([pod("a"), pod("b")])
        before = state(rs)
        with pytest.raises(NotFound, match='pods "zz" not found; nothing was deleted'):
            rs.delete_many([(Pod, "a", None), (Pod, "zz", "default"), (Pod, "b", None)], missing_ok=False)
        assert state(rs) == before
        gone = rs.delete_many([pod("a"), (Pod, "zz", None), (Pod, "b", "default")])
        assert [g.name if g else None for g in gone] == ["a", None, "b"]
        assert rs.revision() == before[0] + 1
        assert gone[0].metadata.resource_version == str(rs.revision())  # type: ignore[union-attr]

    def test_standard_namespaces_are_protected(self, rs: ResourceStore) -> None:
        for name in ("default", "kube-system"):
            with pytest.raises(PodnetError, match="may not be deleted"):
                rs.delete(Namespace, name)


class TestSnapshotAndWatch:
    def test_snapshot_is_one_revision_of_everything(self, rs: ResourceStore) -> None:
        rs.apply([ns("prod"), pod("a", "prod"), pool("p", "10.244.0.0/16")])
        rs.kv.create("/podnet/ipam/blocks/10.244.0.0-26", {"node": "n1"})
        snap = rs.snapshot()
        assert snap.revision == rs.revision()
        assert [n.name for n in snap.of(Namespace)] == ["default", "kube-system", "prod"]
        assert snap.get(Pod, "a", "prod") is not None and snap.get(Pod, "a") is None
        assert [p.name for p in snap.of(IPPool)] == ["p"]
        assert snap.raw == {"/podnet/ipam/blocks/10.244.0.0-26": {"node": "n1"}}
        with pytest.raises(AttributeError):  # a frozen dataclass
            snap.revision = 0  # type: ignore[misc]

    def test_watch_reports_added_modified_deleted_and_resumes(self, rs: ResourceStore) -> None:
        start = rs.revision() + 1
        rs.apply([pod("a"), netpol("np")])
        rs.update(pod("a", app="x"))
        rs.delete(Pod, "a")
        seen = [(t, o.kind, o.name, o.metadata.resource_version) for t, o in rs.watch(start, timeout=quiet(rs.kv))]
        assert seen == [("ADDED", "Pod", "a", str(start)), ("ADDED", "NetworkPolicy", "np", str(start)),
                        ("MODIFIED", "Pod", "a", str(start + 1)), ("DELETED", "Pod", "a", str(start + 2))]
        only = [(t, o.name) for t, o in rs.watch(start, timeout=quiet(rs.kv), kinds=[NetworkPolicy])]
        assert only == [("ADDED", "np")]
        assert [t for t, _ in rs.watch(start + 2, timeout=quiet(rs.kv))] == ["DELETED"]


class TestApplyResults:
    def test_apply_returns_exactly_what_get_reads(self, rs: ResourceStore) -> None:
        dump = pod("d", app="x").with_meta(managed_fields=[{"manager": "kubectl"}], self_link="/api/v1/x",
                                            uid="u-1", generation=9, creation_timestamp="2020-01-01T00:00:00Z")
        objs: list[Resource] = [ns("team", a="b"), pod("a", "team", app="web"), netpol("np", "team"), dump,
                                pool("p", "10.9.0.0/16")]
        for round_ in range(3):
            if round_ == 2:
                objs[1] = pod("a", "team", app="changed")
                rs.update_status(pod("d", status={"phase": "Running"}))
            for obj, action in rs.apply(objs):
                stored = rs.get(type(obj), obj.name, obj.metadata.namespace)
                assert obj == stored, (round_, action, obj.name)
        assert rs.get(Pod, "d").metadata.uid != "u-1"  # type: ignore[union-attr]


class TestOrdering:
    def test_lists_and_snapshots_sort_by_namespace_then_name(self, rs: ResourceStore) -> None:
        rs.apply([ns("a"), ns("a-b"), pod("z", "a"), pod("y", "a-b"), pod("x", "a")])
        expected = ["a/x", "a/z", "a-b/y"]
        assert [p.ref for p in rs.list(Pod)] == expected
        snap = rs.snapshot()
        assert [p.ref for p in snap.of(Pod)] == expected
        assert snap.get(Pod, "y", "a-b") is not None and snap.get(Namespace, "a-b") is not None
