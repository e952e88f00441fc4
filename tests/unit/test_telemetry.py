"""Metrics as Prometheus reads them: every family of every process passes ``promtool check
metrics`` with real samples in it, the control plane's gauges equal the store's counts, the
policy table's series follow its rules and counters, durations are histograms with sane
buckets, the loop runner and the CNI socket record what happened, and every metric is
documented."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podnet.agent.control import ControlLoop
from podnet.agent.routing_loop import RoutingPass
from podnet.agent.runner import LoopRunner, Timing
from podnet.cni.handler import Handler
from podnet.cni.plugin import via_agent
from podnet.cni.server import CniServer
from podnet.dataplane.nft.counts import RuleCount, TableCounts
from podnet.dataplane.nft.dispatch import POD_IFACES
from podnet.dataplane.nft.model import POLICY_TABLE, NftTable
from podnet.dataplane.nft.render import render
from podnet.dataplane.nft.stats import denied_by, policy_table_stats
from podnet.ipam.allocator import IPAM
from podnet.kernel.bird import parse_protocols, peer_rows
from podnet.model import IPPool, Namespace, NetworkPolicy, Node, Pod
from podnet.policy.cluster import ClusterState
from podnet.store.open import open_store_url
from podnet.telemetry import NULL
from podnet.telemetry.api import DURATION_BUCKETS, check_name
from podnet.telemetry.bgp import BgpCollector
from podnet.telemetry.cluster import ClusterCollector
from podnet.telemetry.cni import CniMetrics
from podnet.telemetry.dataplane import DataplaneMetrics
from podnet.telemetry.loops import LoopMetrics
from podnet.telemetry.policy_table import PolicyTableCollector
from podnet.telemetry.prom import PromTelemetry

from test_runner import FakeTime, Passes, ScriptedChanges

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
BIRDC = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     17:03:26.881
Mesh_192_168_10_72 BGP        ---        up     17:03:27.817  Established
Mesh_192_168_10_73 BGP        ---        up     17:03:27.817  Established
Node_192_168_10_74 BGP        ---        start  17:03:27.807  Active        Socket: Connection refused
"""


def samples(telemetry: PromTelemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) → value."""
    out = {}
    for family in text_string_to_metric_families(telemetry.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(got: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return got[(name, frozenset(labels.items()))]


# --- real inputs for the collectors -----------------------------------------------------------


def _pod(name: str, node: str, ip: str, labels: dict[str, str], phase: str = "Running") -> Pod:
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": "default", "labels": labels},
                               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
                               "status": {"phase": phase, "podIP": ip, "hostIP": "192.168.10.71"}})


DENY_ALL_BUT_CLIENT = NetworkPolicy.model_validate({
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "test-network-policy", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client"}}}], "ports": [{"port": 80}]}]}})


def policy_table() -> NftTable:
    """The n1 table of a small cluster: two web pods isolated by one policy, a client."""
    ns = Namespace.model_validate({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    pods = [_pod("web1", "n1", "10.244.0.2", {"app": "web"}), _pod("web2", "n1", "10.244.0.3", {"app": "web"}),
            _pod("client", "n1", "10.244.0.4", {"run": "client"}), _pod("far", "n2", "10.244.1.2", {"app": "web"})]
    return render(ClusterState.build([ns], pods, [DENY_ALL_BUT_CLIENT]), "n1")


def as_listed(table: NftTable) -> TableCounts:
    """What the kernel would list for ``table`` with rule i of the table having counted i packets."""
    counted, n = [], 0
    for chain in table.chains.values():
        for rule in chain.rules:
            n += 1
            expr = json.loads(rule.expr_json)
            if not any("counter" in e for e in expr):
                continue
            verdict = next((k for e in reversed(expr) for k in ("accept", "drop", "goto", "jump") if k in e), "")
            counted.append(RuleCount(chain.name, rule.comment, verdict, n, 100 * n))
    return TableCounts(list(table.chains), n, counted, {POD_IFACES: len(table.sets[POD_IFACES].elements)})


def cluster_store() -> Any:
    """A store with nodes, pods in every phase, a pool and IPAM allocations on two nodes."""
    store = open_store_url("memory://")
    store.apply([Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
                 for n in ("n1", "n2", "n3")])
    store.update_status(Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                                             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    store.apply([IPPool.model_validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                        "metadata": {"name": "default-ipv4-ippool"},
                                        "spec": {"cidr": "10.244.0.0/16", "blockSize": 26}}), DENY_ALL_BUT_CLIENT])
    phases = [("a", "n1", "Running"), ("b", "n1", "Running"), ("c", "n2", "Pending"), ("d", "", None),
              ("e", "n2", "Succeeded"), ("f", "n1", "Failed")]
    for name, node, phase in phases:
        created = store.create(Pod.model_validate({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **({"nodeName": node} if node else {})}}))
        if phase:
            store.update_status(Pod.model_validate({**created.to_dict(), "status": {"phase": phase}}))
    ipam = IPAM(store.kv)
    for i in range(70):  # more than one /26 on n1
        ipam.assign(f"net.c{i}.eth0", "n1", {"containerID": f"c{i}"})
    for i in range(3):
        ipam.assign(f"net.d{i}.eth0", "n2", {"containerID": f"d{i}"})
    return store


def every_metric(telemetry: PromTelemetry) -> None:
    """Every family any podnet process serves, with samples in it."""
    loop = LoopMetrics(telemetry, "policy-loop")
    loop.passes.inc()
    loop.failures.inc()
    loop.duration.observe(0.004)
    loop.woken_by_change.inc()
    loop.woken_by_resync.inc()
    loop.backoff.set(0.2)
    loop.last_success.set(1.7e9)
    dataplane = DataplaneMetrics(telemetry, str(POLICY_TABLE))
    dataplane.applied("full", 0.03)
    dataplane.applied("incremental", 0.002)
    for counter in (dataplane.failures, dataplane.resyncs, dataplane.drift):
        counter.inc()
    dataplane.revision.set(42)
    cni = CniMetrics(telemetry)
    cni.answered("ADD", 0.05, None)
    cni.answered("DEL", 0.01, 11)
    cni.in_flight.set(1)
    telemetry.register(PolicyTableCollector(lambda maps: as_listed(policy_table()), str(POLICY_TABLE)))
    telemetry.register(BgpCollector(lambda: peer_rows(parse_protocols(BIRDC))))
    store = cluster_store()
    counts = ClusterCollector()
    counts.reconcile(store.snapshot())
    telemetry.register(counts)
    ControlLoop(store, telemetry=telemetry).leaks_released.inc(2)

    class NoRouting:
        def facts(self, snapshot: Any) -> Any:
            return snapshot.revision

        def reconcile_facts(self, facts: Any) -> Any:
            from podnet.agent.routing import RoutingStatus
            return RoutingStatus("n1", "bgp", 0.0, routes=["10.244.1.0/26 via 192.168.10.72 dev eth0"])

    RoutingPass(store, NoRouting(), "n1", telemetry)()  # type: ignore[arg-type]


# --- the names and the format ------------------------------------------------------------------


@pytest.mark.parametrize("kind, name", [
    ("counter", "podnet_cni_errors"),  # Felix's mistake: a counter without _total
    ("gauge", "podnet_pods_total"),
    ("histogram", "podnet_apply_duration"),  # no unit
    ("histogram", "podnet_apply_duration_milliseconds"),
    ("gauge", "felix_active_local_endpoints"),  # not ours
    ("gauge", "podnet_Pods"),
])
def test_names_against_the_conventions_are_refused(kind: Any, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        check_name(kind, name)
    with pytest.raises(ValueError):
        NULL.counter(name, "x") if kind == "counter" else NULL.gauge(name, "x") if kind == "gauge" else \
            NULL.histogram(name, "x")


def test_a_name_is_one_family_and_adding_one_is_one_line() -> None:
    t = PromTelemetry(runtime=False)
    first = t.histogram("podnet_proxy_sync_duration_seconds", "Seconds one proxy sync took.", ("table",))
    assert t.histogram("podnet_proxy_sync_duration_seconds", "Seconds one proxy sync took.", ("table",)) is first
    first.labels("ip podnet-services").observe(0.01)
    assert value(samples(t), "podnet_proxy_sync_duration_seconds_count", table="ip podnet-services") == 1
    with pytest.raises(ValueError, match="exists as a histogram"):
        t.gauge("podnet_proxy_sync_duration_seconds", "x")


def test_every_family_passes_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (make setup installs it)"
    t = PromTelemetry()
    every_metric(t)
    text = t.exposition().decode()
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["podnet_loop_pass_duration_seconds"] == "histogram"
    assert families["podnet_dataplane_apply_duration_seconds"] == "histogram"
    assert families["podnet_cni_request_duration_seconds"] == "histogram"
    assert families["podnet_policy_rule_packets"] == "counter"
    assert families["podnet_policy_local_endpoints"] == "gauge"
    assert {"process_cpu_seconds_total", "python_info", "python_gc_collections_total"} <= {
        s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "_created" not in text


def test_promtool_would_catch_a_felix_style_counter() -> None:
    """The check above can fail: a counter without _total, as Felix exports them, is refused."""
    bad = "# HELP felix_int_dataplane_failures Failures.\n# TYPE felix_int_dataplane_failures counter\n" \
          "felix_int_dataplane_failures 1\n"
    res = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=bad,
                         capture_output=True, text=True)
    assert res.returncode != 0 and "_total" in res.stdout + res.stderr


def test_duration_buckets_span_a_millisecond_to_ten_seconds() -> None:
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))
    assert DURATION_BUCKETS[0] <= 0.001 and DURATION_BUCKETS[-1] >= 10
    assert all(b / a <= 2.5 for a, b in zip(DURATION_BUCKETS, DURATION_BUCKETS[1:]))  # no blind spans
    t = PromTelemetry(runtime=False)
    h = DataplaneMetrics(t, "inet podnet")
    for seconds in (0.0004, 0.003, 0.003, 0.2, 30.0):
        h.applied("full", seconds)
    got = samples(t)
    buckets = [(float(dict(labels)["le"]), v) for (name, labels), v in got.items()
               if name == "podnet_dataplane_apply_duration_seconds_bucket"]
    counts = [v for _, v in sorted(buckets)]
    assert counts == sorted(counts) and counts[-1] == 5  # cumulative, +Inf holds all
    assert dict(buckets)[0.001] == 1 and dict(buckets)[0.005] == 3 and dict(buckets)[10.0] == 4


def test_every_metric_is_documented() -> None:
    t = PromTelemetry(runtime=False)
    every_metric(t)
    text = DOCS.read_text()
    names = {f.name for f in text_string_to_metric_families(t.exposition().decode())}
    missing = sorted(n for n in names if f"`{n}" not in text)
    assert not missing, f"not in {DOCS.name}: {missing}"


# --- truth: the gauges are the store's counts --------------------------------------------------


def test_cluster_gauges_equal_the_store() -> None:
    store = cluster_store()
    t = PromTelemetry(runtime=False)
    counts = ClusterCollector()
    t.register(counts)
    counts.reconcile(store.snapshot())
    got = samples(t)
    pods = store.list(Pod)
    assert value(got, "podnet_store_objects", resource="pods") == len(pods) == 6
    assert value(got, "podnet_store_objects", resource="nodes") == len(store.list(Node)) == 3
    assert value(got, "podnet_store_objects", resource="networkpolicies.networking.k8s.io") == 1
    assert value(got, "podnet_store_objects", resource="deployments.apps") == 0
    by_phase = Counter((p.status.phase or "Pending", p.spec.node_name or "") for p in pods)
    for (phase, node), n in by_phase.items():
        assert value(got, "podnet_pods", phase=phase, node=node) == n
    assert sum(v for (name, _), v in got.items() if name == "podnet_pods") == len(pods)
    assert value(got, "podnet_nodes", ready="True") == 1 and value(got, "podnet_nodes", ready="Unknown") == 2
    ipam = IPAM(store.kv)
    (pool,) = ipam.usage()
    assert value(got, "podnet_ipam_pool_addresses", ippool=pool.name) == pool.size == 65536
    for node in ("n1", "n2"):
        rows = [r for r in pool.blocks if r.node == node]
        assert value(got, "podnet_ipam_blocks", ippool=pool.name, node=node) == len(rows)
        assert value(got, "podnet_ipam_addresses_in_use", ippool=pool.name, node=node) == sum(r.used for r in rows)
    assert value(got, "podnet_ipam_blocks", ippool=pool.name, node="n1") == 2
    assert value(got, "podnet_ipam_addresses_in_use", ippool=pool.name, node="n1") == 70


def test_policy_table_series_follow_its_rules() -> None:
    table = policy_table()
    listed = as_listed(table)
    t = PromTelemetry(runtime=False)
    t.register(PolicyTableCollector(lambda maps: listed, str(POLICY_TABLE)))
    got = samples(t)
    assert value(got, "podnet_nft_rules", table="inet podnet") == sum(len(c.rules) for c in table.chains.values())
    assert value(got, "podnet_nft_chains", table="inet podnet") == len(table.chains)
    assert value(got, "podnet_policy_local_endpoints") == 3  # web1, web2 and client on n1
    assert value(got, "podnet_policy_active_policies") == 1
    rule_series = {k: v for k, v in got.items() if k[0] == "podnet_policy_rule_packets_total"}
    assert sum(rule_series.values()) == sum(r.packets for r in listed.counted)
    deny = next(r for r in listed.counted if "default deny ingress" in r.comment)
    assert denied_by(deny.comment) == ("default/test-network-policy", "ingress")
    assert value(got, "podnet_policy_denied_packets_total", policy="default/test-network-policy",
                 direction="ingress") == deny.packets
    assert value(got, "podnet_policy_denied_bytes_total", policy="default/test-network-policy",
                 direction="ingress") == deny.bytes
    labels = dict(next(k[1] for k in rule_series if ("verdict", "drop") in k[1] and
                       any(v.startswith("default deny") for _, v in k[1])))
    assert labels["rule"].startswith("default deny ingress") and not re.match(r"^[0-9a-f]{8} ", labels["rule"])


def test_rules_with_one_text_are_one_series() -> None:
    counts = TableCounts(["c"], 2, [RuleCount("c", "aaaaaaaa x", "accept", 3, 30),
                                    RuleCount("c", "bbbbbbbb x", "accept", 4, 40)])
    assert policy_table_stats(counts).by_rule == {("c", "x", "accept"): (7, 70)}


def test_bgp_sessions_by_state_every_state_present() -> None:
    t = PromTelemetry(runtime=False)
    t.register(BgpCollector(lambda: peer_rows(parse_protocols(BIRDC))))
    got = samples(t)
    assert value(got, "podnet_bird_up") == 1
    assert value(got, "podnet_bgp_sessions", state="Established") == 2
    assert value(got, "podnet_bgp_sessions", state="Active") == 1
    assert value(got, "podnet_bgp_sessions", state="OpenSent") == 0


def test_bgp_without_bird_says_so() -> None:
    from podnet.errors import PodnetError

    def down() -> Any:
        raise PodnetError("birdc show protocols failed")

    t = PromTelemetry(runtime=False)
    t.register(BgpCollector(down))
    got = samples(t)
    assert value(got, "podnet_bird_up") == 0
    assert not [k for k in got if k[0] == "podnet_bgp_sessions"]


# --- recording: the loop runner and the CNI socket -----------------------------------------------


def test_the_runner_records_passes_failures_backoff_and_wakeups() -> None:
    t = PromTelemetry(runtime=False)
    time_ = FakeTime()
    changes = ScriptedChanges(time_, [3.0])  # after the failures and their back-off
    passes = Passes(time_, changes, 5, fail=lambda n: n in (1, 2), takes=0.01)
    runner = LoopRunner("test-loop", passes, changes, Timing(max_interval=2.0), clock=time_.clock,
                        sleep=time_.sleep, metrics=LoopMetrics(t, "test-loop"))
    passes.runner = runner
    runner.run()
    got = samples(t)
    assert value(got, "podnet_loop_passes_total", loop="test-loop") == 3
    assert value(got, "podnet_loop_failures_total", loop="test-loop") == 2
    assert value(got, "podnet_loop_pass_duration_seconds_count", loop="test-loop") == 5
    assert value(got, "podnet_loop_backoff_seconds", loop="test-loop") == 0  # the last pass succeeded
    assert value(got, "podnet_loop_wakeups_total", loop="test-loop", reason="resync") >= 1
    assert value(got, "podnet_loop_wakeups_total", loop="test-loop", reason="change") == 1
    assert value(got, "podnet_loop_last_success_timestamp_seconds", loop="test-loop") > 1.7e9


def test_the_cni_socket_records_each_request(tmp_path: Path) -> None:
    t = PromTelemetry(runtime=False)
    server = CniServer(str(tmp_path / "cni.sock"), Handler(lambda conf: NULL, "n1"), CniMetrics(t)).start()
    try:
        version = via_agent(server.path, [b"CNI_COMMAND=VERSION"], b'{"cniVersion": "1.1.0"}')
        assert version is not None and version[0] == 0
        add = via_agent(server.path, [b"CNI_COMMAND=ADD"], b"{}")  # no container id: error 4
        assert add is not None and json.loads(add[1])["code"] == 4
        with socket.socket(socket.AF_UNIX) as s:  # not a CNI request at all
            s.connect(server.path)
            s.sendall(b"\0\0\0\x05abc")
            s.shutdown(socket.SHUT_WR)
            s.recv(100)
    finally:
        server.close()
    got = samples(t)
    assert value(got, "podnet_cni_request_duration_seconds_count", command="VERSION") == 1
    assert value(got, "podnet_cni_request_duration_seconds_count", command="ADD") == 1
    assert value(got, "podnet_cni_request_errors_total", command="ADD", code="4") == 1
    assert value(got, "podnet_cni_request_errors_total", command="other", code="6") == 1
    assert value(got, "podnet_cni_requests_in_flight") == 0
    assert not [k for k in got if k[0] == "podnet_cni_request_errors_total" and ("command", "VERSION") in k[1]]


def test_metrics_off_serve_nothing_and_record_nowhere() -> None:
    from podnet.telemetry.serving import open_metrics

    metrics = open_metrics(0)
    assert metrics.telemetry is NULL and not metrics.telemetry.enabled
    LoopMetrics(metrics.telemetry, "agent").passes.inc()  # accepted, kept nowhere
    metrics.close()


def test_a_taken_port_is_a_clear_error() -> None:
    from podnet.errors import PodnetError
    from podnet.telemetry.serving import open_metrics

    metrics = open_metrics(0)
    served = open_metrics(_free_port(), "127.0.0.1")
    try:
        port = served._server.port  # type: ignore[union-attr]
        with pytest.raises(PodnetError, match=f"cannot serve metrics on 127.0.0.1:{port}") as err:
            open_metrics(port, "127.0.0.1")
        assert "--metrics-port" in (err.value.hint or "")
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            body = b"".join(iter(lambda: c.recv(65536), b""))
        assert b"200 OK" in body.split(b"\r\n")[0] and b"process_cpu_seconds_total" in body
    finally:
        served.close()
        metrics.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_series_text_escapes_and_forgets_gone_series() -> None:
    from podnet.telemetry.text import SeriesText

    fam = SeriesText("podnet_policy_rule_packets_total", "counter", "Packets.\nMore.", ("chain", "rule"))
    odd = ("c", 'a "quoted" rule\\ with\nnewline')
    text = fam.render([(odd, 3), (("c", "plain"), 2.5)])
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.type == "counter" and parsed.documentation == "Packets.\nMore."
    assert {(s.labels["rule"], s.value) for s in parsed.samples} == {(odd[1], 3.0), ("plain", 2.5)}
    res = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=text,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "plain" not in fam.render([(odd, 4)])  # a rule that is gone is not exported any more
    with pytest.raises(ValueError, match="_total"):
        SeriesText("podnet_rule_packets", "counter", "x", ())


def test_registering_a_collector_reads_nothing_until_scraped() -> None:
    asked: list[int] = []

    def peers() -> list[Any]:
        asked.append(1)
        return []

    t = PromTelemetry(runtime=False)
    t.register(BgpCollector(peers))
    assert asked == []  # no birdc at start-up: the families are described, not collected
    t.exposition()
    assert asked == [1]
