"""The cluster as the policy engine sees it: endpoints, namespace labels, compiled policies,
tiers, network sets and nodes.

Built once from a snapshot of model values, then read by the walk (``walk``), ``evaluate``,
the matrix, the resolver, lint and diff. The per-pair primitives (which policies apply to an
endpoint, in what order; whether a peer or a whole rule matches) live here, so every reader
applies one definition.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from podnet.errors import NotFound, PodnetError
from podnet.model import (
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    CalicoNetworkPolicy,
    ClusterNetworkPolicy,
    EndpointSlice,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Ingress,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Node,
    Pod,
    Service,
    Tier,
)
from podnet.model.selectors import LabelSelector

from .admin_ir import compile_admin
from .bits import bitset, set_bits
from .calico_ir import NAME_LABEL as CALICO_NAME_LABEL
from .calico_ir import NAMESPACED_MARK, compile_calico
from .ir import (
    AdminSubject,
    CalicoSubject,
    Direction,
    EntityPeer,
    IPBlockPeer,
    IPNetwork,
    Locator,
    NetworkPeer,
    NodePeer,
    Peer,
    PodPeer,
    PolicyIR,
    PortMatch,
    Rule,
    compile_policy,
    in_networks,
)
from .order import TierInfo, build_tiers, evaluation_order

if TYPE_CHECKING:
    from .services import ServiceView

NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
ICMP = "ICMP"
#: what the engine sends as ICMP (and what ``--protocols ICMP`` probes): an echo request
ICMP_ECHO = (8, 0)
#: every policy kind the engine reads
PolicyObject = (NetworkPolicy | CalicoNetworkPolicy | GlobalNetworkPolicy | AdminNetworkPolicy | BaselineAdminNetworkPolicy
                | ClusterNetworkPolicy)
POLICY_CLASSES: tuple[type[PolicyObject], ...] = (NetworkPolicy, CalicoNetworkPolicy, GlobalNetworkPolicy,
                                                   AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy)
# Calico's labels for a pod (felix's workload endpoint and its namespace/service account profiles)
CALICO_NAMESPACE = "projectcalico.org/namespace"
CALICO_ORCHESTRATOR = "projectcalico.org/orchestrator"
CALICO_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"

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
    service_account: str = "default"
    #: derived once (every matcher asks): ``ns/name`` or the address, and whether policy selects it
    key: str = field(init=False, compare=False, repr=False)
    selectable: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        pod = self.name is not None
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}" if pod else str(self.ip))
        # only pod-network pods are selected by policies or matched by pod selectors
        object.__setattr__(self, "selectable", pod and not self.host_network)

    @property
    def is_pod(self) -> bool:
        return self.name is not None

    @property
    def ip_version(self) -> int:
        return 6 if self.ip and ":" in self.ip else 4

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
        service_account=pod.spec.service_account_name or pod.spec.service_account or "default",
    )


@dataclass(frozen=True)
class NetSet:
    """A NetworkSet (``namespace`` set) or GlobalNetworkSet: addresses that rule selectors match
    by the set's labels (a namespaced set also carries its namespace's labels, as in Calico)."""

    name: str
    namespace: str | None
    labels: Mapping[str, str]
    nets: tuple[str, ...]
    networks: tuple[IPNetwork, ...] = field(compare=False, repr=False, default=())

    @property
    def ref(self) -> str:
        return f"networkset {self.namespace}/{self.name}" if self.namespace else f"globalnetworkset {self.name}"


@dataclass(frozen=True)
class NodeInfo:
    """A node: its labels and addresses (what an AdminNetworkPolicy ``nodes`` peer matches)."""

    name: str
    labels: Mapping[str, str]
    addresses: tuple[str, ...]


def node_info(node: Node) -> NodeInfo:
    labels = {"kubernetes.io/hostname": node.metadata.name, **node.metadata.labels}
    addresses = tuple(sorted({a.address for a in node.status.addresses or ()}))
    return NodeInfo(node.metadata.name, MappingProxyType(labels), addresses)


def _net_set(obj: NetworkSet | GlobalNetworkSet) -> tuple[str, str | None, dict[str, str], tuple[str, ...]]:
    namespace = (obj.metadata.namespace or "default") if isinstance(obj, NetworkSet) else None
    return obj.metadata.name, namespace, dict(obj.metadata.labels), tuple(obj.spec.nets or ())


def compile_any(obj: PolicyObject, source: str | None = None, locate: Locator | None = None) -> PolicyIR:
    """Any policy kind → PolicyIR."""
    if isinstance(obj, NetworkPolicy):
        return compile_policy(obj, source, locate)
    if isinstance(obj, (CalicoNetworkPolicy, GlobalNetworkPolicy)):
        return compile_calico(obj, source, locate)
    return compile_admin(obj, source, locate)


def ref_of(obj: PolicyObject) -> str:
    """The ref ``compile_any(obj)`` will have (sources and locators are keyed by it)."""
    ns = obj.metadata.namespace or "default"
    if isinstance(obj, NetworkPolicy):
        return f"{ns}/{obj.metadata.name}"
    if isinstance(obj, CalicoNetworkPolicy):
        return f"calico:{ns}/{obj.metadata.name}"
    tag = {GlobalNetworkPolicy: "gnp", AdminNetworkPolicy: "anp", BaselineAdminNetworkPolicy: "banp",
           ClusterNetworkPolicy: "cnp"}[type(obj)]
    return f"{tag}:{obj.metadata.name}"


@dataclass(frozen=True)
class ClusterState:
    """Namespaces (with their labels), pods and compiled policies, in canonical order; for
    tiered policy also the tiers, network sets and nodes."""

    namespace_labels: Mapping[str, Mapping[str, str]]
    pods: tuple[Endpoint, ...]
    policies: tuple[PolicyIR, ...]
    ipblock_matches_pods: bool = True
    by_key: Mapping[str, Endpoint] = field(default_factory=dict, compare=False, repr=False)
    by_ip: Mapping[str, Endpoint] = field(default_factory=dict, compare=False, repr=False)
    #: Kubernetes NetworkPolicies by namespace (what the nft renderer enforces)
    policies_by_ns: Mapping[str, tuple[PolicyIR, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: memo of namespace selector → matching namespaces (derived data; the state never changes)
    ns_match_memo: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    tiers: tuple[TierInfo, ...] = ()
    network_sets: tuple[NetSet, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    #: every policy in evaluation order, and the ones that can apply to pods of a namespace
    ordered: tuple[PolicyIR, ...] = field(default=(), compare=False, repr=False)
    candidates_by_ns: Mapping[str, tuple[PolicyIR, ...]] = field(default_factory=dict, compare=False, repr=False)
    cluster_wide: tuple[PolicyIR, ...] = field(default=(), compare=False, repr=False)
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)
    #: ``ns/name`` → a Service and its backends (``policy.services.ServiceView``)
    services: Mapping[str, ServiceView] = field(default_factory=dict, compare=False, repr=False)
    #: (Ingress ``ns/name``, Service ``ns/name``, Service port number or name) of every Ingress path
    ingress_backends: tuple[tuple[str, str, int | str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        namespaces: Iterable[Namespace],
        pods: Iterable[Pod],
        policies: Iterable[PolicyObject],
        *,
        ipblock_matches_pods: bool = True,
        sources: Mapping[str, str] | None = None,
        locators: Mapping[str, Locator] | None = None,
        tiers: Iterable[Tier] = (),
        network_sets: Iterable[NetworkSet | GlobalNetworkSet] = (),
        nodes: Iterable[Node] = (),
        services: Iterable[Service] = (),
        slices: Iterable[EndpointSlice] = (),
        ingresses: Iterable[Ingress] = (),
    ) -> ClusterState:
        """From model values. ``sources``/``locators``: ``ref`` → ``file:line`` / field locator;
        ``slices`` give the endpoints of Services without a selector."""
        from .services import ingress_backends, service_views

        sources = sources or {}
        locators = locators or {}
        pods = list(pods)
        compiled = [compile_any(p, sources.get(ref_of(p)), locators.get(ref_of(p))) for p in policies]
        state = cls.from_parts(namespaces, [endpoint_for_pod(p) for p in pods], compiled,
                               ipblock_matches_pods=ipblock_matches_pods, tiers=tiers,
                               network_sets=network_sets, nodes=nodes, tier_sources=sources)
        return replace(state, services=service_views(services, pods, slices),
                       ingress_backends=ingress_backends(ingresses))

    @classmethod
    def from_parts(
        cls,
        namespaces: Iterable[Namespace],
        pods: Iterable[Endpoint],
        policies: Iterable[PolicyIR],
        *,
        ipblock_matches_pods: bool = True,
        tiers: Iterable[Tier] = (),
        network_sets: Iterable[NetworkSet | GlobalNetworkSet] = (),
        nodes: Iterable[Node] = (),
        tier_sources: Mapping[str, str] | None = None,
    ) -> ClusterState:
        labels: dict[str, Mapping[str, str]] = {}
        for ns in namespaces:
            # The API server sets kubernetes.io/metadata.name on every namespace.
            labels[ns.metadata.name] = MappingProxyType({**ns.metadata.labels, NAME_LABEL: ns.metadata.name})
        pods = sorted(pods, key=lambda e: e.key)
        for pod in pods:
            if pod.namespace is not None and pod.namespace not in labels:
                labels[pod.namespace] = MappingProxyType({NAME_LABEL: pod.namespace})
        policies = tuple(sorted(policies, key=lambda p: (p.namespace, p.name, p.kind)))
        by_ns: dict[str, list[PolicyIR]] = {}
        for pol in policies:
            if pol.is_k8s:
                by_ns.setdefault(pol.namespace, []).append(pol)
        by_ip: dict[str, Endpoint] = {}
        for pod in pods:
            if pod.ip and (pod.ip not in by_ip or by_ip[pod.ip].host_network and not pod.host_network):
                by_ip[pod.ip] = pod
        tier_list = build_tiers(tiers, policies, tier_sources)
        ordered = tuple(evaluation_order(policies, tier_list))
        cluster_wide = tuple(p for p in ordered if not p.namespace)
        candidates: dict[str, list[PolicyIR]] = {}
        for pol in ordered:
            if pol.namespace:
                candidates.setdefault(pol.namespace, []).append(pol)
        ns_labels = MappingProxyType(dict(sorted(labels.items())))
        sets = []
        for obj in network_sets:
            name, namespace, own, nets = _net_set(obj)
            set_labels = dict(own)
            if namespace is not None:
                set_labels.update(_namespace_extras(namespace, ns_labels.get(namespace, {NAME_LABEL: namespace})))
            sets.append(NetSet(name, namespace, MappingProxyType(set_labels), nets,
                               tuple(ipaddress.ip_network(n, strict=False) for n in nets)))
        node_list = {n.metadata.name: node_info(n) for n in nodes}
        for pod in pods:  # nodes known only from their pods: their name and the pods' hostIP
            if pod.node and pod.node not in node_list:
                node_list[pod.node] = NodeInfo(pod.node, MappingProxyType({"kubernetes.io/hostname": pod.node}), ())
            if pod.node and pod.host_ip and pod.host_ip not in node_list[pod.node].addresses:
                info = node_list[pod.node]
                node_list[pod.node] = NodeInfo(info.name, info.labels, tuple(sorted({*info.addresses, pod.host_ip})))
        return cls(
            namespace_labels=ns_labels,
            pods=tuple(pods),
            policies=policies,
            ipblock_matches_pods=ipblock_matches_pods,
            by_key={p.key: p for p in pods},
            by_ip=by_ip,
            policies_by_ns={k: tuple(v) for k, v in by_ns.items()},
            tiers=tier_list,
            network_sets=tuple(sorted(sets, key=lambda s: (s.namespace or "", s.name))),
            nodes=tuple(node_list[n] for n in sorted(node_list)),
            ordered=ordered,
            candidates_by_ns={ns: tuple(pols) for ns, pols in candidates.items()},
            cluster_wide=cluster_wide,
            # derived once here rather than by the first answer that asks (a 10,000-policy scan
            # each, which made that answer an outlier of explain's latency)
            memo={"rank": {id(p): k for k, p in enumerate(ordered)},
                  "tiered": tuple(p for p in policies if not p.is_k8s)},
        )

    # -- labels -------------------------------------------------------------------------------

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

    def calico_ns_labels(self, namespace: str | None) -> Mapping[str, str]:
        """What a Calico namespaceSelector is evaluated on: the namespace's labels and its name
        (``projectcalico.org/name``); nothing for an entity outside namespaces."""
        if namespace is None:
            return _EMPTY
        key = ("calico-ns", namespace)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = MappingProxyType({**self.ns_labels(namespace), CALICO_NAME_LABEL: namespace,
                                                     NAMESPACED_MARK: ""})
        return hit  # type: ignore[return-value]

    def calico_labels(self, ep: Endpoint) -> Mapping[str, str]:
        """A pod's labels as Calico selectors see them: its own, ``projectcalico.org/namespace``,
        ``/orchestrator``, ``/serviceaccount``, and its namespace's labels as ``pcns.*``."""
        key = ("calico", ep.key) if ep.is_pod else ("calico", ep.namespace, ep.service_account,
                                                      tuple(sorted(ep.labels.items())))
        hit = self.memo.get(key)
        if hit is None:
            labels = dict(ep.labels)
            labels.update(_namespace_extras(ep.namespace or "default", self.ns_labels(ep.namespace)))
            labels[CALICO_ORCHESTRATOR] = "k8s"
            labels[CALICO_SERVICE_ACCOUNT] = ep.service_account
            labels["pcsa." + CALICO_NAME_LABEL] = ep.service_account
            hit = self.memo[key] = MappingProxyType(labels)
        return hit  # type: ignore[return-value]

    # -- who a policy applies to, in what order ---------------------------------------------

    def applies(self, pol: PolicyIR, ep: Endpoint) -> bool:
        """Whether ``pol`` applies to ``ep`` (hostNetwork pods and addresses: never)."""
        if not ep.selectable:
            return False
        subject = pol.subject
        if subject is None:
            return ep.namespace == pol.namespace and pol.pod_selector.matches(ep.labels)
        if isinstance(subject, AdminSubject):
            return subject.namespace_selector.matches(self.ns_labels(ep.namespace)) and (
                subject.pod_selector is None or subject.pod_selector.matches(ep.labels))
        return self._calico_subject(subject, ep)

    def _calico_subject(self, subject: CalicoSubject, ep: Endpoint) -> bool:
        if subject.host_only:
            return False
        if subject.namespace is not None and ep.namespace != subject.namespace:
            return False
        if subject.namespace_selector is not None and not subject.namespace_selector.matches(
                self.calico_ns_labels(ep.namespace)):
            return False
        if subject.service_account_selector is not None and not subject.service_account_selector.matches(
                {CALICO_NAME_LABEL: ep.service_account}):
            return False
        return subject.selector.matches(self.calico_labels(ep))

    def applying(self, ep: Endpoint) -> tuple[PolicyIR, ...]:
        """Every policy that applies to ``ep``, in evaluation order (``applies`` for each, with
        the namespace parts decided once per namespace)."""
        ordered = self.ordered
        return tuple(ordered[k] for k in self.applying_positions(ep))

    def applying_positions(self, ep: Endpoint) -> tuple[int, ...]:
        """``applying`` as positions in ``ordered``. Each distinct pod selector of the
        namespace's candidates is evaluated once (a namespace's hundreds of policies share a
        few dozen selectors), and the candidates it selects are a bitset."""
        if not ep.selectable:
            return ()
        key = ("applying", ep.key)
        known = self.by_key.get(ep.key) is ep
        hit = self.memo.get(key) if known else None
        if hit is None:
            plan = self._applying_plan(ep.namespace or "")
            chosen = plan.always
            for selector, chosen_by in plan.selectors:
                if selector.matches(ep.labels):
                    chosen |= chosen_by
            calico: Mapping[str, str] | None = None
            for slot, subject in plan.calico:
                if subject.service_account_selector is not None and not subject.service_account_selector.matches(
                        {CALICO_NAME_LABEL: ep.service_account}):
                    continue
                if calico is None:
                    calico = self.calico_labels(ep)
                if subject.selector.matches(calico):
                    chosen |= 1 << slot
            positions = plan.positions
            hit = tuple(positions[k] for k in set_bits(chosen))
            if known:
                self.memo[key] = hit
        return hit  # type: ignore[return-value]

    def _applying_plan(self, namespace: str) -> _ApplyingPlan:
        """The candidates of ``namespace`` (``_candidates``) as slots: those applying to every
        pod of it, those chosen by each distinct pod selector, and the Calico subjects."""
        key = ("applying-plan", namespace)
        hit = self.memo.get(key)
        if hit is None:
            rank = self._rank()
            candidates = self._candidates(namespace)
            always = 0
            by_selector: dict[tuple[object, ...], tuple[LabelSelector, list[int]]] = {}
            calico: list[tuple[int, CalicoSubject]] = []
            for slot, p in enumerate(candidates):
                subject = p.subject
                if subject is None or isinstance(subject, AdminSubject):
                    selector = p.pod_selector if subject is None else subject.pod_selector
                    if selector is None or selector.is_empty:
                        always |= 1 << slot
                    else:
                        by_selector.setdefault(_selector_key(selector), (selector, []))[1].append(slot)
                else:
                    calico.append((slot, subject))
            hit = self.memo[key] = _ApplyingPlan(
                tuple(rank[id(p)] for p in candidates), always,
                tuple((selector, bitset(slots)) for selector, slots in by_selector.values()), tuple(calico))
        return hit  # type: ignore[return-value]

    def _rank(self) -> Mapping[int, int]:
        """Each policy's position in ``ordered`` (by ``id``)."""
        hit = self.memo.get("rank")
        if hit is None:
            hit = self.memo["rank"] = {id(p): k for k, p in enumerate(self.ordered)}
        return hit  # type: ignore[return-value]

    def _candidates(self, namespace: str) -> tuple[PolicyIR, ...]:
        """The policies whose namespace part admits pods of ``namespace``, in evaluation order:
        the namespace's own and the cluster-wide ones that admit it."""
        key = ("candidates", namespace)
        hit = self.memo.get(key)
        if hit is None:
            own = self.candidates_by_ns.get(namespace, ())
            wide = [p for p in self.cluster_wide if self._namespace_admits(p, namespace)]
            if wide:
                rank = self._rank()
                hit = tuple(sorted((*own, *wide), key=lambda p: rank[id(p)]))
            else:
                hit = own
            self.memo[key] = hit
        return hit  # type: ignore[return-value]

    def _namespace_admits(self, pol: PolicyIR, namespace: str) -> bool:
        subject = pol.subject
        if isinstance(subject, AdminSubject):
            return subject.namespace_selector.matches(self.ns_labels(namespace))
        if isinstance(subject, CalicoSubject):
            if subject.host_only:
                return False
            return subject.namespace_selector is None or subject.namespace_selector.matches(
                self.calico_ns_labels(namespace))
        return False

    def tiers_for(self, ep: Endpoint, direction: Direction) -> tuple[tuple[TierInfo, tuple[PolicyIR, ...]], ...]:
        """The tiers that apply to ``ep`` in ``direction`` (some policy of the tier applies and
        governs the direction), in order, each with those policies in order."""
        out: list[tuple[TierInfo, tuple[PolicyIR, ...]]] = []
        by_tier: dict[str, list[PolicyIR]] = {}
        for pol in self.applying(ep):
            if direction in pol.isolates:
                by_tier.setdefault(pol.tier, []).append(pol)
        for tier in self.tiers:
            pols = by_tier.get(tier.name)
            if pols:
                out.append((tier, tuple(pols)))
        return tuple(out)

    def tier(self, name: str) -> TierInfo:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def selecting(self, ep: Endpoint, direction: Direction) -> tuple[PolicyIR, ...]:
        """Policies that apply to ``ep`` and govern ``direction``, in evaluation order."""
        return tuple(p for p in self.applying(ep) if direction in p.isolates)

    def selecting_any(self, ep: Endpoint) -> tuple[PolicyIR, ...]:
        return self.applying(ep)

    @property
    def tiered(self) -> tuple[PolicyIR, ...]:
        """The policies that are not Kubernetes NetworkPolicies (once per state: explain asks
        several times per answer, and a scan of 10,000 policies each time dominated it)."""
        hit = self.memo.get("tiered")
        if hit is None:
            hit = self.memo["tiered"] = tuple(p for p in self.policies if not p.is_k8s)
        return hit  # type: ignore[return-value]

    # -- addresses: network sets, nodes -------------------------------------------------------

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

    def node_addresses(self, selector: LabelSelector) -> tuple[str, ...]:
        key = ("nodes", json.dumps(selector.to_dict(), sort_keys=True))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = tuple(sorted({a for n in self.nodes if selector.matches(n.labels) for a in n.addresses}))
        return hit  # type: ignore[return-value]

    def set_networks(self, peer: EntityPeer, negated: bool) -> tuple[IPNetwork, ...]:
        """The networks of the network sets the entity's positive part (or its notSelector) matches."""
        key = ("sets", peer.key, negated)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = tuple(net for s in self.network_sets
                                         if (self._set_negated(peer, s) if negated else self._set_positive(peer, s))
                                         for net in s.networks)
        return hit  # type: ignore[return-value]

    def matching_sets(self, peer: EntityPeer, negated: bool = False) -> tuple[NetSet, ...]:
        return tuple(s for s in self.network_sets
                     if (self._set_negated(peer, s) if negated else self._set_positive(peer, s)))

    def _set_positive(self, peer: EntityPeer, s: NetSet) -> bool:
        if not peer.has_positive or peer.service_accounts is not None or peer.service_account_selector is not None:
            return False  # network sets have no service account
        if not self._in_scope(peer, s.namespace):
            return False
        return peer.selector is None or peer.selector.matches(s.labels)

    def _set_negated(self, peer: EntityPeer, s: NetSet) -> bool:
        return peer.not_selector is not None and peer.not_selector.matches(s.labels)

    def _in_scope(self, peer: EntityPeer, namespace: str | None) -> bool:
        if peer.namespace_selector is not None:
            return peer.namespace_selector.matches(self.calico_ns_labels(namespace))
        return peer.scope is None or namespace == peer.scope

    def entity_pod_positive(self, peer: EntityPeer, ep: Endpoint) -> bool:
        """Whether the entity's positive part selects the pod by its labels (not its address)."""
        if not ep.selectable or not self._in_scope(peer, ep.namespace):
            return False
        if peer.service_accounts is not None and ep.service_account not in peer.service_accounts:
            return False
        if peer.service_account_selector is not None and not peer.service_account_selector.matches(
                {CALICO_NAME_LABEL: ep.service_account}):
            return False
        return peer.selector is None or peer.selector.matches(self.calico_labels(ep))

    def address_matches(self, peer: NodePeer | EntityPeer, ep: Endpoint) -> bool:
        """The peers whose match needs more than the endpoint and its namespace's labels."""
        if isinstance(peer, NodePeer):
            return bool(ep.ip) and ep.ip in self.node_addresses(peer.node_selector)
        return self.entity_matches(peer, ep)

    def entity_matches(self, peer: EntityPeer, ep: Endpoint) -> bool:
        if peer.nets and not in_networks(ep.ip, peer.networks):
            return False
        if peer.not_nets and in_networks(ep.ip, peer.not_networks):
            return False
        if peer.has_positive and not (self.entity_pod_positive(peer, ep)
                                      or in_networks(ep.ip, self.set_networks(peer, False))):
            return False
        if peer.not_selector is not None and (
                (ep.selectable and peer.not_selector.matches(self.calico_labels(ep)))
                or in_networks(ep.ip, self.set_networks(peer, True))):
            return False
        return True


@dataclass(frozen=True)
class _ApplyingPlan:
    """A namespace's candidate policies for ``applying``: their positions in evaluation order,
    the slots applying to every pod, per distinct pod selector the slots it chooses, and the
    Calico subjects (decided per pod on Calico's labels)."""

    positions: tuple[int, ...]
    always: int
    selectors: tuple[tuple[LabelSelector, int], ...]
    calico: tuple[tuple[int, CalicoSubject], ...]


def _selector_key(selector: LabelSelector) -> tuple[object, ...]:
    """Equal for selectors written alike (what ``applying`` shares an evaluation by)."""
    return (tuple(sorted((selector.match_labels or {}).items())),
            tuple((r.key, r.operator, tuple(r.values or ())) for r in selector.match_expressions or ()))


def _namespace_extras(namespace: str, ns_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels an entity inherits from its namespace: ``projectcalico.org/namespace`` and
    ``pcns.<key>`` for every namespace label, including ``pcns.projectcalico.org/name``."""
    out = {CALICO_NAMESPACE: namespace, "pcns." + CALICO_NAME_LABEL: namespace}
    out.update({"pcns." + k: v for k, v in ns_labels.items()})
    return out


# --- per-pair primitives ------------------------------------------------------------------


class PeerContext(Protocol):
    """What matching a peer needs of the cluster besides the endpoint: its namespace's labels,
    whether ipBlocks match pod addresses, and (for nodes peers and Calico entities) nodes and
    network sets. ``ClusterState`` is one; the dataplane's live planner passes the state of its
    last full render."""

    @property
    def ipblock_matches_pods(self) -> bool: ...

    def ns_labels(self, namespace: str | None) -> Mapping[str, str]: ...

    def address_matches(self, peer: NodePeer | EntityPeer, ep: Endpoint) -> bool: ...


def peer_matches(peer: Peer, ep: Endpoint, ctx: PeerContext) -> bool:
    if isinstance(peer, IPBlockPeer):
        if ep.selectable and not ctx.ipblock_matches_pods:
            return False
        return peer.contains(ep.ip)
    if isinstance(peer, NetworkPeer):
        return peer.contains(ep.ip)
    if isinstance(peer, PodPeer):
        if not ep.selectable:
            return False
        return peer.namespace_in_scope(ep.namespace or "", ctx.ns_labels(ep.namespace)) and peer.pod_selector.matches(ep.labels)
    return ctx.address_matches(peer, ep)


def rule_peers_match(rule: Rule, ep: Endpoint, ctx: PeerContext) -> bool:
    return rule.peers is None or any(peer_matches(p, ep, ctx) for p in rule.peers)


def port_matches(pm: PortMatch, port: int | None, protocol: str, dst: Endpoint) -> bool:
    return pm.matches(port, protocol, dst.named_ports if dst.is_pod else None)


def rule_ports_match(rule: Rule, port: int | None, protocol: str, dst: Endpoint) -> bool:
    """ICMP (or any protocol without ports) matches only a rule without ports or one that
    names the protocol without ports (Calico's ``protocol: ICMP``)."""
    if rule.ports is None:
        return True
    return any(port_matches(pm, port, protocol, dst) for pm in rule.ports)


def rule_protocol_matches(rule: Rule, protocol: str, ip_version: int) -> bool:
    """The negated and ICMP matches of a Calico rule (the engine's ICMP is an echo request)."""
    if rule.not_protocol is not None and rule.not_protocol == protocol:
        return False
    if rule.icmp is not None and not (protocol == ICMP and rule.icmp.matches(*ICMP_ECHO)):
        return False
    if rule.not_icmp is not None and protocol == ICMP and rule.not_icmp.matches(*ICMP_ECHO):
        return False
    return rule.ip_version is None or rule.ip_version == ip_version


def rule_matches(rule: Rule, subject: Endpoint, peer: Endpoint, dst: Endpoint, port: int | None, protocol: str,
                 ctx: PeerContext) -> bool:
    """Whether ``rule`` of a policy applying to ``subject`` matches traffic with ``peer`` (the
    other end) to ``dst`` (whichever of the two is the destination) on port/protocol."""
    if not rule_peers_match(rule, peer, ctx):
        return False
    if rule.local is not None and not ctx.address_matches(rule.local, subject):
        return False
    if not rule_ports_match(rule, port, protocol, dst):
        return False
    if rule.not_ports and any(port_matches(pm, port, protocol, dst) for pm in rule.not_ports):
        return False
    return rule.is_plain or rule_protocol_matches(rule, protocol, subject.ip_version)


def always_allowed(src: Endpoint, dst: Endpoint) -> str | None:
    """Traffic policy never blocks; the reason, or None."""
    if src.is_pod and dst.is_pod and src.key == dst.key:
        return "a pod can always reach itself"
    if dst.selectable and src.ip and dst.host_ip and src.ip == dst.host_ip and not src.selectable:
        return f"traffic from the pod's own node ({dst.host_ip}) is always allowed (kubelet probes)"
    return None


def sides(src: Endpoint, dst: Endpoint, direction: Direction) -> tuple[Endpoint, Endpoint]:
    """(the endpoint whose policy decides, the other end) for one direction of src → dst."""
    return (dst, src) if direction == "ingress" else (src, dst)


__all__ = [
    "ClusterState", "Endpoint", "ICMP", "NAME_LABEL", "NetSet", "NodeInfo", "PROTOCOLS", "PeerContext",
    "always_allowed", "compile_any", "endpoint_for_pod", "peer_matches", "port_matches", "ref_of",
    "rule_matches", "rule_peers_match", "rule_ports_match", "sides",
]

from .walk import allowed, direction_allowed  # noqa: E402  (the walk reads this module's primitives)

__all__ += ["allowed", "direction_allowed"]
