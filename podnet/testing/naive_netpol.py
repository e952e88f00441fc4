"""A deliberately naive NetworkPolicy evaluator, written from the Kubernetes API reference
alone, for differential tests: it shares no code with podnet's engine (no IR, no selector
compiler, no matrix), works on the manifests as plain dicts, and decides one connection at a
time by the letter of the spec:

- a pod is isolated for ingress (egress) if any policy in its namespace selects it and has
  Ingress (Egress) in ``policyTypes`` (default: Ingress, plus Egress when egress rules exist);
- a connection is allowed if the source is not isolated for egress or some rule of a policy
  selecting it admits the destination, and the destination is not isolated for ingress or some
  rule of a policy selecting it admits the source;
- a rule admits a peer if ``from``/``to`` is absent or empty, or any entry matches it
  (podSelector: pods of the policy's namespace; namespaceSelector: pods of matching namespaces;
  both: both); and the port if ``ports`` is absent or empty, or any entry matches (protocol
  default TCP, numeric port or range up to ``endPort``, a named port looked up on the
  destination pod's containers, no port: every port of that protocol). ICMP has no port and
  matches only rules without ``ports``.
ipBlock peers are not covered: how they apply to pod addresses differs between implementations.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NaivePod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ports: Sequence[tuple[str, int, str]] = field(default_factory=tuple)  # (name, number, protocol)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: every matchLabels pair and every matchExpressions requirement holds."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_types(spec: Mapping[str, Any]) -> list[str]:
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, pod: NaivePod,
                  namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    has_pod, has_ns = "podSelector" in peer, "namespaceSelector" in peer
    if not has_pod and not has_ns:
        return False  # an ipBlock peer: not covered (see the module's docstring)
    if has_ns:
        if not selector_matches(peer["namespaceSelector"], namespaces.get(pod.namespace, {})):
            return False
    elif pod.namespace != policy_ns:
        return False
    return not has_pod or selector_matches(peer["podSelector"], pod.labels)


def _port_matches(entry: Mapping[str, Any], dst: NaivePod, port: int | None, protocol: str) -> bool:
    if protocol == "ICMP" or port is None:
        return False
    if entry.get("protocol", "TCP") != protocol:
        return False
    want = entry.get("port")
    if want is None:
        return True
    if isinstance(want, str):
        return any(n == want and number == port and proto == protocol for n, number, proto in dst.ports)
    return int(want) <= port <= int(entry.get("endPort") or want)


def _rule_admits(rule: Mapping[str, Any], peers_key: str, policy_ns: str, peer: NaivePod, dst: NaivePod,
                 port: int | None, protocol: str, namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    peers = rule.get(peers_key) or []
    if peers and not any(_peer_matches(p, policy_ns, peer, namespaces) for p in peers):
        return False
    ports = rule.get("ports") or []
    return not ports or any(_port_matches(e, dst, port, protocol) for e in ports)


def _direction_allows(direction: str, subject: NaivePod, peer: NaivePod, dst: NaivePod, port: int | None,
                      protocol: str, policies: Sequence[Mapping[str, Any]],
                      namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    kind, rules_key, peers_key = (("Ingress", "ingress", "from") if direction == "ingress"
                                  else ("Egress", "egress", "to"))
    isolated = False
    for pol in policies:
        ns = pol["metadata"].get("namespace", "default")
        spec = pol["spec"]
        if ns != subject.namespace or not selector_matches(spec.get("podSelector") or {}, subject.labels):
            continue
        if kind not in policy_types(spec):
            continue
        isolated = True
        if any(_rule_admits(r, peers_key, ns, peer, dst, port, protocol, namespaces) for r in spec.get(rules_key) or []):
            return True
    return not isolated


def allowed(src: NaivePod, dst: NaivePod, port: int | None, protocol: str, policies: Sequence[Mapping[str, Any]],
            namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether a new connection from ``src`` to ``dst`` on ``port``/``protocol`` is allowed."""
    return (_direction_allows("egress", src, dst, dst, port, protocol, policies, namespaces)
            and _direction_allows("ingress", dst, src, dst, port, protocol, policies, namespaces))
