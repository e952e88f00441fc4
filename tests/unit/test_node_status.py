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
