"""The scheduler: bind pods without a node to the node with the fewest pods (pure).

A node must pass kube-scheduler's filters that podnet models: not ``unschedulable``, the pod's
``nodeSelector`` matches its labels (NodeAffinity), and no host port the pod asks for is
taken there (NodePorts). A pod no node fits stays Pending and gets kube-scheduler's
FailedScheduling message: ``0/3 nodes are available: 3 node(s) didn't have free ports for the
requested pod ports.``
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from podnet.model.core import Node, Pod
from podnet.services.hostports import HostPortKey, conflicts, wanted_host_ports

#: kube-scheduler's reasons, as its filters word them
UNSCHEDULABLE = "node(s) were unschedulable"
SELECTOR = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"


@dataclass(frozen=True)
class Unschedulable:
    """A pod no node fits, and why (kube-scheduler's FitError message)."""

    pod: Pod
    nodes: int
    #: reason → how many nodes it ruled out
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if not self.nodes:
            return "no nodes available to schedule pods"
        parts = sorted(f"{count} {reason}" for reason, count in self.reasons.items())
        detail = f" {', '.join(parts)}." if parts else ""
        return f"0/{self.nodes} nodes are available:{detail}"


@dataclass(frozen=True)
class Schedule:
    """One pass: the bindings to write and the pods left Pending."""

    bindings: list[tuple[Pod, str]]
    unschedulable: list[Unschedulable]


def _schedulable(node: Node) -> bool:
    spec = node.to_dict().get("spec") or {}
    return not spec.get("unschedulable", False)


def _holds_node(p: Pod) -> bool:
    return bool(p.spec.node_name) and p.status.phase not in ("Succeeded", "Failed")


def plan(pods: Iterable[Pod], nodes: Sequence[Node]) -> Schedule:
    """Bindings for every unbound, undeleted pod that some node fits, and why the others fit none.

    Fewest pods first, counting the bindings made in this pass; ties go to the node whose name
    sorts first. Pods are taken in (namespace, name) order so the result depends only on the
    input, not on event order; host ports taken by a binding of this pass count for the next.
    """
    pods = sorted(pods, key=lambda p: (p.namespace or "default", p.name))
    usable = {n.name for n in nodes if _schedulable(n)}
    load = {n: 0 for n in usable}
    labels = {n.name: n.labels for n in nodes}
    ports: dict[str, list[HostPortKey]] = {n.name: [] for n in nodes}
    for p in pods:
        if _holds_node(p):
            if p.spec.node_name in load:
                load[p.spec.node_name] += 1
            ports.setdefault(p.spec.node_name or "", []).extend(wanted_host_ports(p))
    bindings, pending = [], []
    for p in pods:
        if p.spec.node_name or p.metadata.deletion_timestamp:
            continue
        want = p.spec.node_selector or {}
        asked = wanted_host_ports(p)
        reasons: dict[str, int] = {}
        fits = []
        for n in sorted(labels):
            if n not in usable:
                reason = UNSCHEDULABLE
            elif not all(labels[n].get(k) == v for k, v in want.items()):
                reason = SELECTOR
            elif conflicts(asked, ports[n]):
                reason = PORTS
            else:
                fits.append(n)
                continue
            reasons[reason] = reasons.get(reason, 0) + 1
        if not fits:
            pending.append(Unschedulable(p, len(labels), reasons))
            continue
        best = min(fits, key=lambda n: (load[n], n))
        load[best] += 1
        ports[best].extend(asked)
        bindings.append((p, best))
    return Schedule(bindings, pending)


def schedule(pods: Iterable[Pod], nodes: Sequence[Node]) -> list[tuple[Pod, str]]:
    """(pod, node name) bindings for every unbound, undeleted pod that some node fits."""
    return plan(pods, nodes).bindings


def bind(pod: Pod, node: str) -> Pod:
    """The pod with ``spec.nodeName`` set."""
    data = pod.to_dict()
    data["spec"]["nodeName"] = node
    return Pod.model_validate(data)
