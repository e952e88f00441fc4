"""The scheduler: bind pods without a node to the node with the fewest pods (pure)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from podnet.model.core import Node, Pod


def _schedulable(node: Node) -> bool:
    spec = node.to_dict().get("spec") or {}
    return not spec.get("unschedulable", False)


def schedule(pods: Iterable[Pod], nodes: Sequence[Node]) -> list[tuple[Pod, str]]:
    """(pod, node name) bindings for every unbound, undeleted pod that some node fits.

    Fewest pods first, counting the bindings made in this pass; ties go to the node whose name
    sorts first; a pod's ``nodeSelector`` must match the node's labels. Pods are taken in
    (namespace, name) order so the result depends only on the input, not on event order.
    """
    pods = sorted(pods, key=lambda p: (p.namespace or "default", p.name))
    load = {n.name: 0 for n in nodes if _schedulable(n)}
    labels = {n.name: n.labels for n in nodes}
    for p in pods:
        if p.spec.node_name in load and p.status.phase not in ("Succeeded", "Failed"):
            load[p.spec.node_name] += 1
    out = []
    for p in pods:
        if p.spec.node_name or p.metadata.deletion_timestamp:
            continue
        want = p.spec.node_selector or {}
        fits = [n for n in load if all(labels[n].get(k) == v for k, v in want.items())]
        if not fits:
            continue
        best = min(fits, key=lambda n: (load[n], n))
        load[best] += 1
        out.append((p, best))
    return out


def bind(pod: Pod, node: str) -> Pod:
    """The pod with ``spec.nodeName`` set."""
    data = pod.to_dict()
    data["spec"]["nodeName"] = node
    return Pod.model_validate(data)
