"""Which IPAM handles belong to a live pod (pure); the control loop feeds this to the IPAM leak
collector, which frees the rest only after a grace period and a re-check."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from podnet.model.core import Pod


def live_handles(handles: Mapping[str, Mapping[str, Any]], pods: Iterable[Pod]) -> set[str]:
    """Handles whose pod (by uid) exists and is bound to the handle's node.

    Only handles made for a Kubernetes pod carry ``podUID`` (podnet's kubelet passes
    K8S_POD_UID). Other runtimes also pass K8S_POD_NAME (podman sets it to the container name),
    so names alone would misjudge them: handles without a uid count as live, and the runtime's
    CNI GC is their authority, not the pod list."""
    where = {p.metadata.uid: p.spec.node_name for p in pods if p.metadata.uid}
    out = set()
    for h, attrs in handles.items():
        uid = attrs.get("podUID")
        if not uid or where.get(uid) == attrs.get("node"):
            out.add(h)
    return out
