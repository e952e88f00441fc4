"""Flow-log identities, aggregation and the ring, without the kernel: a rule's prefix reads back
as the same rule, packets of one flow and rule fold into one record per window, and the ring
keeps at most twice its capacity however much is written."""
from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

from podnet.dataplane.nft.flowlog import DEFAULT_DENY, PREFIX_MAX, RuleId, allow_rule_id, deny_rule_id
from podnet.kernel.nflog import LoggedPacket, parse_headers
from podnet.telemetry.flows import FlowAggregator, FlowRing, follow_rings, read_ring


def test_a_prefix_reads_back_as_the_rule_that_wrote_it() -> None:
    allow = allow_rule_id("default/test-network-policy", "ingress", 0)
    assert allow.prefix() == "pn Ai default 0 default/test-network-policy"  # the default tier, as Calico names it
    assert RuleId.parse(allow.prefix()) == allow
    deny = deny_rule_id(("default/a", "default/b"), "egress")
    assert RuleId.parse(deny.prefix()) == deny and deny.index == DEFAULT_DENY
    assert deny.describe() == "default deny egress (isolated by default/a, default/b)"
    assert allow.describe() == "default/test-network-policy ingress rule 0"


def test_long_names_are_cut_to_the_kernels_limit_and_marked() -> None:
    refs = tuple(f"namespace-{i}/" + "p" * 60 for i in range(3))
    rid = deny_rule_id(refs, "ingress")
    assert len(rid.prefix()) <= PREFIX_MAX
    back = RuleId.parse(rid.prefix())
    assert back is not None and back.cut and back.policies[0] == refs[0] and back.verdict == "DROPPED"
    assert "+" in back.describe()


def test_foreign_prefixes_are_not_ours() -> None:
    for prefix in ("", "IN=eth0 ", "pn Xi k8s 0 a/b", "pn Ai k8s x a/b", "pn Ai k8s 0"):
        assert RuleId.parse(prefix) is None


def _ipv4_tcp(src: bytes, dst: bytes, dport: int, length: int = 60) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, 6, 0, src, dst)
    return header + struct.pack("!HH", 40000, dport)


def test_headers_give_addresses_protocol_port_and_length() -> None:
    pkt = parse_headers("p", _ipv4_tcp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 80, 1500))
    assert pkt == LoggedPacket("p", "10.0.0.1", "10.0.0.2", "TCP", 40000, 80, 1500)
    assert parse_headers("p", b"") is None and parse_headers("p", b"\x45\x00") is None


def test_packets_of_one_flow_and_rule_make_one_record_per_window() -> None:
    agg = FlowAggregator("n1", window=0.1)
    prefix = deny_rule_id(("default/p",), "ingress").prefix()
    for i in range(5):
        agg.add(LoggedPacket(prefix, "10.0.0.1", "10.0.0.2", "TCP", 40000 + i, 80, 60), 100.0 + i * 0.01)
    agg.add(LoggedPacket(prefix, "10.0.0.3", "10.0.0.2", "TCP", 1, 80, 60), 100.0)
    agg.add(LoggedPacket("someone else", "10.0.0.3", "10.0.0.2", "TCP", 1, 80, 60), 100.0)
    assert agg.due(100.05) == [] and agg.next_due() == 100.1
    out = agg.due(100.2)
    assert [(r.src, r.packets, r.bytes, r.verdict, r.policies) for r in out] == [
        ("10.0.0.1", 5, 300, "DROPPED", ["default/p"]), ("10.0.0.3", 1, 60, "DROPPED", ["default/p"])]
    assert agg.foreign == 1 and agg.open == {}


def test_the_ring_is_bounded_and_followed_across_rotation(tmp_path: Path) -> None:
    path = str(tmp_path / "n1" / "flows.jsonl")
    ring = FlowRing(path, capacity=10)
    agg = FlowAggregator("n1", window=0.0)
    prefix = allow_rule_id("default/p", "ingress", 0).prefix()
    for i in range(35):
        agg.add(LoggedPacket(prefix, f"10.0.1.{i}", "10.0.0.2", "TCP", 1, 80, 60), float(i))
        ring.append(agg.due(float(i)))
    held = read_ring(path)
    assert 10 <= len(held) <= 20 and held[-1].src == "10.0.1.34"
    assert [r.time for r in held] == sorted(r.time for r in held)
    assert ring.written == 35


def test_following_sees_each_new_record_once_across_rotation(tmp_path: Path) -> None:
    path = str(tmp_path / "n1" / "flows.jsonl")
    ring = FlowRing(path, capacity=3)
    prefix = allow_rule_id("default/p", "ingress", 0).prefix()
    agg = FlowAggregator("n1", window=0.0)

    def write(i: int) -> None:
        agg.add(LoggedPacket(prefix, f"10.0.1.{i}", "10.0.0.2", "TCP", 1, 80, 60), float(i))
        ring.append(agg.due(float(i)))

    write(0)  # written before following starts: not followed

    def writer() -> None:
        time.sleep(0.15)
        for i in range(1, 8):
            write(i)
            time.sleep(0.06)

    thread = threading.Thread(target=writer)
    thread.start()
    got = [r.src for r in follow_rings([path], stop_after=1.0, poll=0.01)]
    thread.join()
    assert got == [f"10.0.1.{i}" for i in range(1, 8)]


def test_a_table_without_flow_logs_has_the_same_verdicts_and_no_log() -> None:
    from podnet.dataplane.nft.flowlog import without_flow_logs
    from podnet.dataplane.nft.render import render
    from podnet.model import Namespace, NetworkPolicy, Pod
    from podnet.policy.cluster import ClusterState

    pods = [Pod.model_validate({"metadata": {"name": n, "namespace": "default", "labels": labels},
                                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
                                "status": {"phase": "Running", "podIP": ip, "hostIP": "10.99.0.1"}})
            for n, labels, ip in (("web", {"app": "web"}, "10.244.1.2"), ("client1", {"run": "client1"}, "10.244.1.3"))]
    policy = NetworkPolicy.model_validate({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"run": "client1"}}}]}]}})
    state = ClusterState.build([Namespace.model_validate({"metadata": {"name": "default"}})], pods, [policy])
    table = render(state, "n1")
    off = without_flow_logs(table)
    logged = [r for c in table.chains.values() for r in c.rules if '"log"' in r.expr_json]
    assert len(logged) == 2  # the allowing rule, and the default deny's log rule
    assert not any('"log"' in r.expr_json or '"limit"' in r.expr_json for c in off.chains.values() for r in c.rules)
    assert sum(len(c.rules) for c in off.chains.values()) == sum(len(c.rules) for c in table.chains.values()) - 1
    assert off.sets == table.sets and off.maps == table.maps
