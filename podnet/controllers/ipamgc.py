"""Which IPAM handles belong to a live pod (pure); the control loop feeds this to the IPAM leak
collector, which frees the rest only after a grace period and a re-check."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from podnet.model.core import Pod


def live_handles(handles: Mapping[str, Mapping[str, Any]], pods: Iterable[Pod]) -> set[str]:
    """Handles whose (namespace, pod) exists and is bound to the handle's node. Handles made
    outside Kubernetes (no pod attributes: podman, tunnels) count as live: the runtime's CNI GC
    is their authority, not the pod list."""
    where = {((p.namespace or "default"), p.name): p.spec.node_name for p in pods}
    out = set()
    for h, attrs in handles.items():
        key = (attrs.get("namespace"), attrs.get("pod"))
        if key[0] is None or key[1] is None:
            out.add(h)
        elif key in where and where[key] == attrs.get("node"):
            out.add(h)
    return out
