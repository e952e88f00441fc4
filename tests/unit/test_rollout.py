"""The Deployment and ReplicaSet controllers on a real (in-memory) store: rolling updates within
maxSurge/maxUnavailable, Recreate, rollback, scaling, history limit, garbage collection. The
node side is played by ``settle``: it runs every scheduled pod (Ready at once) and finishes
every deletion, which is what the node agents do."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podnet.agent.apps_control import AppsController
from podnet.controllers import deployments, replicasets
from podnet.model import Deployment, Event, Pod, ReplicaSet
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

HASH = re.compile(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}")


class Sim:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        self.store = ResourceStore(MemoryStore(), clock=lambda: self.now)
        self.store.bootstrap()
        self.ctl = AppsController(self.store, clock=lambda: self.now)
        self.max_total = 0
        self.min_available = 10**9

    def apply(self, replicas: int = 3, image: str = "nginx", strategy: dict | None = None, **spec: Any) -> None:
        doc: dict = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                              "template": {"metadata": {"labels": {"app": "web"}},
                                           "spec": {"containers": [{"name": "web", "image": image}]}}, **spec}}
        if strategy is not None:
            doc["spec"]["strategy"] = strategy
        self.store.apply([Deployment.model_validate(doc)])

    def pods(self) -> list[Pod]:
        return self.store.list(Pod)  # type: ignore[return-value]

    def settle(self, ready: bool = True) -> None:
        """The node agents' part: pods run and turn Ready; deleted pods are removed."""
        self.now += timedelta(seconds=1)
        for p in self.pods():
            if p.metadata.deletion_timestamp:
                self.store.delete(Pod, p.name, p.namespace, grace_period_seconds=0)
            elif not p.spec.node_name:
                data = p.to_dict()
                data["spec"]["nodeName"] = "n1"
                self.store.update(Pod.model_validate(data), check_version=False)
            elif ready and not p.ready:
                stamp = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
                data = p.to_dict()
                data["status"] = {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": stamp}]}
                self.store.update_status(Pod.model_validate(data))

    def step(self, ready: bool = True) -> None:
        self.ctl.reconcile(self.store.snapshot())
        live = [p for p in self.pods() if not p.metadata.deletion_timestamp]
        self.max_total = max(self.max_total, len(self.pods()))
        self.min_available = min(self.min_available, sum(1 for p in live if p.ready))
        self.settle(ready)

    def run(self, passes: int = 30, ready: bool = True) -> None:
        for _ in range(passes):
            self.step(ready)

    def sets(self) -> list[ReplicaSet]:
        return self.store.list(ReplicaSet)  # type: ignore[return-value]

    def deployment(self) -> Deployment:
        d = self.store.get(Deployment, "web")
        assert d is not None
        return d  # type: ignore[return-value]

    def track(self) -> None:
        self.max_total, self.min_available = 0, 10**9


@pytest.fixture
def sim() -> Sim:
    return Sim()


def test_first_rollout_names_sets_and_pods_as_kubernetes(sim: Sim) -> None:
    sim.apply(3)
    sim.run(6)
    (rs,) = sim.sets()
    h = rs.labels["pod-template-hash"]
    assert HASH.fullmatch(h) and rs.name == f"web-{h}"
    assert rs.metadata.annotations[deployments.REVISION] == "1"
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": h}
    names = sorted(p.name for p in sim.pods())
    assert len(names) == 3 and all(re.fullmatch(rf"web-{h}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", n) for n in names)
    assert all(p.metadata.owner_references[0]["uid"] == rs.metadata.uid for p in sim.pods())  # type: ignore[index]
    d = sim.deployment()
    st = d.status or {}
    assert d.metadata.annotations[deployments.REVISION] == "1"
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    rev = sim.store.revision()
    sim.ctl.reconcile(sim.store.snapshot())
    assert sim.store.revision() == rev, "a settled deployment must not be rewritten"
    reasons = {e.reason for e in sim.store.list(Event)}  # type: ignore[attr-defined]
    assert {"ScalingReplicaSet", "SuccessfulCreate"} <= reasons


@pytest.mark.parametrize("surge,unavailable,replicas,max_total,min_ready", [
    (1, 0, 3, 4, 3), (0, 1, 3, 3, 2), ("25%", "25%", 4, 5, 3), ("50%", "0%", 4, 6, 4)])
def test_rolling_update_stays_within_surge_and_unavailable(sim: Sim, surge: Any, unavailable: Any, replicas: int,
                                                           max_total: int, min_ready: int) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    sim.apply(replicas, strategy=strategy)
    sim.run(8)
    old = {p.name for p in sim.pods()}
    sim.track()
    sim.apply(replicas, image="httpd", strategy=strategy)
    sim.run(25)
    assert sim.max_total <= max_total and sim.min_available >= min_ready
    new = {p.name for p in sim.pods()}
    assert len(new) == replicas and not new & old
    assert all(p.spec.containers[0].image == "httpd" for p in sim.pods())
    sets = {rs.metadata.annotations[deployments.REVISION]: rs for rs in sim.sets()}
    assert sets["1"].spec.replicas == 0 and sets["2"].spec.replicas == replicas
    assert sim.deployment().metadata.annotations[deployments.REVISION] == "2"


def test_fenceposts_round_as_upstream() -> None:
    assert deployments.resolve("25%", 10, True) == 3 and deployments.resolve("25%", 10, False) == 2
    assert deployments.resolve("25%", 1, True) == 1 and deployments.resolve("25%", 1, False) == 0
    d = Deployment.model_validate({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                                   "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                                            "strategy": {"rollingUpdate": {"maxSurge": "10%", "maxUnavailable": 0}},
                                            "template": {"metadata": {"labels": {"a": "b"}},
                                                         "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    assert deployments.fenceposts(d) == (1, 0)
    with pytest.raises(ValueError, match="may not be 0 when `maxSurge` is 0"):
        Deployment.model_validate({**d.to_dict(), "spec": {**d.to_dict()["spec"], "strategy": {
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}})


def test_recreate_starts_new_pods_only_when_old_ones_are_gone(sim: Sim) -> None:
    sim.apply(2, strategy={"type": "Recreate"})
    sim.run(6)
    old = {p.name for p in sim.pods()}
    sim.apply(2, image="httpd", strategy={"type": "Recreate"})
    for _ in range(12):
        sim.ctl.reconcile(sim.store.snapshot())
        names = {p.name for p in sim.pods()}
        assert not (names & old and names - old), "old and new pods at the same time"
        sim.settle()
    assert len(sim.pods()) == 2 and not {p.name for p in sim.pods()} & old


def test_undo_rolls_back_to_the_previous_revision(sim: Sim) -> None:
    sim.apply(2)
    sim.run(6)
    sim.apply(2, image="httpd")
    sim.run(15)
    first = next(rs for rs in sim.sets() if rs.metadata.annotations[deployments.REVISION] == "1")
    sim.apply(2, image="nginx")  # what `rollout undo` writes: revision 1's template
    sim.run(15)
    back = sim.store.get(ReplicaSet, first.name)
    assert back is not None and back.metadata.annotations[deployments.REVISION] == "3"
    assert back.metadata.annotations[deployments.REVISION_HISTORY] == "1" and back.spec.replicas == 2
    assert sim.deployment().metadata.annotations[deployments.REVISION] == "3"
    assert len(sim.sets()) == 2


def test_revision_history_limit_deletes_the_oldest_empty_sets(sim: Sim) -> None:
    for image in ("nginx", "httpd", "busybox", "agnhost"):
        sim.apply(1, image=image, revisionHistoryLimit=1)
        sim.run(10)
    revisions = sorted(int(rs.metadata.annotations[deployments.REVISION]) for rs in sim.sets())
    assert revisions == [3, 4]


def test_scaling_and_scale_to_zero(sim: Sim) -> None:
    sim.apply(2)
    sim.run(5)
    sim.apply(5)
    sim.run(5)
    assert len(sim.pods()) == 5 and len(sim.sets()) == 1
    assert sim.sets()[0].metadata.annotations[deployments.DESIRED] == "5"
    sim.apply(0)
    sim.run(5)
    assert sim.pods() == [] and (sim.deployment().status or {})["replicas"] == 0


def test_scaling_mid_rollout_is_proportional(sim: Sim) -> None:
    strategy = {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}
    sim.apply(6, strategy=strategy)
    sim.run(8)
    sim.apply(6, image="httpd", strategy=strategy)
    sim.step(ready=False)  # the new set got 3 (surge), none of them ready yet
    sim.step(ready=False)
    sim.apply(12, image="httpd", strategy=strategy)
    sim.step(ready=False)
    sizes = sorted(rs.spec.replicas for rs in sim.sets())
    assert sum(sizes) == 15 and sizes == [5, 10]  # 6:3 grown to 12 + 3 surge in proportion
    sim.run(30)
    assert len(sim.pods()) == 12 and all(p.spec.containers[0].image == "httpd" for p in sim.pods())


def test_deleting_a_deployment_takes_sets_and_pods(sim: Sim) -> None:
    sim.apply(2)
    sim.run(5)
    sim.store.delete(Deployment, "web")
    sim.run(4)
    assert sim.sets() == [] and sim.pods() == []


def test_replicaset_deletes_unready_pods_first() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    rs = ReplicaSet.model_validate({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "metadata": {"name": "web-1", "namespace": "default", "uid": "u1"},
                                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                             "template": {"metadata": {"labels": {"app": "web"}},
                                                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}})

    def member(name: str, ready: bool) -> Pod:
        cond = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2024-05-01T00:00:00Z"}]
        return Pod.model_validate({"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                                                "ownerReferences": [{"kind": "ReplicaSet", "uid": "u1", "name": "web-1",
                                                                     "controller": True}]},
                                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
                                   "status": {"phase": "Running", "conditions": cond}})

    plan = replicasets.plan(rs, [member("a", True), member("b", False), member("c", True)], now)
    assert sorted(p.name for p in plan.delete) == ["b", "c"] or sorted(p.name for p in plan.delete) == ["a", "b"]
    assert "b" in {p.name for p in plan.delete}
    assert plan.status["replicas"] == 3 and plan.status["readyReplicas"] == 2


def test_min_ready_seconds_delays_availability(sim: Sim) -> None:
    sim.apply(2, minReadySeconds=5)
    for _ in range(10):  # until the Deployment reports its pods Ready (for a second or two by then)
        sim.step()
        if (sim.deployment().status or {}).get("readyReplicas") == 2:
            break
    st = sim.deployment().status or {}
    assert st["readyReplicas"] == 2 and st["availableReplicas"] == 0
    assert {c["type"]: c["status"] for c in st["conditions"]}["Available"] == "False"
    assert sim.sets()[0].spec.min_ready_seconds == 5
    sim.run(5)
    assert (sim.deployment().status or {})["availableReplicas"] == 2
