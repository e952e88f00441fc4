"""Observability benchmark (the metrics part), every figure side by side in one run:

  1. exposing 10,000 rule series (5,000 rules x packets and bytes) in process, CPU time: the
     policy loop's collector writing its text (telemetry.text) vs the same series as
     prometheus_client MetricFamily samples and as a labelled Counter, plain and gzip-compressed
     as Prometheus asks for it;
  2. a real Prometheus (Debian's) scraping two policy-table endpoints at once at a 1 s interval,
     with a 5,000-rule table read from the kernel on every scrape, side by side: the reader
     decoding every rule message (as before) and the one decoding each rule once (the memo): p50/p99/max of
     scrape_duration_seconds (wall clock, so the machine's load shows: the load average is
     printed) and the failed scrapes over the run (goal: p99 <= 100 ms, 0 failed;
     ``--duration 600`` for the 10-minute run); and the CPU one scrape costs the process
     (listing the kernel's table, the text, gzip), which load does not inflate;
  3. the CPU cost of metrics in busy loops, on vs off: the loop runner with an empty pass (the
     most metrics can weigh), and the policy loop's full pass (render, diff, commit) with the
     endpoint scraped every second.

Run as root: .venv/bin/python bench/observe.py [--duration SECONDS] [--rules N] [--json FILE]
"""
from __future__ import annotations

import argparse
import gzip
import json
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


#: the two endpoints scraped side by side: the table reader decoding every rule message on every
#: scrape (as before), and the one decoding each rule once and then reading only its counter
READERS = {"decode-all": (False, 9092), "memo": (True, 9093)}


def prometheus_scrape(ns: str, rules: int, duration: float, workdir: str) -> dict[str, Any]:
    NftApplier(ns).sync(big_table(rules))
    telemetries: dict[str, PromTelemetry] = {}
    servers = []
    out: dict[str, Any] = {}
    for job, (memo, port) in READERS.items():
        telemetry = telemetries[job] = PromTelemetry()
        reader = TableReader(POLICY_TABLE, ns, memo=memo)
        telemetry.register(PolicyTableCollector(reader.read, str(POLICY_TABLE)))
        cpu = []
        for _ in range(30):  # what one scrape costs the process: list the table, write the text, gzip it
            t0 = time.thread_time()
            gzip.compress(telemetry.exposition(), compresslevel=1)
            cpu.append(time.thread_time() - t0)
        out[job] = {"cpu_p50": statistics.median(cpu), "cpu_p99": pct(cpu, 99)}
        with netns.enter(ns):  # the listening socket lives in the namespace, as a node's does
            servers.append(serve(telemetry, port, "127.0.0.1"))
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs: [\n"
                + ",\n".join(f"  {{job_name: {job}, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}"
                              for job, (_, port) in READERS.items()) + "]\n")
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
                if len(query("up")) == len(READERS):
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

        for job in READERS:
            sel = f'{{job="{job}"}}'
            out[job].update({
                "scrapes": scalar(f"count_over_time(up{sel}[{window}])"),
                "failed": scalar(f"count_over_time(up{sel}[{window}]) - sum_over_time(up{sel}[{window}])"),
                "samples": scalar(f"scrape_samples_scraped{sel}"),
                "p50": scalar(f"quantile_over_time(0.5, scrape_duration_seconds{sel}[{window}])"),
                "p99": scalar(f"quantile_over_time(0.99, scrape_duration_seconds{sel}[{window}])"),
                "max": scalar(f"max_over_time(scrape_duration_seconds{sel}[{window}])")})
        out["duration_s"], out["load_average"] = duration, os.getloadavg()[0]
        return out
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()
        for server in servers:
            server.close()


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
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark builds a network namespace")
    out: dict[str, Any] = {}

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
        print(f"\n== 2. Prometheus scraping a {args.rules:,}-rule table (read from the kernel) every 1 s "
              f"for {args.duration:.0f} s")
        out["prometheus"] = p = prometheus_scrape(ns, args.rules, args.duration, workdir)
        print(f"   {'':12}{'scrapes':>8}{'failed':>8}{'samples':>9}{'p50':>10}{'p99':>10}{'max':>10}"
              f"{'CPU p50':>10}{'CPU p99':>10}")
        for job in READERS:
            j = p[job]
            print(f"   {job:12}{j['scrapes']:8.0f}{j['failed']:8.0f}{j['samples']:9.0f}{ms(j['p50']):>10}{ms(j['p99']):>10}"
                  f"{ms(j['max']):>10}{ms(j['cpu_p50']):>10}{ms(j['cpu_p99']):>10}")
        d, m = p["decode-all"], p["memo"]
        print(f"   memo / decode-all: scrape p99 {m['p99'] / d['p99']:.2f}x, CPU per scrape {m['cpu_p50'] / d['cpu_p50']:.2f}x "
              f"(goal p99 <= 100 ms, 0 failed; both scraped at once; load average {p['load_average']:.1f} "
              f"on {os.cpu_count()} cores, a shared machine)")
        print("   (CPU: listing the kernel's table + text + gzip in the process, which load does not inflate)")

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
    finally:
        netns.remove(ns)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
