"""A bound pod keeps its node: re-applying its manifest must not unbind it (the scheduler would
bind the same incarnation, with the same CNI attachment and address, to a second node)."""
from __future__ import annotations

import pytest

from podnet.errors import ValidationError
from podnet.manifest import load_text
from podnet.model import Pod
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

MANIFEST = """apiVersion: v1
kind: Pod
metadata: {name: client1, namespace: default, labels: {app: c}}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
"""


def fresh_store() -> ResourceStore:
    store = ResourceStore(MemoryStore())
    store.bootstrap()  # the default namespaces
    return store


def bound_pod(store: ResourceStore, node: str = "n2") -> Pod:
    (pod,) = [loaded.obj for loaded in load_text(MANIFEST, "pod.yaml")]
    store.apply([pod])
    stored = store.get(Pod, "client1", "default")
    bound = stored.model_copy(update={"spec": stored.spec.model_copy(update={"node_name": node})})
    return store.update(bound, check_version=True)  # the scheduler's binding


def test_reapplying_a_manifest_without_a_node_keeps_the_binding() -> None:
    store = fresh_store()
    bound = bound_pod(store)
    (again,) = [loaded.obj for loaded in load_text(MANIFEST, "pod.yaml")]
    [(stored, action)] = store.apply([again])
    assert stored.spec.node_name == "n2" and action == "unchanged"
    assert stored.metadata.uid == bound.metadata.uid
    relabelled = load_text(MANIFEST.replace("app: c", "app: d"), "pod.yaml")[0].obj
    [(stored, action)] = store.apply([relabelled])
    assert (stored.spec.node_name, stored.labels["app"], action) == ("n2", "d", "configured")


def test_moving_a_bound_pod_is_refused_and_changes_nothing() -> None:
    store = fresh_store()
    bound = bound_pod(store)
    moved = load_text(MANIFEST.replace("spec:\n", "spec:\n  nodeName: n1\n"), "pod.yaml")[0].obj
    with pytest.raises(ValidationError) as info:
        store.apply([moved])
    (problem,) = info.value.problems
    assert problem.field_path == "spec.nodeName" and "may not move to another node" in problem.message
    after = store.get(Pod, "client1", "default")
    assert after.spec.node_name == "n2" and after.metadata.resource_version == bound.metadata.resource_version


def test_an_unbound_pod_may_be_bound_and_naming_its_own_node_is_fine() -> None:
    store = fresh_store()
    bound_pod(store)
    same = load_text(MANIFEST.replace("spec:\n", "spec:\n  nodeName: n2\n"), "pod.yaml")[0].obj
    [(stored, action)] = store.apply([same])
    assert stored.spec.node_name == "n2" and action == "unchanged"
