"""Random clusters of NetworkPolicies for differential tests (hypothesis strategies), and the
comparison of podnet's engine with the naive evaluator (``naive_netpol``) on every cell.

The pods are the e2e suite's shape — pods a, b, c in namespaces x, y, z (six of them) with
named ports — and the policies are drawn from everything the spec allows except ipBlock:
pod, namespace and combined selectors with matchLabels and every matchExpressions operator,
numeric, ranged, named and absent ports of TCP and UDP, empty and absent peers and rules,
every policyTypes combination.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ClusterState
from podnet.policy.matrix import compute_matrix

from .naive_netpol import NaivePod, allowed

NAMESPACES = ("x", "y", "z")
APPS = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "ICMP")
#: (namespace, app, node, named ports)
POD_SHAPES = (("x", "a", "n1"), ("x", "b", "n2"), ("y", "a", "n1"), ("y", "c", "n2"), ("z", "b", "n1"),
              ("z", "c", "n2"))
NAMED_PORTS = {"a": (("serve-80", 80, "TCP"), ("serve-81", 81, "UDP")), "b": (("serve-80", 80, "TCP"),),
               "c": (("serve-80", 81, "TCP"),)}

labels = st.fixed_dictionaries({"pod": st.sampled_from(APPS)})
expression = st.one_of(
    st.fixed_dictionaries({"key": st.sampled_from(["pod", "ns", "tier"]), "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(st.sampled_from(APPS + NAMESPACES), min_size=1, max_size=2,
                                              unique=True)}),
    st.fixed_dictionaries({"key": st.sampled_from(["pod", "ns", "tier"]),
                           "operator": st.sampled_from(["Exists", "DoesNotExist"])}))
selector = st.one_of(st.just({}), st.fixed_dictionaries({"matchLabels": labels}),
                     st.fixed_dictionaries({"matchExpressions": st.lists(expression, min_size=1, max_size=2)}))
ns_selector = st.one_of(st.just({}), st.fixed_dictionaries({"matchLabels": st.fixed_dictionaries(
    {"ns": st.sampled_from(NAMESPACES)})}), st.fixed_dictionaries({"matchExpressions": st.lists(expression, min_size=1,
                                                                                               max_size=2)}))
peer = st.one_of(st.fixed_dictionaries({"podSelector": selector}), st.fixed_dictionaries({"namespaceSelector": ns_selector}),
                 st.fixed_dictionaries({"podSelector": selector, "namespaceSelector": ns_selector}))
port_entry = st.one_of(
    st.fixed_dictionaries({"protocol": st.sampled_from(["TCP", "UDP"]), "port": st.sampled_from(PORTS)}),
    st.fixed_dictionaries({"protocol": st.sampled_from(["TCP", "UDP"]), "port": st.just(80), "endPort": st.just(81)}),
    st.fixed_dictionaries({"protocol": st.sampled_from(["TCP", "UDP"]), "port": st.sampled_from(["serve-80", "serve-81"])}),
    st.fixed_dictionaries({"protocol": st.sampled_from(["TCP", "UDP"])}),
    st.fixed_dictionaries({"port": st.sampled_from(PORTS)}))


def rule(peers_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={peers_key: st.lists(peer, max_size=2),
                                               "ports": st.lists(port_entry, max_size=2)})


@st.composite
def policy(draw: st.DrawFn, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": draw(selector)}
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    if draw(st.booleans()):
        spec["ingress"] = draw(st.lists(rule("from"), max_size=2))
    if draw(st.booleans()):
        spec["egress"] = draw(st.lists(rule("to"), max_size=2))
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p{index}", "namespace": draw(st.sampled_from(NAMESPACES))}, "spec": spec}


@st.composite
def cluster(draw: st.DrawFn) -> tuple[dict[str, dict[str, str]], list[dict[str, str]], list[dict[str, Any]]]:
    """(namespace labels, pod labels in POD_SHAPES order, policies)."""
    ns_labels = {ns: draw(st.fixed_dictionaries({"ns": st.sampled_from(NAMESPACES)})) for ns in NAMESPACES}
    pod_labels = [draw(st.one_of(st.just({"pod": app}), labels)) for _, app, _ in POD_SHAPES]
    count = draw(st.integers(min_value=0, max_value=3))
    return ns_labels, pod_labels, [draw(policy(i)) for i in range(count)]


def naive_pods(pod_labels: Sequence[dict[str, str]]) -> list[NaivePod]:
    return [NaivePod(ns, f"{app}", lbl, NAMED_PORTS[app]) for (ns, app, _), lbl in zip(POD_SHAPES, pod_labels)]


def models(ns_labels: dict[str, dict[str, str]], pod_labels: Sequence[dict[str, str]],
           ips: Sequence[str]) -> tuple[list[Namespace], list[Pod]]:
    nss = [Namespace.model_validate({"metadata": {"name": n, "labels": lbl}}) for n, lbl in ns_labels.items()]
    pods = []
    for (ns, app, node), lbl, ip in zip(POD_SHAPES, pod_labels, ips):
        ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in NAMED_PORTS[app]]
        pods.append(Pod.model_validate({
            "metadata": {"name": app, "namespace": ns, "labels": lbl},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "hostIP": "10.99.0.1" if node == "n1" else "10.99.0.2"}}))
    return nss, pods


def naive_table(ns_labels: dict[str, dict[str, str]], pod_labels: Sequence[dict[str, str]],
                policies: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], bool]:
    """(src "ns/pod", dst "ns/pod", key) → allowed, by the naive evaluator."""
    pods = naive_pods(pod_labels)
    out = {}
    for src in pods:
        for dst in pods:
            if src is dst:
                continue
            for proto in PROTOCOLS:
                for port in ([None] if proto == "ICMP" else PORTS):
                    key = "ICMP" if proto == "ICMP" else f"{port}/{proto}"
                    out[(f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}", key)] = allowed(
                        src, dst, port, proto, policies, ns_labels)
    return out


def engine_table(state: ClusterState) -> dict[tuple[str, str, str], bool]:
    matrix = compute_matrix(state, list(PORTS), list(PROTOCOLS))
    out = {}
    for key in matrix.keys:
        for i, src in enumerate(matrix.pods):
            for j, dst in enumerate(matrix.pods):
                if i != j:
                    out[(src, dst, key)] = matrix.allowed(key, i, j)
    return out


def engine_state(ns_labels: dict[str, dict[str, str]], pod_labels: Sequence[dict[str, str]],
                 policies: Sequence[dict[str, Any]], ips: Sequence[str]) -> ClusterState:
    nss, pods = models(ns_labels, pod_labels, ips)
    return ClusterState.build(nss, pods, [NetworkPolicy.model_validate(p) for p in policies])


def mismatches(a: dict[tuple[str, str, str], bool], b: dict[tuple[str, str, str], bool]) -> list[str]:
    return [f"{s} -> {d} {k}: {a.get((s, d, k))} vs {b.get((s, d, k))}" for (s, d, k) in sorted(set(a) | set(b))
            if a.get((s, d, k)) != b.get((s, d, k))]
