"""The cluster as the policy engine sees it: endpoints, namespace labels, compiled policies.

Built once from a snapshot of model values, then read by ``evaluate``, the matrix, the
resolver and lint. The per-pair primitives (``peer_matches``, ``ports_match``) live here so the
explainer, the reference evaluator and the resolver all apply one definition.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping, Protocol

from podnet.errors import NotFound, PodnetError
from podnet.model import EndpointSlice, Namespace, NetworkPolicy, Pod, Service
from podnet.model.selectors import LabelSelector

from .ir import Direction, IPBlockPeer, Locator, PodPeer, PolicyIR, PortMatch, Rule, compile_policies

if TYPE_CHECKING:
    from .services import ServiceView

NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
ICMP = "ICMP"

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Endpoint:
    """A pod, or a plain address outside the cluster (namespace/name None)."""

    ip: str | None
    namespace: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    host_network: bool = False
    node: str | None = None
    host_ip: str | None = None
    named_ports: Mapping[tuple[str, str], int] = field(default_factory=dict, compare=False)
    #: every declared containerPort as (number, protocol), in declaration order
    container_ports: tuple[tuple[int, str], ...] = ()

    @property
    def is_pod(self) -> bool:
        return self.name is not None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.is_pod else str(self.ip)

    @property
    def selectable(self) -> bool:
        """Only pod-network pods are selected by policies or matched by pod selectors."""
        return self.is_pod and not self.host_network

    def describe(self) -> str:
        if not self.is_pod:
            return f"address {self.ip} (outside the cluster)"
        suffix = " (hostNetwork)" if self.host_network else ""
        return f"pod {self.key}{suffix}"

    def to_dict(self) -> dict[str, object]:
        if not self.is_pod:
            return {"kind": "external", "ip": self.ip}
        out: dict[str, object] = {"kind": "pod", "pod": self.key, "namespace": self.namespace, "name": self.name,
                                  "ip": self.ip, "labels": dict(sorted(self.labels.items()))}
        if self.host_network:
            out["hostNetwork"] = True
        if self.node:
            out["node"] = self.node
        return out


def endpoint_for_pod(pod: Pod) -> Endpoint:
    return Endpoint(
        ip=pod.status.pod_ip,
        namespace=pod.metadata.namespace or "default",
        name=pod.metadata.name,
        labels=MappingProxyType(dict(pod.metadata.labels)),
        host_network=pod.spec.host_network,
        node=pod.spec.node_name,
        host_ip=pod.status.host_ip,
        named_ports=MappingProxyType(pod.spec.named_ports()),
        container_ports=tuple((p.container_port, p.protocol) for c in pod.spec.containers for p in c.ports or ()),
    )


@dataclass(frozen=True)
class ClusterState:
    """Namespaces (with their labels), pods and compiled policies, in canonical order."""

    namespace_labels: Mapping[str, Mapping[str, str]]
    pods: tuple[Endpoint, ...]
    policies: tuple[PolicyIR, ...]
    ipblock_matches_pods: bool = True
    by_key: Mapping[str, Endpoint] = field(default_factory=dict, compare=False, repr=False)
    by_ip: Mapping[str, Endpoint] = field(default_factory=dict, compare=False, repr=False)
    policies_by_ns: Mapping[str, tuple[PolicyIR, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: memo of namespace selector → matching namespaces (derived data; the state never changes)
    ns_match_memo: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: ``ns/name`` → a Service and its backends (``policy.services.ServiceView``)
    services: Mapping[str, "ServiceView"] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        namespaces: Iterable[Namespace],
        pods: Iterable[Pod],
        policies: Iterable[NetworkPolicy],
        *,
        ipblock_matches_pods: bool = True,
        sources: dict[str, str] | None = None,
        locators: dict[str, Locator] | None = None,
        services: Iterable[Service] = (),
        slices: Iterable[EndpointSlice] = (),
    ) -> "ClusterState":
        """From model values. ``sources``/``locators``: see ``ir.compile_policies``; ``slices``
        give the endpoints of Services without a selector."""
        from .services import service_views

        pods = list(pods)
        state = cls.from_parts(namespaces, [endpoint_for_pod(p) for p in pods],
                               compile_policies(policies, sources, locators),
                               ipblock_matches_pods=ipblock_matches_pods)
        return replace(state, services=service_views(services, pods, slices))

    @classmethod
    def from_parts(
        cls,
        namespaces: Iterable[Namespace],
        pods: Iterable[Endpoint],
        policies: Iterable[PolicyIR],
        *,
        ipblock_matches_pods: bool = True,
    ) -> "ClusterState":
        labels: dict[str, Mapping[str, str]] = {}
        for ns in namespaces:
            # The API server sets kubernetes.io/metadata.name on every namespace.
            labels[ns.metadata.name] = MappingProxyType({**ns.metadata.labels, NAME_LABEL: ns.metadata.name})
        pods = sorted(pods, key=lambda e: e.key)
        for pod in pods:
            if pod.namespace not in labels:
                labels[pod.namespace] = MappingProxyType({NAME_LABEL: pod.namespace})  # type: ignore[index]
        policies = tuple(sorted(policies, key=lambda p: (p.namespace, p.name)))
        by_ns: dict[str, list[PolicyIR]] = {}
        for pol in policies:
            by_ns.setdefault(pol.namespace, []).append(pol)
        by_ip: dict[str, Endpoint] = {}
        for pod in pods:
            if pod.ip and (pod.ip not in by_ip or by_ip[pod.ip].host_network and not pod.host_network):
                by_ip[pod.ip] = pod
        return cls(
            namespace_labels=MappingProxyType(dict(sorted(labels.items()))),
            pods=tuple(pods),
            policies=policies,
            ipblock_matches_pods=ipblock_matches_pods,
            by_key={p.key: p for p in pods},
            by_ip=by_ip,
            policies_by_ns={k: tuple(v) for k, v in by_ns.items()},
        )

    def ns_labels(self, namespace: str | None) -> Mapping[str, str]:
        if namespace is None:
            return _EMPTY
        return self.namespace_labels.get(namespace, MappingProxyType({NAME_LABEL: namespace}))

    def namespaces_matching(self, selector: LabelSelector) -> tuple[str, ...]:
        """Names of the namespaces a namespaceSelector matches, sorted."""
        key = json.dumps(selector.to_dict(), sort_keys=True)
        hit = self.ns_match_memo.get(key)
        if hit is None:
            hit = self.ns_match_memo[key] = tuple(ns for ns, labels in self.namespace_labels.items() if selector.matches(labels))
        return hit

    def endpoint(self, ref: str) -> Endpoint:
        """``ns/pod`` or an IP address (a pod's IP resolves to that pod)."""
        if "/" in ref:
            try:
                return self.by_key[ref]
            except KeyError:
                raise NotFound(f"pod {ref} not found", hint="give NAMESPACE/POD of an existing pod, or an IP address") from None
        try:
            ip = str(ipaddress.ip_address(ref))
        except ValueError:
            raise PodnetError(f"{ref!r} is neither NAMESPACE/POD nor an IP address",
                              hint="write e.g. default/web or 10.244.1.5") from None
        return self.by_ip.get(ip) or Endpoint(ip=ip)

    def selecting(self, ep: Endpoint, direction: Direction) -> tuple[PolicyIR, ...]:
        """Policies that select ``ep`` and isolate it for ``direction``."""
        if not ep.selectable:
            return ()
        return tuple(
            p for p in self.policies_by_ns.get(ep.namespace or "", ())
            if direction in p.isolates and p.pod_selector.matches(ep.labels)
        )

    def selecting_any(self, ep: Endpoint) -> tuple[PolicyIR, ...]:
        if not ep.selectable:
            return ()
        return tuple(p for p in self.policies_by_ns.get(ep.namespace or "", ()) if p.pod_selector.matches(ep.labels))


# --- per-pair primitives ------------------------------------------------------------------


class PeerContext(Protocol):
    """What matching a peer needs of the cluster besides the endpoint: its namespace's labels,
    and whether ipBlocks match pod addresses. ``ClusterState`` is one; the dataplane's live
    planner passes the state of its last full render."""

    @property
    def ipblock_matches_pods(self) -> bool: ...

    def ns_labels(self, namespace: str | None) -> Mapping[str, str]: ...


def peer_matches(peer: PodPeer | IPBlockPeer, ep: Endpoint, ctx: PeerContext) -> bool:
    if isinstance(peer, IPBlockPeer):
        if ep.selectable and not ctx.ipblock_matches_pods:
            return False
        return peer.contains(ep.ip)
    if not ep.selectable:
        return False
    return peer.namespace_in_scope(ep.namespace or "", ctx.ns_labels(ep.namespace)) and peer.pod_selector.matches(ep.labels)


def rule_peers_match(rule: Rule, ep: Endpoint, ctx: PeerContext) -> bool:
    return rule.peers is None or any(peer_matches(p, ep, ctx) for p in rule.peers)


def port_matches(pm: PortMatch, port: int | None, protocol: str, dst: Endpoint) -> bool:
    return pm.matches(port, protocol, dst.named_ports if dst.is_pod else None)


def rule_ports_match(rule: Rule, port: int | None, protocol: str, dst: Endpoint) -> bool:
    """ICMP (or any protocol without ports) is allowed only by a rule without ``ports``."""
    if rule.ports is None:
        return True
    return any(port_matches(pm, port, protocol, dst) for pm in rule.ports)


def always_allowed(src: Endpoint, dst: Endpoint) -> str | None:
    """Traffic NetworkPolicy never blocks; the reason, or None."""
    if src.is_pod and dst.is_pod and src.key == dst.key:
        return "a pod can always reach itself"
    if dst.selectable and src.ip and dst.host_ip and src.ip == dst.host_ip and not src.selectable:
        return f"traffic from the pod's own node ({dst.host_ip}) is always allowed (kubelet probes)"
    return None


def direction_allowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str,
                      direction: Direction) -> bool:
    """The plain per-pair decision for one direction (the reference definition)."""
    subject, peer = (dst, src) if direction == "ingress" else (src, dst)
    policies = state.selecting(subject, direction)
    if not policies:
        return True
    return any(
        rule_peers_match(rule, peer, state) and rule_ports_match(rule, port, protocol, dst)
        for pol in policies
        for rule in pol.rules(direction)
    )


def allowed(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> bool:
    """The reference evaluator: one pair, one port, straight from the definitions."""
    if always_allowed(src, dst):
        return True
    return direction_allowed(state, src, dst, port, protocol, "egress") and direction_allowed(
        state, src, dst, port, protocol, "ingress")
