"""ReplicaSet → Pods (pure), as the ReplicaSet controller does it: count the active pods the set
owns (its controller reference, by uid), create the missing ones from the template
(``generateName: <set>-``), delete the surplus the upstream ranking picks first (unscheduled,
pending, not ready, most recently ready, most restarted, newest), and report replicas,
fullyLabeledReplicas, readyReplicas and availableReplicas (Ready for minReadySeconds)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podnet.model.apps import ReplicaSet
from podnet.model.base import Resource
from podnet.model.core import Pod


@dataclass(frozen=True)
class ReplicaSetPlan:
    create: tuple[Pod, ...]
    delete: tuple[Pod, ...]
    status: dict[str, Any]


def controller_of(obj: Resource) -> dict[str, Any] | None:
    """The owner reference with ``controller: true``, if any."""
    return next((r for r in obj.metadata.owner_references or [] if r.get("controller")), None)


def owned(objs: Iterable[Resource], owner: Resource) -> list[Resource]:
    """Objects in ``owner``'s namespace whose controller reference is ``owner`` (by uid)."""
    ns = owner.metadata.namespace or "default"
    return [o for o in objs if (o.metadata.namespace or "default") == ns
            and (controller_of(o) or {}).get("uid") == owner.metadata.uid]


def owner_reference(owner: Resource) -> dict[str, Any]:
    return {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.metadata.name,
            "uid": owner.metadata.uid or "", "controller": True, "blockOwnerDeletion": True}


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def is_active(pod: Pod) -> bool:
    return not pod.metadata.deletion_timestamp and pod.status.phase not in ("Succeeded", "Failed")


def ready_since(pod: Pod) -> datetime | None:
    for c in pod.status.conditions or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime")) or datetime.min.replace(tzinfo=UTC)
    return None


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Ready, and for at least ``min_ready_seconds``."""
    since = ready_since(pod)
    return since is not None and (min_ready_seconds == 0 or (now - since).total_seconds() >= min_ready_seconds)


def _deletion_rank(pod: Pod) -> tuple[Any, ...]:
    """Sorts the pods to delete first to the front (the upstream ActivePods ranking)."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod.status.phase or "Pending", 0)
    since = ready_since(pod)
    restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
    created = parse_time(pod.metadata.creation_timestamp)
    return (bool(pod.spec.node_name), phase_rank, since is not None,
            -(since.timestamp() if since else 0), -restarts, -(created.timestamp() if created else 0), pod.name)


def new_pod(rs: ReplicaSet) -> Pod:
    """A pod from the set's template: ``generateName`` and a controller reference."""
    assert rs.spec.template is not None
    tmpl = rs.spec.template.to_dict()
    meta = dict(tmpl.get("metadata") or {})
    meta.pop("name", None)
    meta["generateName"] = f"{rs.metadata.name}-"
    meta["namespace"] = rs.metadata.namespace or "default"
    meta["ownerReferences"] = [owner_reference(rs)]
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]})


def plan(rs: ReplicaSet, pods: Sequence[Pod], now: datetime) -> ReplicaSetPlan:
    mine = [p for p in owned(pods, rs) if isinstance(p, Pod)]
    active = [p for p in mine if is_active(p)]
    want = rs.spec.replicas
    create: tuple[Pod, ...] = ()
    delete: tuple[Pod, ...] = ()
    if len(active) < want and rs.spec.template is not None:
        create = tuple(new_pod(rs) for _ in range(want - len(active)))
    elif len(active) > want:
        delete = tuple(sorted(active, key=_deletion_rank)[: len(active) - want])
    labels = rs.spec.template.metadata.labels if rs.spec.template else {}
    min_ready = rs.spec.min_ready_seconds or 0
    status = {"replicas": len(active),
              "fullyLabeledReplicas": sum(1 for p in active if all(p.labels.get(k) == v for k, v in labels.items())),
              "readyReplicas": sum(1 for p in active if p.ready),
              "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
              "observedGeneration": rs.metadata.generation or 1}
    return ReplicaSetPlan(create, delete, status)


def orphaned(objs: Iterable[Resource], owners: Iterable[Resource], kind: str) -> list[Resource]:
    """Objects whose controller is a ``kind`` that no longer exists (by uid): what the garbage
    collector deletes after their owner (background propagation)."""
    live = {o.metadata.uid for o in owners}
    return [o for o in objs if (ref := controller_of(o)) is not None and ref.get("kind") == kind
            and ref.get("uid") not in live]
