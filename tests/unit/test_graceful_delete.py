"""Graceful deletion as the API server does it: deletionTimestamp and grace periods for pods
on a node, Terminating namespaces that go with their last pod."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podnet.errors import PodnetError
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def rs() -> ResourceStore:
    store = ResourceStore(MemoryStore(), clock=lambda: T0)
    store.bootstrap()
    return store


def pod(name: str, ns: str = "default", node: str | None = "n1", grace: int | None = None,
        phase: str | None = None) -> Pod:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    doc: dict = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    if phase:
        doc["status"] = {"phase": phase}
    return Pod.model_validate(doc)


def stamp(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_scheduled_pod_is_marked_with_its_grace_period(rs: ResourceStore) -> None:
    rs.create(pod("a"))
    rs.create(pod("b", grace=5))
    marked = rs.delete_many([(Pod, "a", None), (Pod, "b", None)])
    assert [m.metadata.deletion_timestamp for m in marked if m] == [stamp(30), stamp(5)]
    a = rs.get(Pod, "a")
    assert a is not None and a.metadata.deletion_grace_period_seconds == 30 and a.metadata.generation == 2
    # deleting again changes nothing unless the grace period is shorter
    rev = rs.revision()
    assert rs.delete(Pod, "a") is True and rs.revision() == rev
    assert rs.delete(Pod, "a", grace_period_seconds=60) is True and rs.revision() == rev
    rs.delete(Pod, "a", grace_period_seconds=10)
    a = rs.get(Pod, "a")
    assert a is not None and a.metadata.deletion_timestamp == stamp(10) and a.metadata.deletion_grace_period_seconds == 10
    # grace period 0 (what the node agent sends when the processes are gone) removes it
    assert rs.delete(Pod, "a", grace_period_seconds=0) is True and rs.get(Pod, "a") is None


def test_pods_no_node_runs_go_at_once(rs: ResourceStore) -> None:
    rs.create(pod("unscheduled", node=None))
    rs.create(pod("done", phase="Succeeded"))
    rs.create(pod("now"))
    rs.delete_many([(Pod, "unscheduled", None), (Pod, "done", None)])
    rs.delete(Pod, "now", grace_period_seconds=0)
    assert rs.list(Pod) == []


def test_uid_precondition_spares_a_new_incarnation(rs: ResourceStore) -> None:
    old = rs.create(pod("a"))
    rs.delete(Pod, "a", grace_period_seconds=0)
    new = rs.create(pod("a"))
    assert rs.delete(Pod, "a", grace_period_seconds=0, uid=old.metadata.uid) is False
    assert rs.get(Pod, "a") is not None and new.metadata.uid != old.metadata.uid


def test_a_namespace_terminates_with_its_pods(rs: ResourceStore) -> None:
    rs.apply([Namespace.model_validate({"metadata": {"name": "team"}})])
    rs.create(pod("a", "team"))
    rs.create(pod("idle", "team", node=None))
    rs.create(NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                            "metadata": {"name": "np", "namespace": "team"},
                                            "spec": {"podSelector": {}}}))
    assert rs.delete(Namespace, "team") is True
    ns = rs.get(Namespace, "team")
    assert ns is not None and ns.metadata.deletion_timestamp and (ns.status or {}).get("phase") == "Terminating"
    assert rs.list(NetworkPolicy, "team") == [] and [p.name for p in rs.list(Pod, "team")] == ["a"]
    a = rs.get(Pod, "a", "team")
    assert a is not None and a.metadata.deletion_timestamp == stamp(30)
    with pytest.raises(PodnetError, match="because it is being terminated"):
        rs.create(pod("late", "team"))
    with pytest.raises(PodnetError, match="because it is being terminated"):
        rs.apply([pod("late", "team")])
    rs.delete(Pod, "a", "team", grace_period_seconds=0)  # the last pod's agent is done
    assert rs.get(Namespace, "team") is None and rs.list(Pod, "team") == []


def test_an_empty_namespace_goes_at_once(rs: ResourceStore) -> None:
    rs.apply([Namespace.model_validate({"metadata": {"name": "empty"}}), pod("x", "empty", node=None)])
    assert rs.delete(Namespace, "empty") is True
    assert rs.get(Namespace, "empty") is None and rs.list(Pod, "empty") == []
