"""Deployment → Pods (pure): N replicas named ``<name>-<pod-template-hash>-<suffix>``.

The hash is of the pod template (so a changed template gets new pods, as a new ReplicaSet
would); suffixes are derived from the deployment, hash and replica index, so the same input
always plans the same names. Pods carry the template's labels plus ``pod-template-hash`` and
an owner reference to the Deployment.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from podnet.model.apps import Deployment
from podnet.model.core import Pod

SAFE = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet


def _safe(digest: bytes, n: int) -> str:
    return "".join(SAFE[b % len(SAFE)] for b in digest[:n])


def template_hash(dep: Deployment) -> str:
    text = json.dumps(dep.spec.template.to_dict(), sort_keys=True)
    return _safe(hashlib.sha256(text.encode()).digest(), 10)


def pod_name(dep: Deployment, h: str, index: int) -> str:
    digest = hashlib.sha256(f"{dep.namespace}/{dep.name}/{h}/{index}".encode()).digest()
    return f"{dep.name}-{h}-{_safe(digest, 5)}"


def owned_by(pod: Pod, dep: Deployment) -> bool:
    refs = pod.metadata.owner_references or []
    return any(r.get("kind") == "Deployment" and r.get("name") == dep.name for r in refs)


@dataclass(frozen=True)
class DeploymentPlan:
    create: tuple[Pod, ...]
    delete: tuple[Pod, ...]
    status: dict[str, Any]


def plan(dep: Deployment, pods: Iterable[Pod]) -> DeploymentPlan:
    """What to create and delete so that exactly ``replicas`` current-template pods exist."""
    ns = dep.namespace or "default"
    h = template_hash(dep)
    mine = sorted((p for p in pods if (p.namespace or "default") == ns and owned_by(p, dep)), key=lambda p: p.name)
    current = [p for p in mine if p.labels.get("pod-template-hash") == h and not p.metadata.deletion_timestamp]
    stale = [p for p in mine if p.labels.get("pod-template-hash") != h]
    extra = current[dep.spec.replicas:]
    keep = current[: dep.spec.replicas]
    names = {p.name for p in mine}
    create = []
    index = 0
    while len(keep) + len(create) < dep.spec.replicas:
        name = pod_name(dep, h, index)
        index += 1
        if name in names:
            continue
        create.append(_pod(dep, h, name))
    ready = sum(1 for p in keep if _ready(p))
    status = {"observedGeneration": dep.metadata.generation or 1, "replicas": len(keep) + len(create),
              "updatedReplicas": len(keep) + len(create), "readyReplicas": ready, "availableReplicas": ready}
    return DeploymentPlan(tuple(create), tuple(stale + extra), status)


def _ready(p: Pod) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (p.status.conditions or []))


def _pod(dep: Deployment, h: str, name: str) -> Pod:
    tmpl = dep.spec.template.to_dict()
    meta = dict(tmpl.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), "pod-template-hash": h}
    meta["name"] = name
    meta["namespace"] = dep.namespace or "default"
    meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dep.name,
                                "uid": dep.metadata.uid or "", "controller": True}]
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]})


def orphans(pods: Iterable[Pod], deployments: Sequence[Deployment]) -> list[Pod]:
    """Pods owned by a Deployment that no longer exists (deleted with it, like the GC does)."""
    live = {(d.namespace or "default", d.name) for d in deployments}
    out = []
    for p in pods:
        for r in p.metadata.owner_references or []:
            if r.get("kind") == "Deployment" and ((p.namespace or "default"), r.get("name")) not in live:
                out.append(p)
                break
    return out
