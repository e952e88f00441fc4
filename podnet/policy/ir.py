"""The normalised policy IR: what every NetworkPolicy means, with provenance on every part.

The explainer (``evaluate``), the connectivity matrix and the nftables compiler all read
this IR, so what podnet explains and what the kernel enforces come from one source.

Shape (one ``PolicyIR`` per NetworkPolicy)::

    PolicyIR(namespace, name, pod_selector, isolates={"ingress", "egress"}, source="f.yaml:3")
      .ingress: tuple[Rule]   # only when "Ingress" is in the effective policyTypes
      .egress:  tuple[Rule]   # only when "Egress" is in the effective policyTypes
    Rule(direction, index, peers, ports, provenance)
      peers: None            -> the rule matches every peer (``from``/``to`` missing or empty),
                                pods and addresses outside the cluster alike
             tuple[Peer]     -> OR of the peers (never empty)
      ports: None            -> every port of every protocol (``ports`` missing or empty),
                                including ICMP and anything else
             tuple[PortMatch]-> OR of the port terms (never empty)
    Peer = PodPeer | IPBlockPeer
      PodPeer(pod_selector, namespace_selector, namespace)
          namespace_selector None  -> pods of ``namespace`` (the policy's own namespace)
          namespace_selector set   -> pods of every namespace it matches (``{}`` = all)
          pod_selector             -> AND with the namespace scope (``{}`` when absent = all)
          Never matches hostNetwork pods or addresses outside the cluster.
      IPBlockPeer(cidr, excepts)  -> addresses in cidr and in no except entry. Whether it also
          matches pod-network pod IPs is a cluster option (``ipblock_matches_pods``, default
          True, as Calico and the Kubernetes e2e suite expect); see ``docs/policy.md``.
    PortMatch(protocol, port, end_port)
          port None  -> every port of ``protocol``
          port int   -> that port, or the range port..end_port when end_port is set
          port str   -> a named port, resolved against the DESTINATION pod's containerPorts with
                        the same name and protocol (for ingress rules the destination is the
                        selected pod; for egress rules it is the peer). Matches nothing when the
                        destination does not declare it, and never matches external addresses.

Every ``Rule``, ``Peer`` and ``PortMatch`` carries a ``Provenance``: policy namespace/name,
direction, rule index, peer index, port index and the manifest ``file:line`` when known (from
the ``podnet.io/source`` annotation). Indexes are those of the manifest, so ``spec.ingress[0]
.from[1]`` is rule 0, peer 1.

Tiers (every kind compiles to this one IR; see ``calico_ir``, ``admin_ir`` and docs/policy.md):
a ``PolicyIR`` also has a ``kind`` tag, a ``tier``, an ``order`` (None: last in its tier) and,
for the kinds that do not select by ``podSelector`` in their own namespace, a ``subject``; a
``Rule`` has an ``action`` (Allow, Deny, Pass or Log) and, for Calico rules, a ``local`` entity
(the subject's own end: an ingress rule's destination, an egress rule's source) and negated
matches. A Kubernetes NetworkPolicy is tier ``default``, order 1000, Allow rules, as in Calico.

Semantics the IR fixes (Kubernetes networking.k8s.io/v1):

* a policy selects pods of its own namespace matching ``spec.podSelector`` (hostNetwork pods
  never); a selected pod is isolated for each direction in ``effective_policy_types``;
* policyTypes default to [Ingress] plus Egress iff the ``egress`` list has entries; rules of a
  direction not in policyTypes are ignored (kept in ``ignored_directions`` for lint);
* ``ingress: []`` / absent with Ingress in policyTypes -> isolated with no rules (deny all);
  ``ingress: [{}]`` -> one rule with ``peers=None, ports=None`` (allow all).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from podnet.errors import format_field_path
from podnet.model import NetworkPolicy
from podnet.model.calico_selector import Selector as CalicoSelector
from podnet.model.networking import IPBlock, NetworkPolicyPeer, NetworkPolicyPort
from podnet.model.selectors import EVERYTHING, LabelSelector

from .tiers import DEFAULT_TIER

Direction = Literal["ingress", "egress"]
DIRECTIONS: tuple[Direction, Direction] = ("ingress", "egress")
Action = Literal["Allow", "Deny", "Pass", "Log"]
#: the actions that end a tier walk's search (Log notes the packet and goes on)
TERMINAL: tuple[Action, ...] = ("Allow", "Deny", "Pass")
#: where Calico puts a Kubernetes NetworkPolicy in the default tier
K8S_ORDER = 1000.0
#: ``PolicyIR.kind`` tags: "" is a Kubernetes NetworkPolicy; the others name the source kind
KIND_NAMES = {
    "": "NetworkPolicy", "calico": "NetworkPolicy (projectcalico.org)", "gnp": "GlobalNetworkPolicy",
    "anp": "AdminNetworkPolicy", "banp": "BaselineAdminNetworkPolicy", "cnp": "ClusterNetworkPolicy",
}
SOURCE_ANNOTATION = "podnet.io/source"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Maps a manifest field path (e.g. ("spec", "ingress", 0, "from", 1)) to "file:line".
Locator = Callable[[tuple[str | int, ...]], str | None]


def policy_ref(kind: str, namespace: str, name: str) -> str:
    """A policy's unique name across kinds: ``ns/name`` for a Kubernetes NetworkPolicy, else
    ``<kind>:[ns/]name`` (``calico:ns/name``, ``gnp:name``, ``anp:name``, ``banp:default``)."""
    base = f"{namespace}/{name}" if namespace else name
    return f"{kind}:{base}" if kind else base


@dataclass(frozen=True, order=True)
class Provenance:
    """Where a piece of policy came from, down to the port entry and the manifest line."""

    namespace: str
    policy: str
    direction: Direction | None = None
    rule: int | None = None
    peer: int | None = None
    port: int | None = None
    source: str | None = None
    #: the policy's kind tag (see KIND_NAMES) and, for ANP/CNP rules, the rule's name
    kind: str = ""
    rule_name: str | None = None
    #: the manifest path when it is not NetworkPolicy's from/to/ports shape (Calico, ANP)
    path: tuple[str | int, ...] | None = field(default=None, compare=False)

    @property
    def policy_ref(self) -> str:
        return policy_ref(self.kind, self.namespace, self.policy)

    @property
    def field_path(self) -> str:
        """The manifest path, as kubectl prints it: ``spec.ingress[0].from[1]``."""
        if self.path is not None:
            return format_field_path(self.path) or "spec"
        if self.direction is None:
            return "spec"
        path = f"spec.{self.direction}"
        if self.rule is None:
            return path
        path += f"[{self.rule}]"
        if self.peer is not None:
            path += f".{'from' if self.direction == 'ingress' else 'to'}[{self.peer}]"
        elif self.port is not None:
            path += f".ports[{self.port}]"
        return path

    def describe(self) -> str:
        """Human form: ``ingress rule 0, peer 1 of default/web-policy``."""
        parts = []
        if self.direction is not None and self.rule is not None:
            parts.append(f"{self.direction} rule {self.rule}")
        elif self.direction is not None:
            parts.append(f"{self.direction} section")
        if self.peer is not None:
            parts.append(f"peer {self.peer}")
        if self.port is not None:
            parts.append(f"port {self.port}")
        if self.rule_name:
            parts[0:1] = [f"{parts[0]} ({self.rule_name})"] if parts else [self.rule_name]
        where = ", ".join(parts)
        return f"{where} of {self.policy_ref}" if where else self.policy_ref

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"policy": self.policy_ref}
        for key, name in (("direction", "direction"), ("rule", "rule"), ("peer", "peer"), ("port", "port"),
                          ("source", "source"), ("rule_name", "ruleName")):
            value = getattr(self, key)
            if value is not None:
                out[name] = value
        out["field"] = self.field_path
        return out


@dataclass(frozen=True)
class PodPeer:
    """Pods chosen by label: ``pod_selector`` AND the namespace scope."""

    pod_selector: LabelSelector
    namespace_selector: LabelSelector | None
    namespace: str
    provenance: Provenance
    has_pod_selector: bool = True

    def namespace_in_scope(self, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
        if self.namespace_selector is None:
            return namespace == self.namespace
        return self.namespace_selector.matches(namespace_labels)

    def describe(self) -> str:
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaceSelector {selector_text(self.namespace_selector)}")
        if self.has_pod_selector or self.namespace_selector is None:
            parts.append(f"podSelector {selector_text(self.pod_selector)}")
        text = " AND ".join(parts)
        if self.namespace_selector is None:
            text += f" (namespace {self.namespace} only)"
        return text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": "pods", "podSelector": self.pod_selector.to_dict()}
        if self.namespace_selector is not None:
            out["namespaceSelector"] = self.namespace_selector.to_dict()
        else:
            out["namespace"] = self.namespace
        out["provenance"] = self.provenance.to_dict()
        return out


@dataclass(frozen=True)
class IPBlockPeer:
    """Addresses in ``cidr`` but in no ``excepts`` entry."""

    cidr: str
    excepts: tuple[str, ...]
    provenance: Provenance
    network: IPNetwork = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    except_networks: tuple[IPNetwork, ...] = field(compare=False, repr=False, default=())

    def contains(self, ip: str | None) -> bool:
        if not ip:
            return False
        addr = ipaddress.ip_address(ip)
        if addr.version != self.network.version or addr not in self.network:
            return False
        return not any(addr in net for net in self.except_networks)

    def excluded_by(self, ip: str) -> str | None:
        """The except entry that removes ``ip``, if any (for explanations)."""
        addr = ipaddress.ip_address(ip)
        for text, net in zip(self.excepts, self.except_networks):
            if addr.version == net.version and addr in net:
                return text
        return None

    def describe(self) -> str:
        if self.excepts:
            return f"ipBlock {self.cidr} except {', '.join(self.excepts)}"
        return f"ipBlock {self.cidr}"

    def to_dict(self) -> dict[str, object]:
        return {"type": "ipBlock", "cidr": self.cidr, "except": list(self.excepts),
                "provenance": self.provenance.to_dict()}


def _networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in texts)


def in_networks(ip: str | None, networks: Sequence[IPNetwork]) -> bool:
    if not ip or not networks:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in networks)


@dataclass(frozen=True)
class NetworkPeer:
    """AdminNetworkPolicy ``networks``: addresses in any of the CIDRs, pod addresses included."""

    cidrs: tuple[str, ...]
    provenance: Provenance
    networks: tuple[IPNetwork, ...] = field(compare=False, repr=False, default=())

    @classmethod
    def of(cls, cidrs: Sequence[str], prov: Provenance) -> NetworkPeer:
        return cls(tuple(cidrs), prov, _networks(cidrs))

    def contains(self, ip: str | None) -> bool:
        return in_networks(ip, self.networks)

    def describe(self) -> str:
        return f"networks {', '.join(self.cidrs)}"

    def to_dict(self) -> dict[str, object]:
        return {"type": "networks", "networks": list(self.cidrs), "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class NodePeer:
    """AdminNetworkPolicy ``nodes``: the addresses of the nodes the selector matches (and so the
    hostNetwork pods on them)."""

    node_selector: LabelSelector
    provenance: Provenance

    def describe(self) -> str:
        return f"nodes {selector_text(self.node_selector)}"

    def to_dict(self) -> dict[str, object]:
        return {"type": "nodes", "nodeSelector": self.node_selector.to_dict(), "provenance": self.provenance.to_dict()}


@dataclass(frozen=True)
class EntityPeer:
    """One end of a Calico rule (``source`` or ``destination``): every field present must hold.

    ``nets``/``not_nets`` test the address. The positive part (``selector``, service accounts and
    the namespace scope) holds when the address belongs to a pod the selectors match, or lies in
    a NetworkSet or GlobalNetworkSet they match (Calico matches by address). ``scope`` is the
    policy's namespace when the positive part is limited to it (a namespaced policy without a
    namespaceSelector); ``namespace_selector`` is evaluated on namespace labels, where ``all()``
    means "any namespaced entity" and ``global()`` "any entity outside namespaces".
    ``not_selector`` removes whatever it matches, in any namespace.
    """

    provenance: Provenance
    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    selector: CalicoSelector | None = None
    not_selector: CalicoSelector | None = None
    namespace_selector: CalicoSelector | None = None
    namespace_selector_text: str | None = None
    service_accounts: tuple[str, ...] | None = None
    service_account_selector: CalicoSelector | None = None
    scope: str | None = None
    networks: tuple[IPNetwork, ...] = field(compare=False, repr=False, default=())
    not_networks: tuple[IPNetwork, ...] = field(compare=False, repr=False, default=())

    @property
    def has_positive(self) -> bool:
        return bool(self.selector or self.namespace_selector or self.service_accounts is not None
                    or self.service_account_selector or self.scope is not None)

    @property
    def key(self) -> tuple[object, ...]:
        """What decides the matches (for sharing work between equal entities)."""
        return (self.nets, self.not_nets, str(self.selector or ""), str(self.not_selector or ""),
                self.namespace_selector_text, self.service_accounts, str(self.service_account_selector or ""),
                self.scope)

    @property
    def by_address(self) -> bool:
        """Whether anything besides pod labels decides it (nets, or NetworkSets it may match)."""
        return bool(self.nets or self.not_nets or self.selector or self.namespace_selector or self.not_selector)

    def describe(self) -> str:
        parts = []
        if self.nets:
            parts.append(f"nets {', '.join(self.nets)}")
        if self.not_nets:
            parts.append(f"notNets {', '.join(self.not_nets)}")
        if self.selector is not None:
            parts.append(f"selector {self.selector.describe()}")
        if self.not_selector is not None:
            parts.append(f"notSelector {self.not_selector.describe()}")
        if self.namespace_selector_text is not None:
            parts.append(f"namespaceSelector {self.namespace_selector_text or 'all()'}")
        if self.service_accounts is not None:
            parts.append(f"serviceAccounts {', '.join(self.service_accounts)}")
        if self.service_account_selector is not None:
            parts.append(f"serviceAccount selector {self.service_account_selector.describe()}")
        text = " AND ".join(parts) or "any address"
        if self.scope is not None:
            text += f" (namespace {self.scope} only)"
        return text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": "entity"}
        for key, value in (("nets", list(self.nets)), ("notNets", list(self.not_nets)),
                           ("selector", str(self.selector) if self.selector else None),
                           ("notSelector", str(self.not_selector) if self.not_selector else None),
                           ("namespaceSelector", self.namespace_selector_text),
                           ("serviceAccounts", list(self.service_accounts) if self.service_accounts is not None else None),
                           ("namespace", self.scope)):
            if value:
                out[key] = value
        out["provenance"] = self.provenance.to_dict()
        return out


Peer = PodPeer | IPBlockPeer | NetworkPeer | NodePeer | EntityPeer
#: the peers a Kubernetes NetworkPolicy has (what the nftables renderer compiles today)
K8sPeer = PodPeer | IPBlockPeer


@dataclass(frozen=True)
class IcmpMatch:
    """An ICMP type (and code); None matches any."""

    type: int | None
    code: int | None = None

    def matches(self, icmp_type: int, icmp_code: int) -> bool:
        return (self.type is None or self.type == icmp_type) and (self.code is None or self.code == icmp_code)

    def describe(self) -> str:
        return f"type {self.type}" + (f" code {self.code}" if self.code is not None else "")


@dataclass(frozen=True)
class PortMatch:
    """One ``ports`` entry: protocol plus a number, a range, a name, or every port."""

    protocol: str
    port: int | str | None
    end_port: int | None
    provenance: Provenance

    @property
    def is_named(self) -> bool:
        return isinstance(self.port, str)

    def resolve(self, named_ports: Mapping[tuple[str, str], int] | None) -> tuple[int, int] | None:
        """The concrete (first, last) port range at a destination; None when it cannot match.

        ``named_ports`` is the destination's (name, protocol) → number map; None means the
        destination is not a pod (an external address), where names never resolve.
        """
        if self.port is None:
            return (0, 65535)
        if isinstance(self.port, str):
            number = (named_ports or {}).get((self.port, self.protocol))
            return None if number is None else (number, number)
        return (self.port, self.end_port if self.end_port is not None else self.port)

    def matches(self, port: int | None, protocol: str, named_ports: Mapping[tuple[str, str], int] | None) -> bool:
        if protocol != self.protocol:
            return False
        span = self.resolve(named_ports)
        if span is None:
            return False
        if port is None:
            return self.port is None
        return span[0] <= port <= span[1]

    def describe(self) -> str:
        if self.port is None:
            return f"all {self.protocol} ports"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol}"
        return f"{self.port}/{self.protocol}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"protocol": self.protocol}
        if self.port is not None:
            out["port"] = self.port
        if self.end_port is not None:
            out["endPort"] = self.end_port
        out["provenance"] = self.provenance.to_dict()
        return out


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule: (any of ``peers``) AND (any of ``ports``); None = all.

    Calico rules add matches that are ANDed too: ``local`` (the subject's own end), ``not_ports``
    (the destination port in none), ``not_protocol``, ``icmp``/``not_icmp`` and ``ip_version``.
    The first rule of a policy that matches decides with its ``action``; Log goes on.
    """

    direction: Direction
    index: int
    peers: tuple[Peer, ...] | None
    ports: tuple[PortMatch, ...] | None
    provenance: Provenance
    action: Action = "Allow"
    name: str | None = None
    local: EntityPeer | None = None
    not_ports: tuple[PortMatch, ...] = ()
    not_protocol: str | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    ip_version: int | None = None

    @property
    def is_plain(self) -> bool:
        """Only peers and ports, as in a Kubernetes NetworkPolicy rule."""
        return (self.local is None and not self.not_ports and self.not_protocol is None and self.icmp is None
                and self.not_icmp is None and self.ip_version is None)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "direction": self.direction,
            "index": self.index,
            "action": self.action,
            "peers": None if self.peers is None else [p.to_dict() for p in self.peers],
            "ports": None if self.ports is None else [p.to_dict() for p in self.ports],
            "provenance": self.provenance.to_dict(),
        }
        if self.name:
            out["name"] = self.name
        if self.local is not None:
            out["local"] = self.local.to_dict()
        if self.not_ports:
            out["notPorts"] = [p.to_dict() for p in self.not_ports]
        for key, value in (("notProtocol", self.not_protocol), ("ipVersion", self.ip_version),
                           ("icmp", self.icmp.describe() if self.icmp else None),
                           ("notICMP", self.not_icmp.describe() if self.not_icmp else None)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class CalicoSubject:
    """Whom a Calico policy applies to: ``selector`` over the pod's labels (with Calico's
    ``projectcalico.org/*`` and ``pcns.*`` labels), within ``namespace`` (a NetworkPolicy) or the
    namespaces ``namespace_selector`` matches (a GlobalNetworkPolicy); ``host_only`` policies
    (doNotTrack, preDNAT) apply to host endpoints only, so to no pod."""

    selector: CalicoSelector
    namespace: str | None = None
    namespace_selector: CalicoSelector | None = None
    namespace_selector_text: str | None = None
    service_account_selector: CalicoSelector | None = None
    host_only: bool = False

    def describe(self) -> str:
        parts = [f"selector {self.selector.describe()}"]
        if self.namespace is not None:
            parts.append(f"in namespace {self.namespace}")
        if self.namespace_selector_text is not None:
            parts.append(f"namespaceSelector {self.namespace_selector_text or 'all()'}")
        if self.service_account_selector is not None:
            parts.append(f"serviceAccountSelector {self.service_account_selector.describe()}")
        return " ".join(parts)


@dataclass(frozen=True)
class AdminSubject:
    """Whom an AdminNetworkPolicy/ClusterNetworkPolicy applies to: pods (never hostNetwork) of the
    namespaces ``namespace_selector`` matches, that ``pod_selector`` matches (None: all)."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector | None = None

    def describe(self) -> str:
        text = f"namespaces {selector_text(self.namespace_selector)}"
        if self.pod_selector is not None:
            text += f", pods {selector_text(self.pod_selector)}"
        return text


Subject = CalicoSubject | AdminSubject


@dataclass(frozen=True)
class PolicyIR:
    """One policy of any kind, normalised: whom it selects, which directions it governs
    (``isolates``: its types), its rules, and where it sits (tier, order)."""

    namespace: str
    name: str
    pod_selector: LabelSelector
    isolates: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    source: str | None = None
    #: directions whose rules are present in the manifest but ignored (not in policyTypes)
    ignored_directions: tuple[str, ...] = ()
    #: policyTypes as written (None when omitted) and which rule sections the manifest has
    declared_types: tuple[str, ...] | None = None
    sections: tuple[str, ...] = ()
    kind: str = ""
    tier: str = DEFAULT_TIER
    order: float | None = K8S_ORDER
    #: None: ``pod_selector`` in ``namespace`` (a Kubernetes NetworkPolicy)
    subject: Subject | None = None

    @property
    def ref(self) -> str:
        return policy_ref(self.kind, self.namespace, self.name)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.namespace, self.name, source=self.source, kind=self.kind)

    @property
    def is_k8s(self) -> bool:
        """A Kubernetes NetworkPolicy (what the nftables renderer enforces today)."""
        return self.kind == ""

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    def describe(self) -> str:
        """``GlobalNetworkPolicy security.deny (tier security, order 10)``."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        order = "no order" if self.order is None else f"order {self.order:g}"
        return f"{self.kind_name} {name} (tier {self.tier}, {order})"

    def describe_subject(self) -> str:
        if self.subject is None:
            return f"podSelector {selector_text(self.pod_selector)} in namespace {self.namespace}"
        return self.subject.describe()

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def selects(self, namespace: str, labels: Mapping[str, str], host_network: bool = False) -> bool:
        """Whether this policy applies to a pod (hostNetwork pods are never selected)."""
        return not host_network and namespace == self.namespace and self.pod_selector.matches(labels)

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.ref,
            "kind": self.kind_name,
            "tier": self.tier,
            "order": self.order,
            "subject": self.describe_subject(),
            "podSelector": self.pod_selector.to_dict(),
            "isolates": sorted(self.isolates),
            "ingress": [r.to_dict() for r in self.ingress],
            "egress": [r.to_dict() for r in self.egress],
            "source": self.source,
        }


def selector_text(selector: LabelSelector) -> str:
    """A selector for explanations: kubectl's form, or ``{} (all)`` (kubectl's ``<none>`` would
    read as "matches nothing")."""
    return "{} (all)" if selector.is_empty else selector.describe()


def compile_policy(policy: NetworkPolicy, source: str | None = None, locate: Locator | None = None) -> PolicyIR:
    """NetworkPolicy → PolicyIR. ``source`` defaults to the ``podnet.io/source`` annotation.

    With ``locate`` (from the manifest loader's positions) every rule, peer and port carries its
    own ``file:line``; otherwise they carry the policy's.
    """
    namespace = policy.metadata.namespace or "default"
    name = policy.metadata.name
    source = source or policy.metadata.annotations.get(SOURCE_ANNOTATION)
    spec = policy.spec

    def at(*path: str | int) -> str | None:
        return (locate(path) if locate else None) or source

    types = {t.lower() for t in spec.effective_policy_types}
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    ignored = []
    if "ingress" in types:
        ingress = tuple(
            _rule("ingress", i, r.from_, r.ports, namespace, name, at) for i, r in enumerate(spec.ingress or ())
        )
    elif spec.ingress:
        ignored.append("ingress")
    if "egress" in types:
        egress = tuple(_rule("egress", i, r.to, r.ports, namespace, name, at) for i, r in enumerate(spec.egress or ()))
    elif spec.egress:
        ignored.append("egress")
    return PolicyIR(
        namespace=namespace,
        name=name,
        pod_selector=spec.pod_selector,
        isolates=frozenset(types),
        ingress=ingress,
        egress=egress,
        source=source,
        ignored_directions=tuple(ignored),
        declared_types=tuple(spec.policy_types) if spec.policy_types else None,
        sections=tuple(d for d, rules in (("ingress", spec.ingress), ("egress", spec.egress)) if rules is not None),
    )


def compile_policies(policies: Iterable[NetworkPolicy], sources: dict[str, str] | None = None,
                     locators: dict[str, Locator] | None = None) -> tuple[PolicyIR, ...]:
    """All policies, in a canonical order (namespace, name) so results never depend on arrival order.

    ``sources`` optionally maps ``ns/name`` to ``file:line`` and ``locators`` ``ns/name`` to a
    field-path locator (both from the manifest loader).
    """
    sources = sources or {}
    locators = locators or {}
    compiled = []
    for p in policies:
        ref = f"{p.metadata.namespace or 'default'}/{p.metadata.name}"
        compiled.append(compile_policy(p, sources.get(ref), locators.get(ref)))
    return tuple(sorted(compiled, key=lambda p: (p.namespace, p.name)))


def _rule(
    direction: Direction,
    index: int,
    peers: Sequence[NetworkPolicyPeer] | None,
    ports: Sequence[NetworkPolicyPort] | None,
    namespace: str,
    name: str,
    at: Callable[..., str | None],
) -> Rule:
    key = "from" if direction == "ingress" else "to"
    prov = Provenance(namespace, name, direction, index, source=at("spec", direction, index))
    ir_peers = (
        tuple(_peer(p, Provenance(namespace, name, direction, index, peer=j, source=at("spec", direction, index, key, j)),
                    namespace)
              for j, p in enumerate(peers))
        if peers else None
    )
    ir_ports = (
        tuple(
            PortMatch(p.protocol or "TCP", p.port, p.end_port,
                      Provenance(namespace, name, direction, index, port=k,
                                 source=at("spec", direction, index, "ports", k)))
            for k, p in enumerate(ports)
        )
        if ports else None
    )
    return Rule(direction, index, ir_peers, ir_ports, prov)


def _peer(peer: NetworkPolicyPeer, prov: Provenance, namespace: str) -> Peer:
    if peer.ip_block is not None:
        return ip_block_peer(peer.ip_block, prov)
    return PodPeer(
        pod_selector=peer.pod_selector if peer.pod_selector is not None else EVERYTHING,
        namespace_selector=peer.namespace_selector,
        namespace=namespace,
        provenance=prov,
        has_pod_selector=peer.pod_selector is not None,
    )


def ip_block_peer(block: IPBlock, prov: Provenance) -> IPBlockPeer:
    excepts = tuple(block.except_ or ())
    return IPBlockPeer(
        cidr=block.cidr,
        excepts=excepts,
        provenance=prov,
        network=ipaddress.ip_network(block.cidr, strict=False),
        except_networks=tuple(ipaddress.ip_network(e, strict=False) for e in excepts),
    )
