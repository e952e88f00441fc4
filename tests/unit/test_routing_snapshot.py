"""The agent-side adapters: store snapshot (objects + IPAM blocks) -> routing facts -> plan."""
from __future__ import annotations

from podnet.agent.routing import blocks_from_raw, facts_from_snapshot, pod_mtu
from podnet.cluster.lab import default_pool, node_resources
from podnet.cluster.topology import plan_topology
from podnet.ipam.blocks import Block, block_key
from podnet.routing import plan_node
from podnet.store.resources import Snapshot


def snapshot(backend_block: int = 26, raw: dict | None = None) -> Snapshot:
    objs = node_resources(plan_topology(3)) + [default_pool("10.244.0.0/16", backend_block)]
    by_kind: dict = {}
    for o in objs:
        by_kind.setdefault(o.KIND, []).append(o)  # v1 Node and Calico Node share the kind "Node"
    return Snapshot(7, {k: tuple(v) for k, v in by_kind.items()}, raw or {})


def test_blocks_come_from_ipam_affinities():
    raw = {block_key("10.244.0.0/26"): Block("10.244.0.0/26", "host:k8s-master01").to_dict(),
           block_key("10.244.0.64/26"): Block("10.244.0.64/26", "host:k8s-node01").to_dict(),
           block_key("10.244.0.128/26"): Block("10.244.0.128/26", None).to_dict(),
           "/podnet/ipam/config": {"strictAffinity": False}}
    assert blocks_from_raw(raw) == {"k8s-master01": ["10.244.0.0/26"], "k8s-node01": ["10.244.0.64/26"]}
    facts = facts_from_snapshot(snapshot(raw=raw))
    assert [(n.name, n.address, n.prefixlen, n.blocks) for n in facts.nodes] == [
        ("k8s-master01", "192.168.10.71", 24, ("10.244.0.0/26",)),
        ("k8s-node01", "192.168.10.72", 24, ("10.244.0.64/26",)),
        ("k8s-node02", "192.168.10.73", 24, ())]
    plan = plan_node(facts, "k8s-node02", "bgp")
    assert [n.address for n in plan.bgp.neighbors] == ["192.168.10.71", "192.168.10.72"]
    assert plan.nat.masquerade == ("10.244.0.0/16",)


def test_pod_mtu_follows_encapsulation():
    s = snapshot(24)
    assert pod_mtu(s, "k8s-node01", "vxlan") == 1450
    assert pod_mtu(s, "k8s-node01", "host-gw") == 1500
    assert pod_mtu(s, "k8s-node01", "vxlan", underlay_mtu=9000) == 8950


def test_routing_loop_wakes_only_for_what_routing_reads():
    """Pod churn (status writes, handles) must not make every node replan its routes; a
    change to a block, node, pool or BGP resource must."""
    import time

    from podnet.agent.routing_loop import ROUTING_KEYS
    from podnet.agent.runner import StoreChanges
    from podnet.store.api import Put
    from podnet.store.memory import MemoryStore

    kv = MemoryStore()
    changes = StoreChanges(kv, ROUTING_KEYS)
    start = kv.revision()
    kv.txn([], [Put("/registry/pods/default/p1", {"status": {"phase": "Running"}})])
    kv.txn([], [Put("/podnet/ipam/handles/net.c1.eth0", {"handleID": "net.c1.eth0"})])
    t0 = time.monotonic()
    assert changes.wait(start, 0.6) is False
    assert time.monotonic() - t0 >= 0.55
    kv.txn([], [Put(block_key("10.244.0.0/26"), Block("10.244.0.0/26", "host:n1").to_dict())])
    t0 = time.monotonic()
    assert changes.wait(start, 5) is True
    assert time.monotonic() - t0 < 1
    for key in ("/registry/nodes/n2", "/registry/caliconodes/n2", "/registry/ippools/p",
                "/registry/bgppeers/x", "/registry/bgpconfigurations/default"):
        rev = kv.revision()
        kv.txn([], [Put(key, {"k": 1})])
        assert changes.wait(rev, 5) is True, key


def test_routing_loop_survives_a_failed_pass(caplog):
    """A store or kernel error in one pass is logged and the loop goes on: it is the node's only
    routing process, and nothing would restart it."""
    import logging
    import threading

    from podnet.agent.routing import RoutingStatus
    from podnet.agent.routing_loop import LOOP, ROUTING_KEYS, RoutingPass
    from podnet.agent.runner import LoopRunner, StoreChanges, Timing
    from podnet.errors import PodnetError
    from podnet.store.memory import MemoryStore
    from podnet.store.resources import ResourceStore

    class FlakyStore(ResourceStore):  # a real store whose first snapshot fails, as under lock contention
        failed = False

        def snapshot(self):  # type: ignore[no-untyped-def]
            if not self.failed:
                self.failed = True
                raise PodnetError("timed out waiting for the store's write lock")
            return super().snapshot()

    stop = threading.Event()

    class Recorder:  # stands in for the kernel-facing reconciler: the loop is under test here
        def __init__(self) -> None:
            self.passes = 0

        def facts(self, snap):  # type: ignore[no-untyped-def]
            return snap.revision

        def reconcile_facts(self, facts):  # type: ignore[no-untyped-def]
            self.passes += 1
            if self.passes == 1:
                raise OSError("netlink socket refused")
            stop.set()
            return RoutingStatus(node="n1", backend="host-gw", time=0.0, changes=["route +10.244.1.0/24"])

    rec, store = Recorder(), FlakyStore(MemoryStore())
    runner = LoopRunner(LOOP, RoutingPass(store, rec, "n1"), StoreChanges(store.kv, ROUTING_KEYS),  # type: ignore[arg-type]
                        Timing(max_interval=0.05), stop=stop, sleep=lambda seconds: None)
    with caplog.at_level(logging.INFO, logger=f"podnet.{LOOP}"):
        runner.run()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert rec.passes == 2
    assert any("PodnetError: timed out" in e for e in errors) and any("OSError: netlink socket refused" in e for e in errors)
    assert "route +10.244.1.0/24" in caplog.text
