"""The agent's node status reporter: Ready with nodeInfo, written only on change."""
from podnet.agent.node_status import NodeStatusReporter
from podnet.model import Node
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "k8s-node01"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.10.72"}]}}


def _ready(store: ResourceStore) -> dict:
    node = store.get(Node, "k8s-node01")
    return {c["type"]: c for c in node.status.conditions or []}.get("Ready", {})


def test_reports_ready_once_then_not_ready_on_stop() -> None:
    store = ResourceStore(MemoryStore())
    store.create(Node.model_validate(NODE))
    reporter = NodeStatusReporter(store, "k8s-node01")
    reporter.reconcile(store.snapshot())
    assert _ready(store)["status"] == "True"
    node = store.get(Node, "k8s-node01")
    assert node.status.node_info["kubeletVersion"].endswith("-podnet")
    assert node.status.addresses[0].address == "192.168.10.72", "other status fields are kept"

    revision = store.revision()
    reporter.reconcile(store.snapshot())
    assert store.revision() == revision, "nothing changed, nothing written"

    reporter.mark_stopped()
    assert _ready(store)["status"] == "False"
    assert _ready(store)["reason"] == "PodnetAgentStopped"


def test_missing_node_is_ignored() -> None:
    store = ResourceStore(MemoryStore())
    NodeStatusReporter(store, "ghost").reconcile(store.snapshot())
    assert store.get(Node, "ghost") is None


class _FlakyStore(ResourceStore):
    """A real store whose first snapshot fails as a store under lock contention does."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.failures = 1

    def snapshot(self):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            from podnet.errors import PodnetError
            raise PodnetError("timed out waiting for the store's write lock")
        return super().snapshot()


def test_agent_loop_survives_a_failed_snapshot() -> None:
    """A store error must not end the agent's loop (the agent tears its pods down when the loop
    ends): the pass is retried on the next tick."""
    import threading

    from podnet.agent.core import Agent

    store = _FlakyStore()
    store.create(Node.model_validate(NODE))
    agent = Agent(store, "k8s-node01", [NodeStatusReporter(store, "k8s-node01")], resync=0.05)
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        for _ in range(100):
            if agent.passes:
                break
            t.join(0.02)
        assert agent.passes >= 1 and t.is_alive()
        assert _ready(store)["status"] == "True"
    finally:
        agent.stop.set()
        t.join(2)
