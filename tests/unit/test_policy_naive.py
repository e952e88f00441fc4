"""A naive per-pair evaluator of tiered policy, written from the spec for the tests only, and a
generator of random tiered clusters.

The evaluator reads the manifests (model values) directly, not the engine's IR: for every
connection it lists every policy of every kind, sorts tiers and policies, and walks rules
first-match, as Calico's documentation and felix describe it. It shares only the model and the
selector parser with the engine, so a disagreement points at the engine's compilation, its
ordering or one of its matchers.
"""
from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podnet.model import (
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    CalicoNetworkPolicy,
    ClusterNetworkPolicy,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    Namespace,
    NetworkPolicy,
    NetworkSet,
    Node,
    Pod,
    Tier,
)
from podnet.model.calico_selector import parse_selector
from podnet.model.selectors import LabelSelector

ECHO = (8, 0)  # ICMP as the engine sends it: an echo request
PROTO_NUMBERS = {"tcp": "TCP", "6": "TCP", "udp": "UDP", "17": "UDP", "sctp": "SCTP", "132": "SCTP",
                 "icmp": "ICMP", "1": "ICMP", "icmpv6": "ICMPv6", "58": "ICMPv6", "udplite": "UDPLite", "136": "UDPLite"}
BUILTIN = {"kube-admin": (1000.0, "Pass"), "default": (1_000_000.0, "Deny"), "kube-baseline": (10_000_000.0, "Pass")}
OLD_NAMES = {"adminnetworkpolicy": "kube-admin", "baselineadminnetworkpolicy": "kube-baseline"}


def _proto(value: Any) -> str | None:
    if value is None:
        return None
    return PROTO_NUMBERS.get(str(value).lower(), str(value))


def _in(ip: str | None, cidrs: list[str]) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    for c in cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if net.version == addr.version and addr in net:
            return True
    return False


@dataclass
class Thing:
    """A pod (name set) or a bare address."""

    ip: str | None
    pod: Pod | None = None

    @property
    def ns(self) -> str | None:
        return (self.pod.metadata.namespace or "default") if self.pod else None

    @property
    def workload(self) -> bool:
        return self.pod is not None and not self.pod.spec.host_network


class Naive:
    def __init__(self, namespaces: list[Namespace], pods: list[Pod], policies: list[Any], tiers: list[Tier] = (),
                 netsets: list[Any] = (), nodes: list[Node] = (), ipblock_matches_pods: bool = True) -> None:
        self.ns = {n.metadata.name: {**n.metadata.labels, "kubernetes.io/metadata.name": n.metadata.name}
                   for n in namespaces}
        for p in pods:
            self.ns.setdefault(p.metadata.namespace or "default",
                               {"kubernetes.io/metadata.name": p.metadata.namespace or "default"})
        self.pods = pods
        self.policies = policies
        self.tiers = list(tiers)
        self.netsets = list(netsets)
        self.nodes = list(nodes)
        self.ipblock_matches_pods = ipblock_matches_pods

    # -- labels ----------------------------------------------------------------------------------
    def sa(self, pod: Pod) -> str:
        return pod.spec.service_account_name or pod.spec.service_account or "default"

    def calico_labels(self, pod: Pod) -> dict[str, str]:
        ns = pod.metadata.namespace or "default"
        out = dict(pod.metadata.labels)
        out["projectcalico.org/namespace"] = ns
        out["projectcalico.org/orchestrator"] = "k8s"
        out["projectcalico.org/serviceaccount"] = self.sa(pod)
        for k, v in self.ns[ns].items():
            out["pcns." + k] = v
        out["pcns.projectcalico.org/name"] = ns
        out["pcsa.projectcalico.org/name"] = self.sa(pod)
        return out

    def set_labels(self, s: Any) -> dict[str, str]:
        out = dict(s.metadata.labels)
        if isinstance(s, NetworkSet):
            ns = s.metadata.namespace or "default"
            out["projectcalico.org/namespace"] = ns
            for k, v in self.ns.get(ns, {"kubernetes.io/metadata.name": ns}).items():
                out["pcns." + k] = v
            out["pcns.projectcalico.org/name"] = ns
        return out

    def ns_sel(self, text: str, namespace: str | None) -> bool:
        """A Calico namespaceSelector for an entity of ``namespace`` (None: not namespaced)."""
        mark = "zz-namespaced"
        pieces = re.split(r"('[^']*'|\"[^\"]*\")", text or "all()")
        for i in range(0, len(pieces), 2):
            pieces[i] = re.sub(r"\ball\(\)", f"has({mark})", pieces[i])
            pieces[i] = re.sub(r"\bglobal\(\)", f"!has({mark})", pieces[i])
        labels = {} if namespace is None else {**self.ns.get(namespace, {}), "projectcalico.org/name": namespace,
                                               mark: "x"}
        return parse_selector("".join(pieces)).matches(labels)

    # -- tiers ------------------------------------------------------------------------------------
    def tier_list(self) -> list[tuple[str, float | None, str, bool]]:
        found = {n: (n, o, a, True) for n, (o, a) in BUILTIN.items()}
        for t in self.tiers:
            name = OLD_NAMES.get(t.metadata.name, t.metadata.name)
            if name in BUILTIN:
                continue
            found[name] = (name, t.spec.order, t.spec.default_action or "Deny", True)
        for p in self.policies:
            t = self.tier_of(p)
            if t not in found:
                found[t] = (t, None, "Deny", False)
        return sorted(found.values(), key=lambda t: (not t[3], t[1] is None, t[1] or 0.0, t[0]))

    def tier_of(self, p: Any) -> str:
        if isinstance(p, NetworkPolicy):
            return "default"
        if isinstance(p, (CalicoNetworkPolicy, GlobalNetworkPolicy)):
            return OLD_NAMES.get(p.spec.tier or "default", p.spec.tier or "default")
        if isinstance(p, AdminNetworkPolicy):
            return "kube-admin"
        if isinstance(p, BaselineAdminNetworkPolicy):
            return "kube-baseline"
        return "kube-admin" if p.spec.tier == "Admin" else "kube-baseline"

    def order_of(self, p: Any) -> float | None:
        if isinstance(p, NetworkPolicy):
            return 1000.0
        if isinstance(p, (CalicoNetworkPolicy, GlobalNetworkPolicy)):
            return p.spec.order
        if isinstance(p, BaselineAdminNetworkPolicy):
            return 1000.0
        return float(p.spec.priority)

    # -- who a policy applies to, what it governs ------------------------------------------------
    def applies(self, p: Any, e: Thing) -> bool:
        if not e.workload:
            return False
        pod = e.pod
        assert pod is not None
        ns = e.ns
        if isinstance(p, NetworkPolicy):
            return (p.metadata.namespace or "default") == ns and p.spec.pod_selector.matches(pod.metadata.labels)
        if isinstance(p, CalicoNetworkPolicy):
            return ((p.metadata.namespace or "default") == ns
                    and parse_selector(p.spec.selector or "all()").matches(self.calico_labels(pod))
                    and self._sa_ok(p.spec.service_account_selector, pod))
        if isinstance(p, GlobalNetworkPolicy):
            if p.spec.do_not_track or p.spec.pre_dnat:
                return False
            if p.spec.namespace_selector and p.spec.namespace_selector.strip() and not self.ns_sel(p.spec.namespace_selector, ns):
                return False
            return parse_selector(p.spec.selector or "all()").matches(self.calico_labels(pod)) and self._sa_ok(
                p.spec.service_account_selector, pod)
        subject = p.spec.subject
        if subject.namespaces is not None:
            return subject.namespaces.matches(self.ns[ns])
        return subject.pods.namespace_selector.matches(self.ns[ns]) and subject.pods.pod_selector.matches(pod.metadata.labels)

    def _sa_ok(self, sel: str | None, pod: Pod) -> bool:
        return not sel or parse_selector(sel).matches({"projectcalico.org/name": self.sa(pod)})

    def governs(self, p: Any, direction: str) -> bool:
        if isinstance(p, NetworkPolicy):
            return direction.capitalize() in p.spec.effective_policy_types
        if isinstance(p, (CalicoNetworkPolicy, GlobalNetworkPolicy)):
            types = p.spec.types
            if not types:
                ing, eg = bool(p.spec.ingress), bool(p.spec.egress)
                types = ["Egress"] if eg and not ing else (["Ingress", "Egress"] if eg else ["Ingress"])
            return direction.capitalize() in types
        return bool(getattr(p.spec, direction))

    # -- rules --------------------------------------------------------------------------------------
    def rules(self, p: Any, direction: str) -> list[tuple[str, Callable[[Thing, Thing, Thing, Thing, int | None, str], bool]]]:
        """(action, test(subject, peer, src, dst, port, proto)) in order."""
        out = []
        for rule in getattr(p.spec, direction) or ():
            if isinstance(p, NetworkPolicy):
                out.append(("Allow", self._k8s_rule(p, rule, direction)))
            elif isinstance(p, (CalicoNetworkPolicy, GlobalNetworkPolicy)):
                out.append((rule.action, self._calico_rule(p, rule, direction)))
            else:
                action = "Allow" if rule.action in ("Allow", "Accept") else rule.action
                out.append((action, self._admin_rule(rule, direction)))
        return out

    def _named(self, dst: Thing, name: str, proto: str) -> int | None:
        if dst.pod is None:
            return None
        for c in dst.pod.spec.containers:
            for port in c.ports or ():
                if port.name == name and port.protocol == proto:
                    return port.container_port
        return None

    def _k8s_rule(self, p: NetworkPolicy, rule: Any, direction: str) -> Callable[..., bool]:
        peers = (rule.from_ if direction == "ingress" else rule.to) or []
        ports = rule.ports or []
        home = p.metadata.namespace or "default"

        def peer_ok(e: Thing) -> bool:
            if not peers:
                return True
            for peer in peers:
                if peer.ip_block is not None:
                    if e.workload and not self.ipblock_matches_pods:
                        continue
                    if _in(e.ip, [peer.ip_block.cidr]) and not _in(e.ip, peer.ip_block.except_ or []):
                        return True
                    continue
                if not e.workload:
                    continue
                if peer.namespace_selector is None:
                    ns_ok = e.ns == home
                else:
                    ns_ok = peer.namespace_selector.matches(self.ns[e.ns])
                pod_ok = peer.pod_selector is None or peer.pod_selector.matches(e.pod.metadata.labels)
                if ns_ok and pod_ok:
                    return True
            return False

        def port_ok(dst: Thing, port: int | None, proto: str) -> bool:
            if not ports:
                return True
            for entry in ports:
                if (entry.protocol or "TCP") != proto:
                    continue
                if entry.port is None:
                    return True
                if port is None:
                    continue
                if isinstance(entry.port, str):
                    if self._named(dst, entry.port, proto) == port:
                        return True
                elif entry.port <= port <= (entry.end_port or entry.port):
                    return True
            return False

        return lambda subject, peer, src, dst, port, proto: peer_ok(peer) and port_ok(dst, port, proto)

    def _calico_rule(self, p: Any, rule: Any, direction: str) -> Callable[..., bool]:
        home = None if isinstance(p, GlobalNetworkPolicy) else (p.metadata.namespace or "default")
        proto = _proto(rule.protocol)
        not_proto = _proto(rule.not_protocol)

        def ports_match(values: list[Any], dst: Thing, port: int | None, traffic: str) -> bool:
            for v in values:
                if isinstance(v, int) or (isinstance(v, str) and (v.isdigit() or ":" in v)):
                    text = str(v)
                    lo, _, hi = text.partition(":")
                    if port is not None and int(lo) <= port <= int(hi or lo):
                        return True
                elif port is not None and self._named(dst, v, traffic) == port:
                    return True
            return False

        def entity(e_rule: Any, e: Thing) -> bool:
            if e_rule.nets and not _in(e.ip, e_rule.nets):
                return False
            if e_rule.not_nets and _in(e.ip, e_rule.not_nets):
                return False
            sel = e_rule.selector if e_rule.selector and e_rule.selector.strip() else None
            nsel = e_rule.namespace_selector
            notsel = e_rule.not_selector if e_rule.not_selector and e_rule.not_selector.strip() else None
            sa = e_rule.service_accounts
            sa_names = sa.names if sa and sa.names else None
            sa_sel = sa.selector if sa and sa.selector else None
            selecting = bool(sel or notsel or sa_names or sa_sel)
            scoped = home is not None and nsel is None and selecting
            positive = bool(sel or sa_names or sa_sel or nsel is not None or scoped)

            def in_scope(namespace: str | None) -> bool:
                if nsel is not None:
                    return self.ns_sel(nsel, namespace)
                return not scoped or namespace == home

            if positive:
                hit = False
                for pod in self.pods:  # by address: the endpoints with this IP
                    if pod.spec.host_network or not pod.status.pod_ip or pod.status.pod_ip != e.ip:
                        continue
                    if not in_scope(pod.metadata.namespace or "default"):
                        continue
                    if sa_names and self.sa(pod) not in sa_names:
                        continue
                    if sa_sel and not parse_selector(sa_sel).matches({"projectcalico.org/name": self.sa(pod)}):
                        continue
                    if sel and not parse_selector(sel).matches(self.calico_labels(pod)):
                        continue
                    hit = True
                if not hit and not (sa_names or sa_sel):
                    for s in self.netsets:
                        s_ns = (s.metadata.namespace or "default") if isinstance(s, NetworkSet) else None
                        if in_scope(s_ns) and (not sel or parse_selector(sel).matches(self.set_labels(s))) \
                                and _in(e.ip, s.spec.nets or []):
                            hit = True
                if not hit:
                    return False
            if notsel:
                neg = parse_selector(notsel)
                for pod in self.pods:
                    if not pod.spec.host_network and pod.status.pod_ip and pod.status.pod_ip == e.ip \
                            and neg.matches(self.calico_labels(pod)):
                        return False
                for s in self.netsets:
                    if neg.matches(self.set_labels(s)) and _in(e.ip, s.spec.nets or []):
                        return False
            return True

        def test(subject: Thing, peer: Thing, src: Thing, dst: Thing, port: int | None, traffic: str) -> bool:
            if proto is not None and proto != traffic:
                return False
            if not_proto is not None and not_proto == traffic:
                return False
            if rule.icmp is not None:
                t, c = rule.icmp.type, rule.icmp.code
                if traffic != "ICMP" or (t is not None and t != ECHO[0]) or (c is not None and c != ECHO[1]):
                    return False
            if rule.not_icmp is not None and traffic == "ICMP":
                t, c = rule.not_icmp.type, rule.not_icmp.code
                if (t is None or t == ECHO[0]) and (c is None or c == ECHO[1]):
                    return False
            if rule.ip_version is not None and rule.ip_version != (6 if ":" in (subject.ip or "") else 4):
                return False
            d = rule.destination
            if d.ports:
                protos = [proto] if proto in ("TCP", "UDP", "SCTP", "UDPLite") else ["TCP", "UDP", "SCTP"]
                if traffic not in protos or not ports_match(d.ports, dst, port, traffic):
                    return False
            if d.not_ports and ports_match(d.not_ports, dst, port, traffic):
                return False
            return entity(rule.source, src) and entity(rule.destination, dst)

        return test

    def _admin_rule(self, rule: Any, direction: str) -> Callable[..., bool]:
        peers = rule.from_ if direction == "ingress" else rule.to
        ports = getattr(rule, "ports", None)
        protocols = getattr(rule, "protocols", None)

        def peer_ok(e: Thing) -> bool:
            for peer in peers:
                if peer.namespaces is not None:
                    if e.workload and peer.namespaces.matches(self.ns[e.ns]):
                        return True
                elif peer.pods is not None:
                    if e.workload and peer.pods.namespace_selector.matches(self.ns[e.ns]) \
                            and peer.pods.pod_selector.matches(e.pod.metadata.labels):
                        return True
                elif getattr(peer, "networks", None) is not None:
                    if _in(e.ip, peer.networks):
                        return True
                elif getattr(peer, "nodes", None) is not None:
                    for node in self.nodes:
                        labels = {"kubernetes.io/hostname": node.metadata.name, **node.metadata.labels}
                        if peer.nodes.matches(labels) and e.ip in [a.address for a in node.status.addresses or ()]:
                            return True
            return False

        def port_ok(dst: Thing, port: int | None, traffic: str) -> bool:
            if ports is None and protocols is None:
                return True
            if port is None:
                return False
            for entry in ports or ():
                if entry.port_number is not None and entry.port_number.protocol == traffic \
                        and entry.port_number.port == port:
                    return True
                if entry.port_range is not None and entry.port_range.protocol == traffic \
                        and entry.port_range.start <= port <= entry.port_range.end:
                    return True
                if entry.named_port is not None and self._named(dst, entry.named_port, traffic) == port:
                    return True
            for entry in protocols or ():
                if entry.destination_named_port is not None:
                    if self._named(dst, entry.destination_named_port, traffic) == port:
                        return True
                    continue
                l4 = {"TCP": entry.tcp, "UDP": entry.udp, "SCTP": entry.sctp}.get(traffic)
                if l4 is None or l4.destination_port is None:
                    continue
                dp = l4.destination_port
                if dp.number == port or (dp.range is not None and dp.range.start <= port <= dp.range.end):
                    return True
            return False

        return lambda subject, peer, src, dst, port, proto: peer_ok(peer) and port_ok(dst, port, proto)

    # -- the walk ---------------------------------------------------------------------------------
    def direction(self, subject: Thing, peer: Thing, src: Thing, dst: Thing, port: int | None, proto: str,
                  direction: str) -> bool:
        applying = [p for p in self.policies if self.applies(p, subject) and self.governs(p, direction)]
        if not applying:
            return True
        for name, _order, action, _defined in self.tier_list():
            in_tier = [p for p in applying if self.tier_of(p) == name]
            if not in_tier:
                continue
            in_tier.sort(key=lambda p: (self.order_of(p) is None, self.order_of(p) or 0.0, p.metadata.name,
                                        p.metadata.namespace or "" if p.NAMESPACED else "", self._kind_tag(p)))
            verdict = None
            for p in in_tier:
                for rule_action, test in self.rules(p, direction):
                    if test(subject, peer, src, dst, port, proto):
                        if rule_action == "Log":
                            continue
                        verdict = rule_action
                        break
                if verdict:
                    break
            if verdict == "Allow":
                return True
            if verdict == "Deny":
                return False
            if verdict == "Pass":
                continue
            if action == "Deny":
                return False
        return True

    @staticmethod
    def _kind_tag(p: Any) -> str:
        return {NetworkPolicy: "", CalicoNetworkPolicy: "calico", GlobalNetworkPolicy: "gnp", AdminNetworkPolicy: "anp",
                BaselineAdminNetworkPolicy: "banp", ClusterNetworkPolicy: "cnp"}[type(p)]

    def allowed(self, src: Thing, dst: Thing, port: int | None, proto: str) -> bool:
        if proto == "ICMP":
            port = None
        if src.pod is not None and dst.pod is not None and src.pod.metadata.name == dst.pod.metadata.name \
                and src.ns == dst.ns:
            return True
        if dst.workload and src.ip and not src.workload and src.ip == dst.pod.status.host_ip:
            return True
        return self.direction(src, dst, src, dst, port, proto, "egress") and \
            self.direction(dst, src, src, dst, port, proto, "ingress")


# --- a random tiered cluster ---------------------------------------------------------------------

KEYS = ["app", "role"]
VALUES = ["a", "b"]
TIER_NAMES = ["early", "late", "loose"]


def _calico_sel(rng: random.Random, keys: list[str] = KEYS) -> str:
    k, v = rng.choice(keys), rng.choice(VALUES)
    return rng.choice([f"{k} == '{v}'", f"{k} != '{v}'", f"has({k})", f"!has({k})", f"{k} in {{'a', 'b'}}",
                       f"{k} not in {{'{v}'}}", "all()", f"{k} == '{v}' || role == 'b'",
                       f"!{k} == '{v}' && has(role)", "pcns.team == 'x'", "projectcalico.org/namespace == 'n1'"])


def _ns_sel(rng: random.Random) -> str:
    return rng.choice(["all()", "global()", "team == 'x'", "team != 'x'", "projectcalico.org/name == 'n0'",
                       "!has(team)", "kubernetes.io/metadata.name in {'n1', 'n2'}"])


def _entity(rng: random.Random, ips: list[str], remote: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.3:
        return out
    if roll < 0.5:
        out["selector"] = _calico_sel(rng)
    elif roll < 0.6:
        out["notSelector"] = _calico_sel(rng)
    elif roll < 0.75:
        out["namespaceSelector"] = _ns_sel(rng)
        if rng.random() < 0.5:
            out["selector"] = _calico_sel(rng)
    elif roll < 0.9 or not remote:
        base = rng.choice(ips)
        out["nets"] = [f"{base}/32" if rng.random() < 0.5 else base.rsplit(".", 1)[0] + ".0/24"]
        if rng.random() < 0.3:
            out["notNets"] = [f"{rng.choice(ips)}/32"]
    else:
        out["selector"] = "kind == 'set'" if rng.random() < 0.5 else "kind == 'gset'"
    return out


def _calico_rules(rng: random.Random, ips: list[str]) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 3)):
        rule: dict[str, Any] = {"action": rng.choice(["Allow", "Allow", "Deny", "Pass", "Log"])}
        roll = rng.random()
        if roll < 0.4:
            rule["protocol"] = rng.choice(["TCP", "UDP", 6, "tcp"])
            if rng.random() < 0.7:
                rule["destination"] = {"ports": [rng.choice([80, "80:81", "web", 443])]}
            elif rng.random() < 0.5:
                rule["destination"] = {"notPorts": [80]}
        elif roll < 0.5:
            rule["protocol"] = "ICMP"
            if rng.random() < 0.5:
                rule["icmp"] = {"type": rng.choice([0, 8])}
            elif rng.random() < 0.5:
                rule["notICMP"] = {"type": 8, "code": 0}
        elif roll < 0.6:
            rule["notProtocol"] = rng.choice(["UDP", "TCP"])
        elif roll < 0.65:
            rule["destination"] = {"ports": ["web"]}
        src = _entity(rng, ips, True)
        dst = _entity(rng, ips, False)
        if src:
            rule["source"] = src
        if dst:
            rule["destination"] = {**rule.get("destination", {}), **dst}
        rules.append(rule)
    return rules


def _label_selector(rng: random.Random, keys: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.35:
        return {}
    if roll < 0.8:
        return {"matchLabels": {rng.choice(keys): rng.choice(VALUES)}}
    return {"matchExpressions": [{"key": rng.choice(keys), "operator": rng.choice(["Exists", "DoesNotExist"])}]}


def _admin_peer(rng: random.Random, ips: list[str], egress: bool, v2: bool) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.35:
        return {"namespaces": _label_selector(rng, ["team"])}
    if roll < 0.7 or not egress:
        return {"pods": {"namespaceSelector": _label_selector(rng, ["team"]), "podSelector": _label_selector(rng, KEYS)}}
    if roll < 0.88:
        base = rng.choice(ips)
        return {"networks": [rng.choice([f"{base}/32", base.rsplit('.', 1)[0] + ".0/24", "0.0.0.0/0"])]}
    return {"nodes": _label_selector(rng, ["zone"])}


def _admin_rules(rng: random.Random, ips: list[str], direction: str, actions: list[str], v2: bool) -> list[dict[str, Any]]:
    rules = []
    for i in range(rng.randint(0, 2)):
        key = "from" if direction == "ingress" else "to"
        rule: dict[str, Any] = {"name": f"r{i}", "action": rng.choice(actions),
                                key: [_admin_peer(rng, ips, direction == "egress", v2) for _ in range(rng.randint(1, 2))]}
        has_address = any("networks" in p or "nodes" in p for p in rule[key])
        if rng.random() < 0.5:
            if v2:
                options = [{"tcp": {"destinationPort": {"number": 80}}}, {"udp": {"destinationPort": {"range": {"start": 80, "end": 443}}}}]
                if not has_address:
                    options.append({"destinationNamedPort": "web"})
                rule["protocols"] = [rng.choice(options)]
            else:
                options = [{"portNumber": {"protocol": "TCP", "port": 80}},
                           {"portRange": {"protocol": rng.choice(["TCP", "UDP"]), "start": 80, "end": 443}}]
                if not has_address:
                    options.append({"namedPort": "web"})
                rule["ports"] = [rng.choice(options)]
        rules.append(rule)
    return rules


def tiered_cluster(seed: int) -> dict[str, Any]:
    """Namespaces, pods, nodes, tiers, network sets and a mix of every policy kind."""
    rng = random.Random(seed)
    namespaces = [Namespace.model_validate({"metadata": {"name": f"n{i}", "labels":
                                                         {"team": rng.choice(["x", "y"])} if rng.random() < 0.7 else {}}})
                  for i in range(3)]
    nodes = [Node.model_validate({"metadata": {"name": f"node{i}", "labels": {"zone": rng.choice(VALUES)}},
                                  "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.0.{i + 1}"}]}})
             for i in range(2)]
    pods = []
    for i in range(rng.randint(3, 8)):
        host = rng.random() < 0.1
        node = rng.randrange(2)
        labels = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 2))}
        ports = [{"name": "web", "containerPort": rng.choice([80, 81]), "protocol": rng.choice(["TCP", "UDP"])}] \
            if rng.random() < 0.5 else []
        pods.append(Pod.model_validate({
            "metadata": {"name": f"p{i}", "namespace": rng.choice(namespaces).metadata.name, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": ports}], "hostNetwork": host, "nodeName": f"node{node}",
                     "serviceAccountName": rng.choice(["default", "robot"])},
            "status": {"podIP": f"192.168.0.{node + 1}" if host else f"10.0.{i % 2}.{i + 2}",
                       "hostIP": f"192.168.0.{node + 1}"},
        }))
    ips = [p.status.pod_ip for p in pods] + ["8.8.8.8", "10.0.9.9"]
    tiers = []
    for name in rng.sample(TIER_NAMES, rng.randint(0, 3)):
        spec: dict[str, Any] = {}
        if rng.random() < 0.8:
            spec["order"] = rng.choice([10, 500, 1000, 5000, 1_000_000, 20_000_000])
        if rng.random() < 0.4:
            spec["defaultAction"] = "Pass"
        tiers.append(Tier.model_validate({"metadata": {"name": name}, "spec": spec}))
    netsets = []
    for i in range(rng.randint(0, 2)):
        nets = [rng.choice(ips) + "/32", "10.0.1.0/24", "8.8.0.0/16"][: rng.randint(1, 3)]
        if rng.random() < 0.5:
            netsets.append(NetworkSet.model_validate({"metadata": {"name": f"s{i}", "namespace": rng.choice(namespaces).metadata.name,
                                                                   "labels": {"kind": "set"}}, "spec": {"nets": nets}}))
        else:
            netsets.append(GlobalNetworkSet.model_validate({"metadata": {"name": f"g{i}", "labels": {"kind": "gset"}},
                                                            "spec": {"nets": nets}}))
    tier_choices = ["default", *[t.metadata.name for t in tiers], "undefined-tier"]
    policies: list[Any] = []
    for i in range(rng.randint(1, 6)):
        kind = rng.choice(["np", "calico", "gnp", "gnp", "anp", "banp", "cnp"])
        order = rng.choice([None, 100, 1000, 1000, 2000])
        if kind == "np":
            spec = {"podSelector": _label_selector(rng, KEYS), "ingress": [{"from": [{"podSelector": _label_selector(rng, KEYS)}],
                                                                            "ports": [{"port": 80}]}]}
            if rng.random() < 0.5:
                spec["policyTypes"] = ["Ingress", "Egress"]
            policies.append(NetworkPolicy.model_validate({"metadata": {"name": f"k{i}", "namespace": rng.choice(namespaces).metadata.name},
                                                          "spec": spec}))
        elif kind in ("calico", "gnp"):
            spec = {"tier": rng.choice(tier_choices), "selector": _calico_sel(rng),
                    "ingress": _calico_rules(rng, ips), "egress": _calico_rules(rng, ips)}
            if order is not None:
                spec["order"] = order
            if rng.random() < 0.4:
                spec["types"] = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
            if kind == "gnp":
                if rng.random() < 0.3:
                    spec["namespaceSelector"] = _ns_sel(rng)
                policies.append(GlobalNetworkPolicy.model_validate({"metadata": {"name": f"g{i}"}, "spec": spec}))
            else:
                policies.append(CalicoNetworkPolicy.model_validate(
                    {"metadata": {"name": f"c{i}", "namespace": rng.choice(namespaces).metadata.name}, "spec": spec}))
        else:
            v2 = kind == "cnp"
            actions = ["Allow", "Deny"] if kind == "banp" else (["Accept", "Deny", "Pass"] if v2 else ["Allow", "Deny", "Pass"])
            subject = ({"namespaces": _label_selector(rng, ["team"])} if rng.random() < 0.5 else
                       {"pods": {"namespaceSelector": _label_selector(rng, ["team"]), "podSelector": _label_selector(rng, KEYS)}})
            spec = {"subject": subject, "ingress": _admin_rules(rng, ips, "ingress", actions, v2),
                    "egress": _admin_rules(rng, ips, "egress", actions, v2)}
            if kind == "anp":
                spec["priority"] = rng.choice([1, 10, 10])
                policies.append(AdminNetworkPolicy.model_validate({"metadata": {"name": f"a{i}"}, "spec": spec}))
            elif kind == "banp" and not any(isinstance(p, BaselineAdminNetworkPolicy) for p in policies):
                policies.append(BaselineAdminNetworkPolicy.model_validate({"metadata": {"name": "default"}, "spec": spec}))
            elif kind == "cnp":
                spec["tier"] = rng.choice(["Admin", "Baseline"])
                spec["priority"] = rng.choice([1, 10, 10])
                policies.append(ClusterNetworkPolicy.model_validate({"metadata": {"name": f"x{i}"}, "spec": spec}))
    return {"namespaces": namespaces, "pods": pods, "policies": policies, "tiers": tiers, "netsets": netsets,
            "nodes": nodes}


def thing(pod_or_ip: Pod | str) -> Thing:
    if isinstance(pod_or_ip, Pod):
        return Thing(pod_or_ip.status.pod_ip, pod_or_ip)
    return Thing(pod_or_ip)


__all__ = ["Naive", "Thing", "LabelSelector", "thing", "tiered_cluster"]
