"""Host ports (``spec.containers[].ports[].hostPort``): which ports a pod takes on its node,
when two pods' ports collide, and what a node forwards to its pods (pure).

The scheduler and the node read the same rules here, as kube-scheduler's NodePorts filter and
the CNI ``portmap`` plugin read the same pod spec:

* a port with ``hostPort`` > 0 takes (protocol, hostPort, hostIP) on the pod's node; an empty
  ``hostIP`` is ``0.0.0.0``, every address of the node. A ``hostNetwork`` pod's container
  ports are host ports even when ``hostPort`` is left out (the API server defaults it to the
  ``containerPort``); they are its own sockets, so nothing forwards to them.
* two host ports conflict when protocol and port are equal and the addresses overlap: equal,
  or either is ``0.0.0.0`` (``HostPortInfo.CheckConflict``). Pods that differ only in
  ``hostIP`` (``127.0.0.1`` and the node's address) or in protocol share the node.
* the node forwards each host port of its running, addressed pods to podIP:containerPort.
  Should two of its pods claim one host port anyway (bound by hand with ``nodeName``), the one
  first by namespace and name keeps it and the other is reported.
* containers a runtime started through the CNI plugin with ``runtimeConfig.portMappings``
  (``podman run -p 8080:80``) are forwarded the same way: the plugin records the mappings in
  the attachment's IPAM handle, which lives exactly as long as the attachment. They come after
  the store's pods when ports clash; a pod whose runtime passed its own host ports as
  portMappings too (a kubelet) is the same owner and forwarded once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from podnet.model.core import Pod

ANY = "0.0.0.0"


@dataclass(frozen=True, order=True)
class HostPortKey:
    """What a host port takes on a node."""

    protocol: str  # TCP, UDP, SCTP
    port: int
    host_ip: str = ANY

    def overlaps(self, other: HostPortKey) -> bool:
        return (self.protocol == other.protocol and self.port == other.port
                and (self.host_ip == other.host_ip or ANY in (self.host_ip, other.host_ip)))

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.port}/{self.protocol}"


@dataclass(frozen=True, order=True)
class HostPortMapping:
    """One forward a node programs: hostIP:hostPort/protocol → podIP:containerPort."""

    host_ip: str  # 0.0.0.0: every address of the node
    host_port: int
    protocol: str  # lower case, as nft spells it
    pod_ip: str
    container_port: int
    namespace: str
    pod: str

    @property
    def key(self) -> HostPortKey:
        return HostPortKey(self.protocol.upper(), self.host_port, self.host_ip)

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.pod}"


def _host_ip(text: str | None) -> str:
    return text or ANY


def wanted_host_ports(pod: Pod) -> list[HostPortKey]:
    """The host ports a pod takes on its node (its own duplicates once)."""
    out: dict[HostPortKey, None] = {}
    host_network = pod.spec.host_network
    for c in pod.spec.containers:
        for p in c.ports or ():
            port = p.host_port or (p.container_port if host_network else 0)
            if port:
                out[HostPortKey(p.protocol, port, _host_ip(p.host_ip))] = None
    return list(out)


def conflicts(asked: Iterable[HostPortKey], taken: Iterable[HostPortKey]) -> list[tuple[HostPortKey, HostPortKey]]:
    """(asked, taken) pairs that collide."""
    held = list(taken)
    return [(a, t) for a in asked for t in held if a.overlaps(t)]


def _forwarded(pod: Pod, node: str) -> bool:
    return (pod.spec.node_name == node and not pod.spec.host_network and bool(pod.status.pod_ip)
            and pod.status.phase not in ("Succeeded", "Failed"))


def attachment_mappings(handles: Iterable[Mapping[str, Any]], node: str) -> list[HostPortMapping]:
    """The forwards of CNI attachments on ``node`` (IPAM handle values with ``portMappings``);
    the owner is the pod the runtime named (``K8S_POD_NAMESPACE``/``NAME``), else ``cni/<container>``."""
    out = []
    for h in handles:
        ips = h.get("ips") or []
        if h.get("node") != node or not ips or ":" in str(ips[0]):
            continue
        ns, pod = (str(h["namespace"]), str(h["pod"])) if h.get("namespace") and h.get("pod") else (
            "cni", str(h.get("containerID", ""))[:12])
        for m in h.get("portMappings") or ():
            host_ip = str(m.get("hostIP") or "") or ANY
            if ":" in host_ip:
                continue
            out.append(HostPortMapping(host_ip, int(m["hostPort"]), str(m.get("protocol") or "tcp").lower(),
                                       str(ips[0]).split("/")[0], int(m["containerPort"]), ns, pod))
    return sorted(out, key=lambda m: (m.owner, m))


def node_mappings(pods: Iterable[Pod], node: str,
                  attachments: Iterable[HostPortMapping] = ()) -> tuple[list[HostPortMapping], list[str]]:
    """The forwards ``node`` programs for its pods and then its CNI ``attachments``, and the
    conflicts it leaves out (as text)."""
    taken: list[HostPortMapping] = []
    problems: list[str] = []

    def take(m: HostPortMapping) -> None:
        clash = next((t for t in taken if t.key.overlaps(m.key)), None)
        if clash is None:
            taken.append(m)
        elif clash.owner != m.owner:
            problems.append(f"{m.owner}: host port {m.key} is taken by {clash.owner}")

    for pod in sorted(pods, key=lambda p: (p.namespace or "default", p.name)):
        if not _forwarded(pod, node):
            continue
        pod_ip = pod.status.pod_ip or ""
        if ":" in pod_ip:
            continue  # IPv4 only, as the node's tables
        ns = pod.namespace or "default"
        for c in pod.spec.containers:
            for p in c.ports or ():
                if not p.host_port or ":" in (p.host_ip or ""):
                    continue
                take(HostPortMapping(_host_ip(p.host_ip), p.host_port, p.protocol.lower(), pod_ip, p.container_port,
                                     ns, pod.name))
    for m in attachments:
        take(m)
    return sorted(taken), problems
