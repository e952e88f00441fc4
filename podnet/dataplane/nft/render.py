"""Policy IR → the ``inet podnet`` nftables table of one node (pure: state in, values out).

Layout (Calico's, in nftables terms)::

    forward (hook forward)  ct established,related accept; ct invalid drop;
                            iifname "cali*" goto from-wl; oifname "cali*" goto to-wl
    input   (hook input)    non-cali accept; ct …; drop              (a pod talking to its node,
                            endpoint-to-host Drop; Accept: goto from-wl, its egress policy)
    from-wl                 iifname . ip saddr @from-<sig> goto egress-<sig>  (one per signature)
                            iifname . ip saddr @from-open goto egress-ok
                            iifname @pod-ifaces drop  (anti-spoofing: a known veth, a wrong source)
                            drop                      (unknown cali*: fail closed until programmed)
    to-wl                   oifname @to-<sig> goto ingress-<sig>; oifname @to-open accept; drop
    egress-<sig>            jump po-<policy> for each egress policy selecting the pods; drop
    ingress-<sig>           own node accept; jump pi-<policy> for each; drop
    po-<policy> / pi-<policy>   the policy's rules, once per node: allow = goto egress-ok / accept
    egress-ok               oifname "cali*" goto to-wl; accept   (egress allowed: now ingress)

``<sig>`` names the ordered list of policies that isolate a pod, so pods selected by the same
policies share one chain, and each policy's rules are rendered once per node: rules grow with
policies + pods, not their product. A pod is an element of one membership set per direction
(``dispatch``: plain sets, no per-pod verdicts) and of ``pod-ifaces``; a label change moves it
between chains by moving those elements, and changes peer sets by single elements. Pod peers
are named IP sets, one per selector, shared by every rule that uses it; ipBlocks are interval
sets (cidr minus excepts); a rule's numeric ports are its own named ``inet_proto .
inet_service`` interval set (``ports-<hash>``), so a port edit is an element change; named ports resolve per destination in ``ip . proto
. port`` sets (ingress: the selected local pods; egress: every peer pod). Comments name the
policy and manifest field.

The chain names, the signature chains and ``SetBuilder`` are public: the live planner
(``live``) renders the chains a change touches with the very same code.
"""
from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from podnet.policy.cluster import ClusterState, Endpoint, PeerContext, peer_matches
from podnet.policy.ir import DIRECTIONS, Direction, IPBlockPeer, PodPeer, PolicyIR, PortMatch, Rule
from podnet.services.cluster import APISERVER_PORT

from . import flowlog
from .dispatch import (
    EGRESS_OK,
    FROM_MAP,
    FROM_WL,
    KEY_TYPES,
    POD_IFACES,
    TO_MAP,
    TO_WL,
    dispatch_chains,
    member_element,
    member_set,
)
from .expr import ACCEPT, COUNTER, DROP, concat, goto, jump, match, meta, payload, vmap
from .flows import FLOW_DENIED_MARK
from .model import (
    POLICY_TABLE,
    Element,
    MapKey,
    NftChain,
    NftRule,
    NftSet,
    NftTable,
    Verdict,
    cidr_minus,
    element_json,
    merge_intervals,
    short_hash,
)

TABLE = POLICY_TABLE
__all__ = ["EGRESS_OK", "FROM_MAP", "FROM_WL", "POD_IFACES", "TO_MAP", "TO_WL"]
IFACE_PREFIX = "cali"
#: Felix's DefaultEndpointToHostAction: what a pod's new connection to its own node gets
TO_HOST_ACTIONS = ("Drop", "Accept")
#: what a dispatch entry says for a pod no policy isolates in a direction
ALLOW: Mapping[Direction, Verdict] = {"egress": ("goto", EGRESS_OK), "ingress": ("accept",)}
_V4 = ("ipv4_addr",)
_V6 = ("ipv6_addr",)
_PORTS = ("inet_proto", "inet_service")
_NAMED = ("ipv4_addr", "inet_proto", "inet_service")
#: signature chain → (direction, the refs of the policies it jumps to, in order)
Signatures = Mapping[str, tuple[Direction, tuple[str, ...]]]
#: pods grouped by namespace and labels: a representative and the group's addresses (integers)
LabelGroups = Sequence[tuple[Endpoint, tuple[int, ...]]]


@lru_cache(maxsize=65536)
def ip_int(ip: str) -> int:
    """An address as an integer (the canonical element form)."""
    return int(ipaddress.ip_address(ip))


def programmed(ep: Endpoint | None) -> bool:
    """Whether the table carries this endpoint: a pod-network pod with an IPv4 address."""
    return bool(ep is not None and ep.selectable and ep.ip and ":" not in ep.ip)


@lru_cache(maxsize=65536)
def workload_ifname(namespace: str, name: str) -> str:
    """The pod's host-side veth name, as Calico's CNI plugin names it (cali + 11 hex of sha1)."""
    return IFACE_PREFIX + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


def pod_ifname(ep: Endpoint, interfaces: Mapping[str, str]) -> str:
    """The pod's host-side interface: as given for ``ns/pod`` in ``interfaces``, else Calico's."""
    return interfaces.get(ep.key) or workload_ifname(ep.namespace or "default", ep.name or "")


def dispatch_keys(ep: Endpoint, interfaces: Mapping[str, str]) -> tuple[MapKey, MapKey]:
    """A local pod's keys in the from-pod (interface, address) and to-pod (interface) maps."""
    ifname = pod_ifname(ep, interfaces)
    return (ifname, str(ep.ip)), (ifname,)


def policy_chain(pol: PolicyIR, direction: str) -> str:
    """``pi-``/``po-`` + a hash of ``ns/name`` (Calico's cali-pi-/cali-po-)."""
    return policy_chain_name(pol.ref, direction)


@lru_cache(maxsize=65536)
def policy_chain_name(ref: str, direction: str) -> str:
    return ("pi-" if direction == "ingress" else "po-") + short_hash("policy", ref)


@lru_cache(maxsize=4096)
def signature_chain_name(direction: str, refs: tuple[str, ...]) -> str:
    """The chain of the pods isolated in ``direction`` by exactly the policies ``refs``."""
    return f"{direction}-" + short_hash(direction, list(refs))


# --- base chains -----------------------------------------------------------------------------


_CT_STATE = {"ct": {"key": "state"}}
_CT_MARK = {"ct": {"key": "mark"}}
_L4_DPORT = concat(meta("l4proto"), payload("th", "dport"))
_CALI = IFACE_PREFIX + "*"


def _ct_rules() -> list[NftRule]:
    return [
        NftRule.make([match(_CT_STATE, ["established", "related"], "in"), ACCEPT], "replies and related traffic"),
        NftRule.make([match(_CT_STATE, "invalid", "in"), COUNTER, DROP], "invalid conntrack state"),
    ]


def to_host_rules(action: str = "Drop") -> list[NftRule]:
    """The end of the input chain for a pod's new connection to its own node (BIRD, etcd, the
    agent, anything listening there). Drop, Felix's default, keeps a node safe from its pods;
    Accept lets the pod's egress policy decide, as for any other destination."""
    if action == "Accept":
        return [NftRule.make([goto(FROM_WL)], "pod to its node: its egress policy (endpoint-to-host Accept)")]
    if action != "Drop":
        raise ValueError(f"endpoint-to-host action {action!r}: use one of {', '.join(TO_HOST_ACTIONS)}")
    # The API server port stays open to pods (as Calico's failsafe ports keep it): the
    # `kubernetes` Service's endpoint is a node address, so pods on that node reach it here.
    # Their egress policy still decides.
    failsafe = NftRule.make([match(payload("tcp", "dport"), APISERVER_PORT), goto(FROM_WL)],
                            f"pod to its node's API server port {APISERVER_PORT}: its egress policy (failsafe)")
    return [failsafe, NftRule.make([COUNTER, DROP], "pod to its node: dropped (endpoint-to-host Drop)")]


def base_chains(to_host: str = "Drop") -> dict[str, NftChain]:
    """The fixed part: hooks, the dispatch chains and egress-ok. The dispatch here is the
    tiered table's (verdict maps keyed on the pod); the Kubernetes-only table replaces
    ``from-wl`` and ``to-wl`` with one rule per signature chain (``dispatch``)."""
    forward = NftChain("forward", tuple([
        NftRule.make([match(_CT_MARK, FLOW_DENIED_MARK), COUNTER, DROP],
                     "a tracked flow the policy denies since it was established"),
    ] + _ct_rules() + [
        NftRule.make([match(meta("iifname"), _CALI), goto(FROM_WL)], "from a pod: its egress policy"),
        NftRule.make([match(meta("oifname"), _CALI), goto(TO_WL)], "to a pod: its ingress policy"),
    ]), hook="forward")
    inp = NftChain("input", tuple(
        [NftRule.make([match(meta("iifname"), _CALI, "!="), ACCEPT], "not from a pod: not ours to filter")]
        + _ct_rules()
        + to_host_rules(to_host)), hook="input")
    from_wl = NftChain(FROM_WL, (
        NftRule.make([vmap(concat(meta("iifname"), payload("ip", "saddr")), "@" + FROM_MAP)],
                     "dispatch by pod interface and its address"),
        NftRule.make([match(meta("iifname"), "@" + POD_IFACES), COUNTER, DROP],
                     "anti-spoofing: source is not the pod's address"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    to_wl = NftChain(TO_WL, (
        NftRule.make([vmap(meta("oifname"), "@" + TO_MAP)], "dispatch by pod interface"),
        NftRule.make([COUNTER, DROP], "unknown pod interface: fail closed until programmed"),
    ))
    egress_ok = NftChain(EGRESS_OK, (
        NftRule.make([match(meta("oifname"), _CALI), goto(TO_WL)], "egress allowed; to a pod here: its ingress policy"),
        NftRule.make([COUNTER, ACCEPT], "egress allowed"),
    ))
    return {c.name: c for c in (forward, inp, from_wl, to_wl, egress_ok)}


# --- peers and ports -------------------------------------------------------------------------


def label_groups(pods: Iterable[Endpoint]) -> list[tuple[Endpoint, tuple[int, ...]]]:
    """Programmed pods grouped by (namespace, labels): every selector decides a group alike."""
    groups: dict[tuple[Any, ...], tuple[Endpoint, list[int]]] = {}
    for ep in pods:
        if programmed(ep):
            key = (ep.namespace, tuple(sorted(ep.labels.items())))
            groups.setdefault(key, (ep, []))[1].append(ip_int(ep.ip or ""))
    return [(ep, tuple(ips)) for _, (ep, ips) in sorted(groups.items(), key=lambda kv: kv[0])]


def port_elements(spans: Iterable[tuple[str, int, int]]) -> list[tuple[str, tuple[int, int]]]:
    """``(protocol, first, last)`` spans as sorted, merged ``proto . port`` interval elements."""
    by_proto: dict[str, list[tuple[int, int]]] = {}
    for proto, lo, hi in spans:
        by_proto.setdefault(proto.lower(), []).append((lo, hi))
    return sorted((proto, span) for proto, spans_ in by_proto.items() for span in merge_intervals(spans_))


@dataclass(frozen=True)
class _Addr:
    """One address matcher: a named set and its address family."""

    set_name: str
    version: int


class SetBuilder:
    """Collects the named sets policy chains look up while they are rendered.

    ``groups`` gives the programmed pods by namespace and labels (asked once, when a set first
    needs members); ``local`` and ``pods`` are the destinations named ports resolve on (the
    local pods for ingress, every pod for egress; None: named ports cannot be rendered here);
    sets named in ``existing`` are there already, so their members are not computed again.
    """

    def __init__(self, peers: PeerContext, groups: Callable[[], LabelGroups], *,
                 local: Sequence[Endpoint] = (), pods: Sequence[Endpoint] | None = None,
                 existing: Container[str] = frozenset()) -> None:
        self.peers = peers
        self.local = local
        self.pods = pods
        #: the sets built here (not the existing ones)
        self.sets: dict[str, NftSet] = {}
        #: pod-selector sets by name, with the peer that defines their members
        self.pod_peers: dict[str, PodPeer] = {}
        #: the rules' port sets built here (always built: they follow the policy)
        self.port_sets: set[str] = set()
        #: the set-making calls made while rendering one policy chain (replayed on a memo hit)
        self.requests: list[tuple[Any, ...]] | None = None
        self._groups_of = groups
        self._groups: LabelGroups | None = None
        self._existing = existing

    @property
    def groups(self) -> LabelGroups:
        if self._groups is None:
            self._groups = self._groups_of()
        return self._groups

    def has(self, name: str) -> bool:
        return name in self.sets or name in self._existing

    def _note(self, *request: Any) -> None:
        if self.requests is not None:
            self.requests.append(request)

    def replay(self, requests: list[tuple[Any, ...]]) -> None:
        for kind, *args in requests:
            getattr(self, kind)(*args)

    def pod_peer(self, peer: PodPeer) -> _Addr:
        self._note("pod_peer", peer)
        scope = peer.namespace if peer.namespace_selector is None else peer.namespace_selector.to_dict()
        name = "pods-" + short_hash("pods", scope, peer.pod_selector.to_dict())
        self.pod_peers.setdefault(name, peer)
        if not self.has(name):
            members = frozenset(((ip, ip),) for ep, ips in self.groups if peer_matches(peer, ep, self.peers)
                                for ip in ips)
            self.sets[name] = NftSet(name, _V4, False, members)
        return _Addr(name, 4)

    def ip_block(self, peer: IPBlockPeer) -> _Addr:
        self._note("ip_block", peer)
        version = peer.network.version
        matches_pods = self.peers.ipblock_matches_pods
        name = f"net{version}-" + short_hash("net", peer.cidr, sorted(peer.excepts), matches_pods)
        if not self.has(name):
            holes = list(peer.excepts)
            if not matches_pods and version == 4:
                pod_ips = sorted({ip for _, ips in self.groups for ip in ips})
                holes += [str(ipaddress.IPv4Address(ip)) for ip in pod_ips]
            spans = cidr_minus(peer.cidr, holes)
            self.sets[name] = NftSet(name, _V4 if version == 4 else _V6, True, frozenset((s,) for s in spans))
        return _Addr(name, version)

    def rule_ports(self, pol: PolicyIR, rule: Rule, spans: tuple[tuple[str, int, int], ...]) -> str | None:
        """A rule's numeric ports as its own named ``proto . port`` interval set (None when
        empty), so that editing the rule's ports changes elements, not the rule: a rule with a
        verdict added to the table makes the kernel check the table's jumps. Always built
        (its elements come from the policy, not from the pods)."""
        self._note("rule_ports", pol, rule, spans)
        elems = port_elements(spans)
        if not elems:
            return None
        name = "ports-" + short_hash("ports", pol.ref, rule.direction, rule.index)
        self.sets[name] = NftSet(name, _PORTS, True, frozenset(elems))
        self.port_sets.add(name)
        return name

    @staticmethod
    def ports(spans: Iterable[tuple[str, int, int]]) -> dict[str, Any] | None:
        """The ranges as an anonymous ``proto . port`` interval set (None when empty).

        Anonymous, not named: the set changes only with the policy, which rewrites the chain
        anyway, and every named set makes each later transaction slower (libnftables fetches
        all set definitions before it commits an element)."""
        elems = port_elements(spans)
        if not elems:
            return None
        return {"set": [element_json(e, _PORTS) for e in elems]}

    def named_ports(self, pol: PolicyIR, rule: Rule, named: list[PortMatch]) -> str:
        """Named ports resolved on each destination, as an ``ip . proto . port`` set: for ingress
        the local pods the policy selects, for egress every pod the rule's peers match."""
        self._note("named_ports", pol, rule, named)
        name = "nport-" + short_hash("nport", pol.ref, rule.direction, rule.index)
        if self.has(name):
            return name
        if self.pods is None:
            raise ValueError("named ports resolve on every pod: render the table in full")
        if rule.direction == "ingress":
            dests = [ep for ep in self.local if pol.selects(ep.namespace or "", dict(ep.labels))]
        else:
            dests = [ep for ep in self.pods if ep.is_pod and (
                rule.peers is None or any(peer_matches(p, ep, self.peers) for p in rule.peers))]
        elems = set()
        for ep in dests:
            if not ep.ip or ":" in ep.ip:
                continue
            ip = ip_int(ep.ip)
            for pm in named:
                span = pm.resolve(dict(ep.named_ports))
                if span is not None:
                    elems.add(((ip, ip), pm.protocol.lower(), span))
        self.sets[name] = NftSet(name, _NAMED, True, frozenset(elems))
        return name


def _addr_match(addr: _Addr, field: str) -> dict[str, Any]:
    return match(payload("ip" if addr.version == 4 else "ip6", field), "@" + addr.set_name)


def _port_range(pm: PortMatch) -> tuple[str, int, int]:
    """A numeric port match as (protocol, first, last); no port: every port."""
    if pm.port is None:
        return pm.protocol, 0, 65535
    return pm.protocol, int(pm.port), int(pm.end_port or pm.port)


def _rule_rules(b: SetBuilder, pol: PolicyIR, rule: Rule) -> list[NftRule]:
    """One NetworkPolicy rule → nft rules (OR over peers, × the port sets)."""
    ingress = rule.direction == "ingress"
    field = "saddr" if ingress else "daddr"
    # flow logs: each new connection this rule allows, named by the rule's identity
    verdict = [flowlog.log_stmt(flowlog.allow_rule_id(pol.ref, rule.direction, rule.index)),
               ACCEPT if ingress else goto(EGRESS_OK)]
    where = f"{pol.ref} {rule.provenance.field_path}"
    if rule.peers is None:
        matchers: list[tuple[list[Any], str]] = [([], where)]
    else:
        matchers = []
        for peer in rule.peers:
            if isinstance(peer, PodPeer):
                addr = b.pod_peer(peer)
            elif isinstance(peer, IPBlockPeer):
                addr = b.ip_block(peer)
            else:  # render_indexed refuses states with the tiered kinds' peers
                raise ValueError(f"{pol.ref}: {peer.describe()} is not a NetworkPolicy peer")
            matchers.append(([_addr_match(addr, field)], f"{pol.ref} {peer.provenance.field_path}"))
    if rule.ports is None:
        return [NftRule.make(m + [COUNTER, *verdict], text) for m, text in matchers]
    named = [pm for pm in rule.ports if pm.is_named]
    out: list[NftRule] = []
    port_set = b.rule_ports(pol, rule, tuple(_port_range(pm) for pm in rule.ports if not pm.is_named))
    if port_set is not None:
        out += [NftRule.make(m + [match(_L4_DPORT, "@" + port_set), COUNTER, *verdict], text + " ports")
                for m, text in matchers]
    if named:
        nset = b.named_ports(pol, rule, named)
        key = concat(payload("ip", "daddr"), meta("l4proto"), payload("th", "dport"))
        out += [NftRule.make(m + [match(key, "@" + nset), COUNTER, *verdict], text + " named ports")
                for m, text in matchers]
    return out


def render_policy_chain(b: SetBuilder, pol: PolicyIR, direction: Direction) -> NftChain:
    """A policy's ``pi-``/``po-`` chain; the sets its rules look up are collected in ``b``."""
    rules: list[NftRule] = []
    for rule in pol.rules(direction):
        rules += _rule_rules(b, pol, rule)
    return NftChain(policy_chain(pol, direction), tuple(rules))


class RenderMemo:
    """Per-policy chains from earlier renders, reused while the policy is the same object (the
    agent keeps compiled policies by resourceVersion). Only a cache: output is identical with
    or without it. The sets a chain needs are rebuilt every time, from the current pods."""

    def __init__(self) -> None:
        self._chains: dict[tuple[int, str, bool], tuple[PolicyIR, NftChain, list[tuple[Any, ...]]]] = {}
        self._used: set[tuple[int, str, bool]] = set()

    def chain(self, b: SetBuilder, pol: PolicyIR, direction: Direction) -> NftChain:
        key = (id(pol), direction, b.peers.ipblock_matches_pods)
        self._used.add(key)
        hit = self._chains.get(key)
        if hit is not None and hit[0] is pol:
            b.replay(hit[2])
            return hit[1]
        b.requests = []
        try:
            chain = render_policy_chain(b, pol, direction)
            self._chains[key] = (pol, chain, b.requests)
        finally:
            b.requests = None
        return chain

    def sweep(self) -> None:
        """Forget chains the last render did not use."""
        for key in set(self._chains) - self._used:
            del self._chains[key]
        self._used.clear()


@lru_cache(maxsize=4096)
def signature_chain(direction: str, refs: tuple[str, ...], own: tuple[str, ...]) -> NftChain:
    """The chain of the pods ``refs`` isolate: the own node's addresses ``own`` (ingress), a
    jump to each policy's chain, then drop."""
    rules: list[NftRule] = []
    if direction == "ingress":
        for ip in own:
            proto = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
            rules.append(NftRule.make([match(payload(proto, "saddr"), ip), COUNTER, ACCEPT], "from the pod's own node"))
    rules += [NftRule.make([jump(policy_chain_name(ref, direction))], f"{ref} ({direction})") for ref in refs]
    # flow logs: a rate-limited record of the denial beside the drop rule's exact counter
    deny = flowlog.deny_rule_id(refs, direction)
    rules.append(NftRule.make([flowlog.limit_stmt(), flowlog.log_stmt(deny)], f"flow log: {deny.describe()}"))
    rules.append(NftRule.make([COUNTER, DROP], f"default deny {direction} (isolated by {', '.join(refs)})"))
    return NftChain(signature_chain_name(direction, refs), tuple(rules))


def local_pods(state: ClusterState, node: str) -> list[Endpoint]:
    """Pod-network pods bound to ``node`` that have an IPv4 address (the ones to program)."""
    return [ep for ep in state.pods if programmed(ep) and ep.node == node]


@dataclass(frozen=True)
class RenderIndex:
    """What the last full render knew that the live planner (``live``) needs."""

    node: str
    own: tuple[str, ...]
    interfaces: Mapping[str, str]
    pod_sets: Mapping[str, PodPeer]
    #: sets whose members depend on pods in ways a per-pod update does not redo
    pod_dependent_extras: bool
    signatures: Signatures = field(default_factory=dict)
    #: the addresses the ingress signature chains accept as the pod's own node
    sig_own: tuple[str, ...] = ()


def render(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
           interfaces: Mapping[str, str] | None = None, memo: RenderMemo | None = None,
           to_host: str = "Drop") -> NftTable:
    """The desired ``inet podnet`` table for ``node`` (see ``render_indexed``)."""
    return render_indexed(state, node, node_ips=node_ips, interfaces=interfaces, memo=memo, to_host=to_host)[0]


def render_indexed(state: ClusterState, node: str, *, node_ips: Iterable[str] = (),
                   interfaces: Mapping[str, str] | None = None,
                   memo: RenderMemo | None = None, to_host: str = "Drop") -> tuple[NftTable, RenderIndex]:
    """The desired ``inet podnet`` table for ``node``.

    ``interfaces`` maps ``ns/pod`` to the host-side interface when it is not Calico's default
    name; ``node_ips`` adds node addresses to the pods' own ``status.hostIP``; ``memo`` (kept
    by the caller between renders) skips re-rendering the chains of unchanged policies;
    ``to_host`` is the endpoint-to-host action (``to_host_rules``).
    """
    if any(not p.is_k8s for p in state.policies):  # tiers: Felix's layout (see ``tiers``)
        from .tiers import render_tiered
        return render_tiered(state, node, node_ips=node_ips, interfaces=interfaces, to_host=to_host)
    local = local_pods(state, node)
    given = dict(interfaces or {})
    b = SetBuilder(state, lambda: label_groups(state.pods), local=local, pods=state.pods)
    chains = base_chains(to_host)
    own = tuple(sorted({*node_ips, *(p.host_ip for p in local if p.host_ip)}))
    from_map: dict[MapKey, Verdict] = {}
    to_map: dict[MapKey, Verdict] = {}
    ifaces: set[MapKey] = set()
    policies_needed: dict[tuple[Direction, str], PolicyIR] = {}
    # Pods with the same namespace and labels are selected by the same policies: decide once.
    verdicts: dict[tuple[Any, ...], dict[Direction, Verdict]] = {}
    signatures: dict[str, tuple[Direction, tuple[str, ...]]] = {}
    for pod in local:
        from_key, to_key = dispatch_keys(pod, given)
        ifaces.add(to_key)
        group = (pod.namespace, tuple(sorted(pod.labels.items())))
        decided = verdicts.get(group)
        if decided is None:
            decided = verdicts[group] = {}
            selecting = state.selecting_any(pod)
            for direction in DIRECTIONS:
                isolating = tuple(p for p in selecting if direction in p.isolates)
                if not isolating:
                    decided[direction] = ALLOW[direction]
                    continue
                refs = tuple(p.ref for p in isolating)
                sig = signature_chain_name(direction, refs)
                if sig not in chains:
                    chains[sig] = signature_chain(direction, refs, own)
                    signatures[sig] = (direction, refs)
                for p in isolating:
                    policies_needed[(direction, p.ref)] = p
                decided[direction] = ("goto", sig)
        from_map[from_key] = decided["egress"]
        to_map[to_key] = decided["ingress"]
    for (direction, _ref), pol in sorted(policies_needed.items()):
        chain = memo.chain(b, pol, direction) if memo is not None else render_policy_chain(b, pol, direction)
        chains[chain.name] = chain
    if memo is not None:
        memo.sweep()
    b.sets[POD_IFACES] = NftSet(POD_IFACES, ("ifname",), False, frozenset(ifaces))
    b.sets.update(member_sets(from_map, to_map))
    chains.update(dispatch_chains(n for n in b.sets if n.startswith(("from-", "to-"))))
    table = NftTable(TABLE.family, TABLE.name, sets=dict(sorted(b.sets.items())),
                     chains=dict(sorted(chains.items())))
    extras = any(n.startswith("nport-") for n in b.sets) or (
        not state.ipblock_matches_pods and any(n.startswith("net") for n in b.sets))
    index = RenderIndex(node, tuple(sorted(set(node_ips))), given, dict(b.pod_peers), extras, signatures, own)
    return table, index


def member_sets(from_map: Mapping[MapKey, Verdict], to_map: Mapping[MapKey, Verdict]) -> dict[str, NftSet]:
    """The dispatch entries as membership sets, one per verdict; the open ones always exist."""
    members: dict[str, set[Element]] = {member_set(FROM_MAP, ALLOW["egress"]): set(),
                                        member_set(TO_MAP, ALLOW["ingress"]): set()}
    for which, entries in ((FROM_MAP, from_map), (TO_MAP, to_map)):
        for key, verdict in entries.items():
            members.setdefault(member_set(which, verdict), set()).add(member_element(which, key))
    return {name: NftSet(name, KEY_TYPES[FROM_MAP if name.startswith("from-") else TO_MAP], False, frozenset(elems))
            for name, elems in members.items()}


def describe_rule(comment: str) -> str:
    """A rule comment without its hash mark (for explanations)."""
    return comment.split(" ", 1)[1] if " " in comment else comment
