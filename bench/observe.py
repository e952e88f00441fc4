"""Observability benchmark (the metrics part), every figure side by side in one run:

  1. exposing 10,000 rule series (5,000 rules x packets and bytes) in process, CPU time: the
     policy loop's collector writing its text (telemetry.text) vs the same series as
     prometheus_client MetricFamily samples and as a labelled Counter, plain and gzip-compressed
     as Prometheus asks for it;
  2. a real Prometheus (Debian's) scraping policy-table endpoints at once at a 1 s interval (each
     in a process of its own, as each node's policy loop is), with a 5,000-rule table read from
     the kernel, side by side: the table read inside each scrape
     (``memo``: the reader decoding each rule once, only its counter after that) and read ahead of
     the scrape, which serves the last snapshot, encoded once (``prefetched``,
     telemetry.snapshot); ``--readers decode-all,...`` adds the reader decoding every rule
     message on every scrape; ``static`` serves the table's text read once, as fixed
     bytes: the floor Prometheus and the machine set: p50/p99/max of
     scrape_duration_seconds (wall clock, so the machine's load shows: the load average is
     printed) and the failed scrapes over the run (goal: p99 <= 100 ms, 0 failed;
     ``--duration 600`` for the 10-minute run); and the CPU one scrape costs the process
     (listing the kernel's table, the text, gzip), which load does not inflate;
  3. the CPU cost of metrics in busy loops, on vs off: the loop runner with an empty pass (the
     most metrics can weigh), and the policy loop's full pass (render, diff, commit) with the
     endpoint scraped every second.

Run as root: .venv/bin/python bench/observe.py [--duration SECONDS] [--rules N] [--parts 1,2,3]
[--readers memo,prefetched,static] [--json FILE]
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import prometheus_client  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from podnet.agent.policy import PolicyReconciler  # noqa: E402
from podnet.agent.runner import Changes, LoopRunner, Timing  # noqa: E402
from podnet.dataplane.nft.counts import RuleCount, TableCounts  # noqa: E402
from podnet.dataplane.nft.expr import ACCEPT, COUNTER, DROP, match, payload  # noqa: E402
from podnet.dataplane.nft.model import POLICY_TABLE, NftChain, NftRule, NftTable  # noqa: E402
from podnet.dataplane.nft.stats import policy_table_stats  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.kernel.nft.apply import NftApplier  # noqa: E402
from podnet.kernel.nft.dump import TableReader  # noqa: E402
from podnet.model import Namespace, NetworkPolicy, Node, Pod  # noqa: E402
from podnet.store.open import open_store_url  # noqa: E402
from podnet.telemetry import NULL, Telemetry  # noqa: E402
from podnet.telemetry.dataplane import DataplaneMetrics  # noqa: E402
from podnet.telemetry.loops import LoopMetrics  # noqa: E402
from podnet.telemetry.policy_table import PolicyTableCollector, register_policy_table  # noqa: E402
from podnet.telemetry.prom import PromTelemetry, serve  # noqa: E402
from podnet.telemetry.snapshot import PrefetchedText  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


# --- 1. exposition in process ------------------------------------------------------------------


def listing(rules: int) -> TableCounts:
    counted = [RuleCount(f"pi-{i // 10:05x}", f"{i:08x} ns{i % 50}/pol{i // 10} spec.ingress[{i % 10}].from[0] ports",
                         "accept" if i % 2 else "drop", i * 7, i * 700) for i in range(rules)]
    return TableCounts(sorted({r.chain for r in counted}), rules, counted)


def exposition(rules: int, reps: int) -> dict[str, Any]:
    counts = listing(rules)
    text = PromTelemetry(runtime=False)
    collector = PolicyTableCollector(lambda maps: counts, "inet podnet")
    text.register(collector)
    families = CollectorRegistry()

    class AsFamilies:
        def collect(self) -> Any:
            from prometheus_client.core import CounterMetricFamily

            stats = policy_table_stats(counts)
            packets = CounterMetricFamily("podnet_policy_rule_packets", "x", labels=["chain", "rule", "verdict"])
            size = CounterMetricFamily("podnet_policy_rule_bytes", "x", labels=["chain", "rule", "verdict"])
            for key, (p, b) in stats.by_rule.items():
                packets.add_metric(list(key), p)
                size.add_metric(list(key), b)
            yield from (packets, size)

    families.register(AsFamilies())  # type: ignore[arg-type]
    registry = CollectorRegistry()
    prometheus_client.disable_created_metrics()
    labelled = prometheus_client.Counter("podnet_policy_rule_packets", "x", ["chain", "rule", "verdict"],
                                         registry=registry)
    labelled_bytes = prometheus_client.Counter("podnet_policy_rule_bytes", "x", ["chain", "rule", "verdict"],
                                               registry=registry)
    for r in counts.counted:
        labelled.labels(r.chain, r.comment[9:], r.verdict).inc(r.packets)
        labelled_bytes.labels(r.chain, r.comment[9:], r.verdict).inc(r.bytes)

    def cpu(fn: Any) -> dict[str, float]:
        took = []
        for _ in range(reps):
            t0 = time.thread_time()
            fn()
            took.append(time.thread_time() - t0)
        return {"p50": statistics.median(took), "p99": pct(took, 99)}

    body = text.exposition()
    return {"series": body.count(b"\npodnet_policy_rule_"), "bytes": len(body),
            "text": cpu(text.exposition),
            "text_gzip": cpu(lambda: gzip.compress(text.exposition(), compresslevel=1)),
            "metric_families": cpu(lambda: prometheus_client.generate_latest(families)),
            "labelled_counter": cpu(lambda: prometheus_client.generate_latest(registry)),
            "labelled_counter_gzip": cpu(lambda: gzip.compress(prometheus_client.generate_latest(registry),
                                                               compresslevel=1))}


# --- 2. a real Prometheus scraping the policy loop's endpoint ----------------------------------------


def big_table(rules: int) -> NftTable:
    chains = {}
    for c in range(rules // 10):
        name = f"pi-{c:05x}"
        chains[name] = NftChain(name, tuple(
            NftRule.make([match(payload("ip", "saddr"), f"10.{c // 250 % 250}.{c % 250}.{r + 1}"), COUNTER,
                          ACCEPT if r % 2 else DROP], f"ns{c % 50}/pol{c} spec.ingress[{r}].from[0]")
            for r in range(10)))
    return NftTable(POLICY_TABLE.family, POLICY_TABLE.name, sets={}, maps={}, chains=chains)


#: the endpoints that can be scraped side by side: (reader's memo, read ahead of the scrape, port):
#: the table reader decoding every rule message in every scrape (the first reader), the one
#: decoding each rule once and then reading only its counter, in every scrape (the memo), and
#: the memo's reads done ahead of the scrape, which serves the last snapshot (telemetry.snapshot)
#: (``static``: the same text read once and then served as fixed bytes: what Prometheus and the
#: machine take for 10,000 series whatever the endpoint does, the floor)
READERS = {"decode-all": (False, False, 9092), "memo": (True, False, 9093), "prefetched": (True, True, 9094),
           "static": (True, False, 9095)}


class Static:
    """The table's text read once, then served as the same bytes on every scrape."""

    def __init__(self, collector: PolicyTableCollector) -> None:
        self.body = collector.expose().encode()

    def expose(self) -> bytes:
        return self.body


class Measured(PrefetchedText):
    """Also keeps the age of the values each scrape is served (now less the start of their read)."""

    def __init__(self, collector: PolicyTableCollector) -> None:
        super().__init__(collector)
        self.ages: list[float] = []

    def expose(self) -> bytes:
        body = super().expose()
        if self.snapshot is not None:
            self.ages.append(self.clock() - self.snapshot.taken)
        return body


def endpoint(ns: str, job: str, conn: Any) -> None:
    """One endpoint in a process of its own, as each node's policy loop is: sends what one
    scrape costs it in CPU, serves until told to stop, then sends what the read-ahead did."""
    memo, ahead, port = READERS[job]
    telemetry = PromTelemetry()
    reader = TableReader(POLICY_TABLE, ns, memo=memo)
    collector = PolicyTableCollector(reader.read, str(POLICY_TABLE))
    served = Measured(collector) if ahead else None
    telemetry.register(served if served is not None else Static(collector) if job == "static" else collector)
    telemetry.exposition()  # the first read (the memo's decoding, or the first snapshot)
    cpu = []
    for _ in range(30):  # what one scrape costs the process: list the table (unless read ahead), text, gzip
        t0 = time.thread_time()
        gzip.compress(telemetry.exposition(), compresslevel=1)
        cpu.append(time.thread_time() - t0)
    if served is not None:  # count from Prometheus' first scrape on
        served.ages.clear()
        served.reads = 0
    with netns.enter(ns):  # the listening socket lives in the namespace, as a node's does
        server = serve(telemetry, port, "127.0.0.1")
    conn.send({"cpu_p50": statistics.median(cpu), "cpu_p99": pct(cpu, 99)})
    conn.recv()
    server.close()
    result: dict[str, Any] = {}
    if served is not None:
        served.close()
        ages = served.ages
        result = {"reads": served.reads, "served": len(ages)}
        if ages:
            result["ages"] = {"p50": statistics.median(ages), "p99": pct(ages, 99), "max": max(ages)}
    conn.send(result)


def prometheus_scrape(ns: str, rules: int, duration: float, workdir: str, jobs: list[str]) -> dict[str, Any]:
    NftApplier(ns).sync(big_table(rules))
    readers = {job: READERS[job] for job in jobs}
    out: dict[str, Any] = {}
    fork = multiprocessing.get_context("fork")
    children: dict[str, tuple[Any, Any]] = {}
    try:
        for job in jobs:
            here, there = fork.Pipe()
            proc = fork.Process(target=endpoint, args=(ns, job, there), daemon=True)
            proc.start()
            children[job] = (proc, here)
            out[job] = here.recv()
        return _scraped(ns, duration, workdir, readers, out, children)
    finally:
        for proc, conn in children.values():
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=10)
            conn.close()


def _scraped(ns: str, duration: float, workdir: str, readers: dict[str, tuple[bool, bool, int]],
             out: dict[str, Any], children: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs: [\n"
                + ",\n".join(f"  {{job_name: {job}, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}"
                              for job, (_, _, port) in readers.items()) + "]\n")
    log = open(os.path.join(workdir, "prometheus.log"), "w")
    prom = subprocess.Popen(netns.nsenter_argv(ns, [shutil.which("prometheus") or "prometheus",
                                                    f"--config.file={config}",
                                                    f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
                                                    "--web.listen-address=127.0.0.1:9090"]),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def query(q: str) -> list[dict[str, Any]]:
            url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": q})
            with netns.enter(ns), urllib.request.urlopen(url, timeout=5) as res:
                result: list[dict[str, Any]] = json.load(res)["data"]["result"]
                return result

        deadline = time.monotonic() + 30
        while True:
            try:
                if len(query("up")) == len(readers):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prometheus did not start (see its log)")
            time.sleep(0.2)
        time.sleep(duration)
        window = f"{int(duration)}s"

        def scalar(q: str) -> float:
            res = query(q)
            return float(res[0]["value"][1]) if res else float("nan")

        for job in readers:
            sel = f'{{job="{job}"}}'
            out[job].update({
                "scrapes": scalar(f"count_over_time(up{sel}[{window}])"),
                "failed": scalar(f"count_over_time(up{sel}[{window}]) - sum_over_time(up{sel}[{window}])"),
                "samples": scalar(f"scrape_samples_scraped{sel}"),
                "p50": scalar(f"quantile_over_time(0.5, scrape_duration_seconds{sel}[{window}])"),
                "p99": scalar(f"quantile_over_time(0.99, scrape_duration_seconds{sel}[{window}])"),
                "max": scalar(f"max_over_time(scrape_duration_seconds{sel}[{window}])")})
        for job, (_, conn) in children.items():
            conn.send("stop")
            out[job].update(conn.recv())
        out["duration_s"], out["load_average"] = duration, os.getloadavg()[0]
        return out
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()


# --- 3. CPU of metrics in busy loops -------------------------------------------------------------


class Never(Changes):
    def wait(self, revision: int, timeout: float) -> bool:
        return True  # a change every time: the runner goes straight to the next pass


def empty_loop_cpu(telemetry: Telemetry, passes: int) -> float:
    """CPU seconds per pass of the loop runner with a pass that does nothing."""
    done = [0]
    stop = threading.Event()

    def run_pass() -> int:
        done[0] += 1
        if done[0] >= passes:
            stop.set()
        return done[0]

    runner = LoopRunner("bench", run_pass, Never(), Timing(), stop=stop, metrics=LoopMetrics(telemetry, "bench"))
    t0 = time.process_time()
    runner.run()
    return (time.process_time() - t0) / passes


def policy_loop_cpu(ns: str, telemetry: Telemetry, passes: int, scrape: bool) -> float:
    """CPU seconds per full policy pass (render, diff against the model, commit) on a table of
    40 pods and 20 policies, a pod relabelled every pass; with the endpoint scraped every second."""
    store = open_store_url("memory://")
    store.apply([Namespace.model_validate({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}),
                 Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})])
    for i in range(40):
        pod = store.create(Pod.model_validate({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "b",
                                                            "labels": {"app": f"a{i % 20}"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
        store.update_status(Pod.model_validate({**pod.to_dict(), "status": {"phase": "Running",
                                                                             "podIP": f"10.244.0.{i + 2}"}}))
    store.apply([NetworkPolicy.model_validate({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": f"np{j}", "namespace": "b"},
        "spec": {"podSelector": {"matchLabels": {"app": f"a{j}"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": f"a{(j + 1) % 20}"}}}], "ports": [{"port": 80 + j}]}]}})
        for j in range(20)])
    reconciler = PolicyReconciler("n1", netns=ns, metrics=DataplaneMetrics(telemetry, "inet podnet"))
    if telemetry.enabled:
        register_policy_table(telemetry, POLICY_TABLE, ns)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(1.0):
            assert isinstance(telemetry, PromTelemetry)
            telemetry.exposition()

    thread = threading.Thread(target=scraper, daemon=True)
    if scrape and telemetry.enabled:
        thread.start()
    try:
        reconciler.reconcile(store.snapshot())
        t0 = time.process_time()
        for i in range(passes):
            pod = store.get(Pod, "p0", "b")
            assert pod is not None
            store.update(pod.with_meta(labels={"app": f"a{i % 20}"}))
            assert reconciler.reconcile(store.snapshot()).error is None
        return (time.process_time() - t0) / passes
    finally:
        stop.set()
        NftApplier(ns).remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds Prometheus scrapes (600: the 10-minute run)")
    ap.add_argument("--rules", type=int, default=5000, help="counted rules (two series each)")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run (comma-separated)")
    ap.add_argument("--readers", default="memo,prefetched,static",
                    help=f"part 2's endpoints, scraped side by side: some of {','.join(READERS)}")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    parts, jobs = set(args.parts.split(",")), args.readers.split(",")
    if not parts <= {"1", "2", "3"} or not jobs or not set(jobs) <= set(READERS) or len(set(jobs)) != len(jobs):
        raise SystemExit(f"--parts takes some of 1,2,3 and --readers some of {','.join(READERS)}")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark builds a network namespace")
    out: dict[str, Any] = {}

    if "1" in parts:
        print(f"== 1. exposing {2 * args.rules:,} rule series in process (generate_latest)")
        out["exposition"] = e = exposition(args.rules, 30)
        print(f"   series {e['series']:,}, {e['bytes'] / 1e6:.1f} MB")
        print(f"   {'CPU per scrape':24}{'p50':>10}{'p99':>10}")
        for key in ("text", "metric_families", "labelled_counter", "text_gzip", "labelled_counter_gzip"):
            print(f"   {key:24}{ms(e[key]['p50']):>10}{ms(e[key]['p99']):>10}")
        print(f"   text / MetricFamily: {e['text']['p50'] / e['metric_families']['p50']:.2f}x   "
              f"text / labelled Counter: {e['text']['p50'] / e['labelled_counter']['p50']:.2f}x")

    ns = f"bench-observe-{secrets.token_hex(3)}"
    netns.create(ns)
    workdir = tempfile.mkdtemp(prefix="podnet-observe-")
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        if "2" in parts:
            prometheus_part(ns, args.rules, args.duration, workdir, jobs, out)
        if "3" in parts:
            busy_loops(ns, out)
    finally:
        netns.remove(ns)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def prometheus_part(ns: str, rules: int, duration: float, workdir: str, jobs: list[str], out: dict[str, Any]) -> None:
    print(f"\n== 2. Prometheus scraping a {rules:,}-rule table (read from the kernel) every 1 s for {duration:.0f} s")
    out["prometheus"] = p = prometheus_scrape(ns, rules, duration, workdir, jobs)
    print(f"   {'':12}{'scrapes':>8}{'failed':>8}{'samples':>9}{'p50':>10}{'p99':>10}{'max':>10}"
          f"{'CPU p50':>10}{'CPU p99':>10}")
    for job in jobs:
        j = p[job]
        print(f"   {job:12}{j['scrapes']:8.0f}{j['failed']:8.0f}{j['samples']:9.0f}{ms(j['p50']):>10}{ms(j['p99']):>10}"
              f"{ms(j['max']):>10}{ms(j['cpu_p50']):>10}{ms(j['cpu_p99']):>10}")
    for job in jobs[1:]:
        a, b = p[job], p[jobs[0]]
        print(f"   {job} / {jobs[0]}: scrape p50 {a['p50'] / b['p50']:.2f}x, p99 {a['p99'] / b['p99']:.2f}x, "
              f"CPU per scrape {a['cpu_p50'] / b['cpu_p50']:.2f}x")
    if "prefetched" in p and "ages" in p["prefetched"]:
        f = p["prefetched"]
        print(f"   prefetched: {f['reads']} reads for {f['served']} scrapes; age of the values served p50 "
              f"{ms(f['ages']['p50'])}, p99 {ms(f['ages']['p99'])}, max {ms(f['ages']['max'])} (bound: 1 s)")
    print(f"   (goal p99 <= 100 ms, 0 failed; all scraped at once by one Prometheus; load average "
          f"{p['load_average']:.1f} on {os.cpu_count()} cores, a shared machine)")
    print("   (CPU: what the scrape costs the process: listing the kernel's table unless read ahead, text, gzip)")


def busy_loops(ns: str, out: dict[str, Any]) -> None:
    print("\n== 3. CPU of metrics in busy loops (per pass; on / off)")
    runs = []
    for order in (0, 1, 0, 1):  # interleaved, to spread the machine's noise over both
        on, off = PromTelemetry(), NULL
        first, second = (on, off) if order == 0 else (off, on)
        a, b = empty_loop_cpu(first, 20000), empty_loop_cpu(second, 20000)
        runs.append((a, b) if order == 0 else (b, a))
    empty_on = statistics.median(r[0] for r in runs)
    empty_off = statistics.median(r[1] for r in runs)
    print(f"   empty pass:        on {empty_on * 1e6:7.1f} us   off {empty_off * 1e6:7.1f} us   "
          f"+{(empty_on - empty_off) * 1e6:.1f} us per pass")
    full = [(policy_loop_cpu(ns, PromTelemetry(), 60, True), policy_loop_cpu(ns, NULL, 60, False))
            for _ in range(2)]
    full_on, full_off = statistics.median(f[0] for f in full), statistics.median(f[1] for f in full)
    print(f"   policy full pass:  on {ms(full_on):>9}   off {ms(full_off):>9}   on/off {full_on / full_off:.3f}x "
          "(on: also scraped every second)")
    out["cpu"] = {"empty_on": empty_on, "empty_off": empty_off, "policy_on": full_on, "policy_off": full_off}


if __name__ == "__main__":
    main()
