"""Store benchmark: SQLite write rate and latency (1 and 8 writer processes), cross-process
watch delivery latency, ResourceStore.apply of 10,000 objects against a plain sqlite3 INSERT
loop of the same rows in the same run, and side by side: apply and watch latency on a
three-member etcd cluster with TLS (loopback, data in /dev/shm) vs the embedded SQLite store.

Run: .venv/bin/python bench/store.py   (everything lives in a temporary directory, removed after)
     .venv/bin/python bench/store.py --only watch [--against TREE]
        watch delivery and the CPU of idle watchers, with --against also measured with another
        podnet tree's store (e.g. a `git worktree` of an older commit), interleaved in one run
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from podnet.model import Namespace, Pod  # noqa: E402
from podnet.store.open import open_backend, open_store_url  # noqa: E402
from podnet.store.resources import ResourceStore, key_for  # noqa: E402

WRITER = textwrap.dedent("""
    import json, sys, time
    from podnet.store.api import Put
    from podnet.store.open import open_backend
    store = open_backend(sys.argv[1])
    worker, count, start_at = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, start_at - time.time()))
    lat = []
    t0 = time.time()
    for i in range(count):
        t = time.perf_counter()
        store.txn([], [Put(f"/bench/{worker}/{i % 100}", {"i": i, "w": worker})])
        lat.append(time.perf_counter() - t)
    print(json.dumps({"start": t0, "end": time.time(), "lat": lat}))
""")

WATCHER = textwrap.dedent("""
    import json, sys, time
    from podnet.store.open import open_backend
    store = open_backend(sys.argv[1])
    last = int(sys.argv[3])
    print("ready", flush=True)
    out = []
    for ev in store.watch("/watch/", int(sys.argv[2]), timeout=30):
        out.append([ev.value["sent"], time.time()])
        if ev.revision >= last:
            break
    print(json.dumps(out), flush=True)
""")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def children(script: str, argv: list[list[str]], root: str = ROOT) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=root)
    # cwd too: ``-c`` puts the working directory first on the path, before PYTHONPATH
    return [subprocess.Popen([sys.executable, "-c", script, *a], stdout=subprocess.PIPE, text=True, env=env, cwd=root)
            for a in argv]


def bench_writers(tmp: str, writers: int, each: int) -> None:
    url = f"sqlite://{tmp}/writers{writers}.db"
    open_backend(url).close()  # create the schema before the clock starts
    start_at = time.time() + 0.5 + 0.15 * writers
    procs = children(WRITER, [[url, str(w), str(each), str(start_at)] for w in range(writers)])
    results = [json.loads(p.communicate()[0]) for p in procs]
    lat = [x for r in results for x in r["lat"]]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    print(f"sqlite writes, {writers} writer process{'es' if writers > 1 else ''}: "
          f"{len(lat) / span:,.0f} writes/s; latency p50 {pct(lat, 50) * 1e3:.2f} ms, "
          f"p90 {pct(lat, 90) * 1e3:.2f} ms, p99 {pct(lat, 99) * 1e3:.2f} ms ({len(lat)} writes)")


def bench_watch(tmp: str, count: int, root: str = ROOT) -> None:
    url = f"sqlite://{tmp}/watch.db"
    store = open_backend(url)
    start = store.revision() + 1
    proc, = children(WATCHER, [[url, str(start), str(start + count - 1)]], root)
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready"
    time.sleep(0.2)
    from podnet.store.api import Put
    gaps = random.Random(5)
    for i in range(count):
        store.txn([], [Put(f"/watch/{i % 50}", {"sent": time.time()})])
        time.sleep(gaps.uniform(0.002, 0.008))  # not periodic: a fixed gap can fall in step with a poll
    pairs = json.loads(proc.communicate()[0])
    lags = [recv - sent for sent, recv in pairs]
    store.close()
    print(f"cross-process watch delivery ({len(lags)} events, writes every 2-8 ms): "
          f"p50 {pct(lags, 50) * 1e3:.1f} ms, p99 {pct(lags, 99) * 1e3:.1f} ms, max {max(lags) * 1e3:.1f} ms")


IDLE_WATCHER = textwrap.dedent("""
    import sys, time
    from podnet.store.open import open_backend
    store = open_backend(sys.argv[1])
    print("ready", flush=True)
    t0 = time.process_time()
    for ev in store.watch("/idle/", store.revision() + 1, timeout=float(sys.argv[2])):
        pass
    print(time.process_time() - t0, flush=True)
""")


def bench_idle_watchers(tmp: str, watchers: int, seconds: float, root: str = ROOT) -> None:
    """CPU that watchers with nothing to deliver spend (what a lab's ~20 loops cost at rest),
    measured inside each process from its first wait to its idle timeout."""
    url = f"sqlite://{tmp}/idle.db"
    open_backend(url).close()
    procs = children(IDLE_WATCHER, [[url, str(seconds)] for _ in range(watchers)], root)
    cpu = [float(p.communicate()[0].split()[-1]) for p in procs]
    print(f"{watchers} idle watchers for {seconds:.0f} s: CPU {sum(cpu) / seconds * 100:.1f} % of a core in all "
          f"({sum(cpu) / watchers / seconds * 1e3:.2f} ms per second each)")


def watch_side_by_side(tmp: str, against: str) -> None:
    """Delivery and idle CPU, this tree and ``against`` interleaved, two rounds."""
    for round_ in (1, 2):
        for name, root in ((against, os.path.abspath(against)), ("this tree", ROOT)):
            print(f"-- round {round_}, {name}", flush=True)
            bench_watch(tmp, 300, root)
            bench_idle_watchers(tmp, 20, 20.0, root)


def small_pod(i: int) -> Pod:
    return Pod.model_validate({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"pod-{i:05d}", "namespace": "bench", "labels": {"app": f"a{i % 10}"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })


def bench_apply(tmp: str, count: int) -> None:
    objs = [Namespace.model_validate({"metadata": {"name": "bench"}})] + [small_pod(i) for i in range(count)]
    rs: ResourceStore = open_store_url(f"sqlite://{tmp}/apply.db")
    t = time.perf_counter()
    result = rs.apply(objs)
    t_apply = time.perf_counter() - t
    assert sum(a == "created" for _, a in result) == count + 1
    t = time.perf_counter()
    again = rs.apply(objs)
    t_again = time.perf_counter() - t
    assert {a for _, a in again} == {"unchanged"}
    rows = [(key_for(type(o), o.name, o.metadata.namespace), json.dumps(v, separators=(",", ":")))
            for o, v in ((o, r.to_dict()) for o, _ in result for r in [o])]
    rs.close()

    conn = sqlite3.connect(f"{tmp}/plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for key, value in rows:
        conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (key, value))
    conn.execute("COMMIT")
    t_plain = time.perf_counter() - t
    conn.close()
    print(f"apply of {count:,} Pods (+1 Namespace), one transaction: {t_apply * 1e3:,.0f} ms "
          f"({count / t_apply:,.0f} objects/s); re-apply, all unchanged: {t_again * 1e3:,.0f} ms")
    print(f"plain sqlite3 INSERT loop of the same {len(rows):,} rows, one transaction: {t_plain * 1e3:,.1f} ms; "
          f"apply / plain = {t_apply / t_plain:,.1f}x")


def apply_and_watch(rs: ResourceStore, watcher_kv: object, count: int) -> tuple[list[float], list[float]]:
    """``count`` one-Pod applies: each apply's latency, and how long from the apply's start until a
    watch in another client saw the Pod (etcd's watchers often see it before the writer's answer
    arrives, so this counts from the start)."""
    import threading

    seen: dict[str, float] = {}
    start = rs.revision() + 1
    done = threading.Event()

    def watch() -> None:
        for ev in watcher_kv.watch("/registry/pods/", start, timeout=None):  # type: ignore[attr-defined]
            seen[ev.key] = time.perf_counter()
            if len(seen) >= count:
                done.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.3)
    sent: dict[str, float] = {}
    lat = []
    for i in range(count):
        pod = small_pod(i)
        t = time.perf_counter()
        rs.apply([pod])
        lat.append(time.perf_counter() - t)
        sent[key_for(Pod, pod.name, "bench")] = t
        time.sleep(0.005)
    done.wait(30)
    return lat, [seen[k] - v for k, v in sent.items() if k in seen]


def bench_side_by_side(tmp: str, count: int) -> None:
    from podnet.testing.etcd_lab import client, loopback_cluster

    ns = Namespace.model_validate({"metadata": {"name": "bench"}})
    rows = []
    sqlite_rs = open_store_url(f"sqlite://{tmp}/side.db")
    sqlite_rs.apply([ns])
    watcher = open_backend(f"sqlite://{tmp}/side.db")
    rows.append(("SQLite (embedded)", *apply_and_watch(sqlite_rs, watcher, count)))
    watcher.close()
    sqlite_rs.close()
    with loopback_cluster(os.path.join(tmp, "etcd")) as cluster:
        etcd_rs = ResourceStore(client(cluster))
        etcd_rs.bootstrap()
        etcd_rs.apply([ns])
        watcher = client(cluster)
        rows.append(("etcd, 3 members, TLS", *apply_and_watch(etcd_rs, watcher, count)))
        watcher.close()
        etcd_rs.close()
    print(f"side by side, {count} one-Pod applies each, a watch in another client:")
    for name, lat, lag in rows:
        print(f"  {name:22s} apply p50 {pct(lat, 50) * 1e3:6.2f} ms  p99 {pct(lat, 99) * 1e3:6.2f} ms   "
              f"apply start → watch event p50 {pct(lag, 50) * 1e3:6.2f} ms  p99 {pct(lag, 99) * 1e3:6.2f} ms "
              f"({len(lag)} seen)")
    (_, sl, sw), (_, el, ew) = rows
    print(f"  etcd / SQLite: apply p50 {pct(el, 50) / pct(sl, 50):.1f}x, watch p50 {pct(ew, 50) / pct(sw, 50):.1f}x")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["watch"], default=None)
    ap.add_argument("--against", default="", help="with --only watch: another podnet tree, measured beside this one")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="podnet-bench-store-")
    try:
        if args.only == "watch":
            if args.against:
                watch_side_by_side(tmp, args.against)
            else:
                bench_watch(tmp, 300)
                bench_idle_watchers(tmp, 20, 20.0)
            return
        print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        bench_writers(tmp, 1, 3000)
        bench_writers(tmp, 8, 600)
        bench_watch(tmp, 300)
        bench_apply(tmp, 10_000)
        bench_side_by_side(tmp, 300)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
