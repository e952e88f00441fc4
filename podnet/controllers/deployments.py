"""Deployment → ReplicaSets (pure), as the Deployment controller does it.

The ReplicaSet whose template equals the Deployment's (ignoring ``pod-template-hash``) is the
new one; it is named ``<deployment>-<hash>`` (FNV-32a of the template, safe-encoded as
Kubernetes encodes it) and numbered by ``deployment.kubernetes.io/revision``. A rollout moves
replicas from the old sets to the new one: ``RollingUpdate`` within maxSurge (rounded up) and
maxUnavailable (rounded down) of the wanted count, counting only available pods, or
``Recreate`` (old pods gone first). A replica count change mid-rollout is spread over the sets
in proportion. Old sets beyond ``revisionHistoryLimit`` (default 10) are deleted once they are
empty. The plan also holds the Deployment's status (replicas, updated, ready, available,
conditions Available and Progressing) and the events the controller records.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podnet.model.apps import Deployment, ReplicaSet
from podnet.model.core import Pod

from .replicasets import controller_of, owned, owner_reference, parse_time

SAFE = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def safe_encode(text: str) -> str:
    return "".join(SAFE[b % len(SAFE)] for b in text.encode())


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """Kubernetes' ComputeHash shape: a uint32 hash, its decimal digits safe-encoded."""
    text = json.dumps(template, sort_keys=True) + ("" if collision_count is None else str(collision_count))
    return safe_encode(str(_fnv32a(text.encode())))


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    meta["labels"] = labels
    if not labels:
        meta.pop("labels")
    return {**template, "metadata": meta}


def same_template(rs: ReplicaSet, dep: Deployment) -> bool:
    return rs.spec.template is not None and \
        without_hash(rs.spec.template.to_dict()) == without_hash(dep.spec.template.to_dict())


def revision(obj: ReplicaSet | Deployment) -> int:
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def resolve(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent of ``total`` (maxSurge rounds up, maxUnavailable down)."""
    if isinstance(value, int):
        return value
    exact = int(value[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(dep: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable); both 0 would stall, so unavailable becomes 1."""
    strategy = dep.spec.strategy
    if strategy is not None and strategy.type == "Recreate":
        return 0, 0
    rolling = strategy.rolling if strategy is not None else None
    surge = resolve(rolling.surge if rolling else "25%", dep.spec.replicas, True)
    unavailable = resolve(rolling.unavailable if rolling else "25%", dep.spec.replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass
class DeploymentPlan:
    """What one pass does: sets to create, replica counts and annotations to write, sets to
    delete, the Deployment's new annotations and status, and events (type, reason, message)."""

    create: list[ReplicaSet] = field(default_factory=list)
    scale: dict[str, int] = field(default_factory=dict)
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)
    delete: list[ReplicaSet] = field(default_factory=list)
    deployment_annotations: dict[str, str] | None = None
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


class _Sets:
    """The Deployment's sets with the replica counts this pass has decided so far."""

    def __init__(self, new: ReplicaSet | None, old: list[ReplicaSet], plan: DeploymentPlan) -> None:
        self.new, self.old, self.plan = new, old, plan

    def replicas(self, rs: ReplicaSet) -> int:
        return self.plan.scale.get(rs.metadata.name, rs.spec.replicas)

    def available(self, rs: ReplicaSet) -> int:
        return int((rs.status or {}).get("availableReplicas", 0))

    def all(self) -> list[ReplicaSet]:
        return ([self.new] if self.new is not None else []) + self.old

    def total(self) -> int:
        return sum(self.replicas(rs) for rs in self.all())

    def set(self, rs: ReplicaSet, count: int) -> None:
        before = self.replicas(rs)
        if count == before:
            return
        self.plan.scale[rs.metadata.name] = count
        word = "up" if count > before else "down"
        self.plan.events.append(("Normal", "ScalingReplicaSet",
                                 f"Scaled {word} replica set {rs.metadata.name} from {before} to {count}"))


def _new_set(dep: Deployment, sets: Sequence[ReplicaSet], rev: int, replicas: int, surge: int) -> ReplicaSet:
    tmpl = dep.spec.template.to_dict()
    collision = (dep.status or {}).get("collisionCount")
    h = template_hash(tmpl, collision)
    taken = {rs.metadata.name for rs in sets}
    while f"{dep.metadata.name}-{h}" in taken:  # another template had this hash: as collisionCount does
        collision = (collision or 0) + 1
        h = template_hash(tmpl, collision)
    labels = {**(tmpl.get("metadata", {}).get("labels") or {}), HASH_LABEL: h}
    tmpl["metadata"] = {**tmpl.get("metadata", {}), "labels": labels}
    selector = dep.spec.selector.to_dict()
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
    annotations = {k: v for k, v in dep.metadata.annotations.items()
                   if k not in (REVISION, "kubectl.kubernetes.io/last-applied-configuration", "podnet.io/source")}
    annotations.update({REVISION: str(rev), DESIRED: str(dep.spec.replicas),
                        MAX_REPLICAS: str(dep.spec.replicas + surge)})
    return ReplicaSet.model_validate({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{dep.metadata.name}-{h}", "namespace": dep.metadata.namespace or "default",
                     "labels": labels, "annotations": annotations, "ownerReferences": [owner_reference(dep)]},
        "spec": {"replicas": replicas, "minReadySeconds": dep.spec.min_ready_seconds or 0, "selector": selector,
                 "template": tmpl}})


def _by_age(sets: Sequence[ReplicaSet]) -> list[ReplicaSet]:
    return sorted(sets, key=lambda rs: (rs.metadata.creation_timestamp or "", rs.metadata.name))


def plan(dep: Deployment, replicasets: Sequence[ReplicaSet], pods: Sequence[Pod], now: datetime) -> DeploymentPlan:
    out = DeploymentPlan()
    mine = [rs for rs in owned(replicasets, dep) if isinstance(rs, ReplicaSet)]
    matching = _by_age([rs for rs in mine if same_template(rs, dep)])
    new = matching[0] if matching else None
    old = [rs for rs in mine if rs is not new]
    surge, unavailable = fenceposts(dep)
    new_revision = max((revision(rs) for rs in old), default=0) + 1
    sets = _Sets(new, old, out)
    recreate = dep.spec.strategy is not None and dep.spec.strategy.type == "Recreate"
    if new is not None:
        _annotate_new(dep, new, new_revision, surge, out)
    if dep.spec.paused or _scaling_event(dep, sets):
        _scale(dep, sets, surge, out)
    elif recreate:
        _recreate(dep, sets, pods, new_revision, surge, out)
    else:
        _rolling(dep, sets, new_revision, surge, unavailable, out)
    if sets.new is not None and new is None:
        out.events.append(("Normal", "ScalingReplicaSet",
                           f"Scaled up replica set {sets.new.metadata.name} from 0 to {sets.new.spec.replicas}"))
        current: int | None = new_revision
    elif new is not None:
        current = max(revision(new), new_revision)
    else:
        current = None
    if current is not None and dep.metadata.annotations.get(REVISION) != str(current):
        out.deployment_annotations = {**dep.metadata.annotations, REVISION: str(current)}
    _cleanup(dep, sets, out)
    out.status = _status(dep, sets, new is None and sets.new is not None, unavailable, now)
    return out


def _mark_desired(dep: Deployment, rs: ReplicaSet, surge: int, out: DeploymentPlan) -> None:
    """The replicas annotations a scaled set carries (what a later pass compares against)."""
    want = dict(out.annotate.get(rs.metadata.name, rs.metadata.annotations))
    want[DESIRED], want[MAX_REPLICAS] = str(dep.spec.replicas), str(dep.spec.replicas + surge)
    if want != rs.metadata.annotations:
        out.annotate[rs.metadata.name] = want


def _annotate_new(dep: Deployment, new: ReplicaSet, new_revision: int, surge: int, out: DeploymentPlan) -> None:
    want = dict(new.metadata.annotations)
    old_rev = revision(new)
    if old_rev < new_revision:  # a rollback: the set becomes the newest revision again
        want[REVISION] = str(new_revision)
        if old_rev:
            history = [h for h in want.get(REVISION_HISTORY, "").split(",") if h]
            want[REVISION_HISTORY] = ",".join(history + [str(old_rev)])
    want[DESIRED] = str(dep.spec.replicas)
    want[MAX_REPLICAS] = str(dep.spec.replicas + surge)
    if CHANGE_CAUSE in dep.metadata.annotations:
        want[CHANGE_CAUSE] = dep.metadata.annotations[CHANGE_CAUSE]
    if want != new.metadata.annotations:
        out.annotate[new.metadata.name] = want


def _create(dep: Deployment, sets: _Sets, new_revision: int, surge: int, replicas: int, out: DeploymentPlan) -> None:
    rs = _new_set(dep, sets.all(), new_revision, replicas, surge)
    out.create.append(rs)
    sets.new = rs


def _rolling(dep: Deployment, sets: _Sets, new_revision: int, surge: int, unavailable: int,
             out: DeploymentPlan) -> None:
    want = dep.spec.replicas
    if sets.new is None:
        _create(dep, sets, new_revision, surge, _scale_up_to(want, surge, sets, 0), out)
    else:
        current = sets.replicas(sets.new)
        if current > want:
            sets.set(sets.new, want)
        elif current < want:
            sets.set(sets.new, _scale_up_to(want, surge, sets, current))
    _scale_down_old(dep, sets, unavailable)


def _scale_up_to(want: int, surge: int, sets: _Sets, current: int) -> int:
    """NewRSNewReplicas: as many as maxSurge allows above the wanted count, no more than wanted."""
    total = sets.total()
    if total >= want + surge:
        return current
    return current + min(want + surge - total, want - current)


def _scale_down_old(dep: Deployment, sets: _Sets, unavailable: int) -> None:
    """reconcileOldReplicaSets: first the old sets' unavailable pods, then available ones while
    at least ``replicas - maxUnavailable`` stay available."""
    if not any(sets.replicas(rs) for rs in sets.old):
        return
    min_available = dep.spec.replicas - unavailable
    new_unavailable = (sets.replicas(sets.new) - sets.available(sets.new)) if sets.new is not None else 0
    budget = sets.total() - min_available - new_unavailable
    if budget <= 0:
        return
    cleaned = 0
    for rs in _by_age(sets.old):
        count = sets.replicas(rs)
        unhealthy = count - sets.available(rs)
        if cleaned >= budget or count == 0 or unhealthy <= 0:
            continue
        down = min(budget - cleaned, unhealthy)
        sets.set(rs, count - down)
        cleaned += down
    available = sum(min(sets.available(rs), sets.replicas(rs)) for rs in sets.old)
    available += sets.available(sets.new) if sets.new is not None else 0
    if available <= min_available:
        return
    allowed = available - min_available
    done = 0
    for rs in _by_age(sets.old):
        count = sets.replicas(rs)
        if done >= allowed or count == 0:
            continue
        down = min(count, allowed - done)
        sets.set(rs, count - down)
        done += down


def _recreate(dep: Deployment, sets: _Sets, pods: Sequence[Pod], new_revision: int, surge: int,
              out: DeploymentPlan) -> None:
    for rs in sets.old:
        sets.set(rs, 0)
    old_uids = {rs.metadata.uid for rs in sets.old}
    if any((controller_of(p) or {}).get("uid") in old_uids and p.status.phase not in ("Succeeded", "Failed")
           for p in pods):
        return  # old pods still run (or terminate): the new ones wait
    if sets.new is None:
        _create(dep, sets, new_revision, surge, dep.spec.replicas, out)
    else:
        sets.set(sets.new, dep.spec.replicas)


def _desired(rs: ReplicaSet) -> int | None:
    try:
        return int(rs.metadata.annotations[DESIRED])
    except (KeyError, ValueError):
        return None


def _scaling_event(dep: Deployment, sets: _Sets) -> bool:
    """The replica count changed while sets already run (isScalingEvent)."""
    active = [rs for rs in sets.all() if sets.replicas(rs) > 0]
    return any(_desired(rs) not in (None, dep.spec.replicas) for rs in active)


def _scale(dep: Deployment, sets: _Sets, surge: int, out: DeploymentPlan) -> None:
    """A replica count change: one active set takes it all; during a rollout it is spread over
    the active sets in proportion to their size (leftovers to the largest), within maxSurge."""
    want = dep.spec.replicas
    active = [rs for rs in sets.all() if sets.replicas(rs) > 0]
    for rs in active:
        _mark_desired(dep, rs, surge, out)
    if not active:
        if sets.new is not None:
            sets.set(sets.new, want)
        return
    if len(active) == 1:
        sets.set(active[0], want)
        return
    allowed = want + surge
    total = sets.total()
    to_add = allowed - total
    if to_add == 0:
        return
    ordered = sorted(active, key=lambda rs: (-sets.replicas(rs), rs.metadata.creation_timestamp or ""),
                     reverse=to_add < 0)
    added = 0
    counts = {}
    for rs in ordered:
        share = 0
        if total:
            share = int(sets.replicas(rs) * to_add / total) if to_add > 0 else -int(sets.replicas(rs) * -to_add / total)
        counts[rs.metadata.name] = share
        added += share
    first = ordered[0]
    counts[first.metadata.name] += to_add - added
    for rs in ordered:
        sets.set(rs, max(0, sets.replicas(rs) + counts[rs.metadata.name]))


def _cleanup(dep: Deployment, sets: _Sets, out: DeploymentPlan) -> None:
    limit = 10 if dep.spec.revision_history_limit is None else dep.spec.revision_history_limit
    empty = [rs for rs in sets.old if sets.replicas(rs) == 0 and not (rs.status or {}).get("replicas")
             and rs.metadata.name not in out.scale]
    excess = len(sets.old) - limit
    if excess <= 0:
        return
    out.delete = sorted(empty, key=revision)[:excess]


def _condition(kind: str, status: bool, reason: str, message: str, previous: dict[str, Any] | None,
               stamp: str, keep_update: bool = True) -> dict[str, Any]:
    value = "True" if status else "False"
    same = previous is not None and previous.get("status") == value
    if same and previous is not None and previous.get("reason") == reason and keep_update:
        return previous
    return {"type": kind, "status": value,
            "lastUpdateTime": stamp,
            "lastTransitionTime": previous.get("lastTransitionTime", stamp) if same and previous else stamp,
            "reason": reason, "message": message}


def _status(dep: Deployment, sets: _Sets, created: bool, unavailable: int, now: datetime) -> dict[str, Any]:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    old_status = dep.status or {}
    every = sets.all()

    def total(key: str) -> int:
        return sum(int((rs.status or {}).get(key, 0)) for rs in every)

    status: dict[str, Any] = {
        "observedGeneration": dep.metadata.generation or 1,
        "replicas": total("replicas"),
        "updatedReplicas": int((sets.new.status or {}).get("replicas", 0)) if sets.new is not None else 0,
        "readyReplicas": total("readyReplicas"),
        "availableReplicas": total("availableReplicas"),
    }
    status["unavailableReplicas"] = max(0, sets.total() - status["availableReplicas"])
    for key in ("collisionCount",):
        if key in old_status:
            status[key] = old_status[key]
    previous = {c.get("type"): c for c in old_status.get("conditions") or []}
    want = dep.spec.replicas
    available = status["availableReplicas"] >= want - unavailable
    conditions = [_condition("Available", available,
                             "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                             "Deployment has minimum availability." if available
                             else "Deployment does not have minimum availability.", previous.get("Available"), stamp)]
    name = sets.new.metadata.name if sets.new is not None else ""
    complete = (status["updatedReplicas"] == want and status["replicas"] == want
                and status["availableReplicas"] == want)
    before = previous.get("Progressing")
    if created:
        progressing = _condition("Progressing", True, "NewReplicaSetCreated", f'Created new replica set "{name}"',
                                 before, stamp, keep_update=False)
    elif complete and sets.new is not None:
        progressing = _condition("Progressing", True, "NewReplicaSetAvailable",
                                 f'ReplicaSet "{name}" has successfully progressed.', before, stamp)
    elif _moved(old_status, status):
        progressing = _condition("Progressing", True, "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.',
                                 before, stamp, keep_update=False)
    elif before is not None and before.get("status") == "True" and before.get("reason") != "NewReplicaSetAvailable" \
            and _timed_out(dep, before, now):
        progressing = _condition("Progressing", False, "ProgressDeadlineExceeded",
                                 f'ReplicaSet "{name}" has timed out progressing.', before, stamp)
    else:
        progressing = before or _condition("Progressing", True, "ReplicaSetUpdated",
                                           f'ReplicaSet "{name}" is progressing.', None, stamp)
    conditions.append(progressing)
    status["conditions"] = conditions
    return status


def _moved(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    if not before:
        return True
    return bool(after["updatedReplicas"] > before.get("updatedReplicas", 0)
            or after["readyReplicas"] > before.get("readyReplicas", 0)
            or after["availableReplicas"] > before.get("availableReplicas", 0)
            or after["replicas"] - after["updatedReplicas"]
            < before.get("replicas", 0) - before.get("updatedReplicas", 0))


def _timed_out(dep: Deployment, condition: dict[str, Any], now: datetime) -> bool:
    deadline = 600 if dep.spec.progress_deadline_seconds is None else dep.spec.progress_deadline_seconds
    since = parse_time(condition.get("lastUpdateTime"))
    return since is not None and (now - since).total_seconds() > deadline
