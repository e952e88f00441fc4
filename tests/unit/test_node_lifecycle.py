"""Node liveness by lease: the agent renews its lease; the control plane marks a Ready node
whose lease stood still past the grace period Ready=Unknown, judged by its own clock; the
agent's next report makes it Ready again."""
from __future__ import annotations

from typing import Any

from podnet.agent.control import ControlLoop
from podnet.agent.node_status import NodeStatusReporter
from podnet.controllers.nodelifecycle import UNKNOWN_MESSAGE, UNKNOWN_REASON, LeaseWatch, lease_key
from podnet.model import Node
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.10.72"}]}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ready(store: ResourceStore) -> dict[str, Any]:
    node = store.get(Node, "n1")
    assert node is not None
    return {c["type"]: c for c in node.status.conditions or []}["Ready"]


def test_a_node_whose_lease_stops_is_unknown_after_the_grace_and_ready_again_when_it_renews() -> None:
    store = ResourceStore(MemoryStore())
    store.create(Node.model_validate(NODE))
    agent = NodeStatusReporter(store, "n1", renew_interval=0)
    agent.reconcile(store.snapshot())
    assert store.kv.get(lease_key("n1")) is not None and ready(store)["status"] == "True"
    clock = Clock()
    control = ControlLoop(store, clock=clock, node_grace=40)
    assert control.mark_silent_nodes(store.snapshot()) == []
    for _ in range(3):  # the control plane looks every 10 s
        clock.now += 10
        assert control.mark_silent_nodes(store.snapshot()) == []
    agent.renew_lease()  # renewed in time: the control plane sees it move at its next look
    for _ in range(5):
        clock.now += 10
        assert control.mark_silent_nodes(store.snapshot()) == []
    clock.now += 1  # 41 s since the control plane saw the lease move
    assert control.mark_silent_nodes(store.snapshot()) == ["n1"]
    cond = ready(store)
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", UNKNOWN_REASON, UNKNOWN_MESSAGE)
    assert store.get(Node, "n1").status.addresses[0].address == "192.168.10.72"  # type: ignore[union-attr]
    assert control.mark_silent_nodes(store.snapshot()) == []  # Unknown already: written once
    agent.reconcile(store.snapshot())  # the agent is back
    assert ready(store)["status"] == "True"


def test_staleness_is_the_observers_clock_not_the_time_in_the_lease() -> None:
    watch = LeaseWatch(grace=10)
    watch.observe({"a": {"renewTime": "2001-01-01T00:00:00Z"}}, now=0)  # a host whose clock is years off
    assert watch.stale(["a"], now=5) == []
    watch.observe({"a": {"renewTime": "2001-01-01T00:00:05Z"}}, now=9)
    assert watch.stale(["a"], now=18) == []
    assert watch.stale(["a"], now=20) == ["a"]
    assert watch.stale(["b"], now=20) == []  # first seen now: it gets its grace period
    assert watch.stale(["b"], now=31) == ["b"]


def test_a_control_plane_that_could_not_look_gives_every_lease_a_fresh_grace() -> None:
    watch = LeaseWatch(grace=10)
    watch.observe({"a": 1}, now=0)
    watch.observe({"a": 1}, now=60)  # the store was unreachable from 0 to 60: nobody could renew
    assert watch.stale(["a"], now=61) == []
    watch.observe({"a": 1}, now=65)
    assert watch.stale(["a"], now=71) == ["a"]


def test_a_long_pass_keeps_the_lease_moving_and_feeds_the_watchdog() -> None:
    """A pass starting many pods reports progress per pod: the lease moves during the pass
    (at most once per renew interval) and the watchdog is fed every time."""
    store = ResourceStore(MemoryStore())
    store.create(Node.model_validate(NODE))
    fed: list[int] = []
    reporter = NodeStatusReporter(store, "n1", renew_interval=3600)
    progress = reporter.alive_while(lambda: fed.append(1))
    progress()
    first = store.kv.get(lease_key("n1"))
    assert first is not None
    progress()  # within the interval: the watchdog is fed, the lease is not rewritten
    assert store.kv.get(lease_key("n1")).mod_revision == first.mod_revision  # type: ignore[union-attr]
    reporter.renew_interval = 0
    progress()
    assert store.kv.get(lease_key("n1")).mod_revision > first.mod_revision  # type: ignore[union-attr]
    assert len(fed) == 3
