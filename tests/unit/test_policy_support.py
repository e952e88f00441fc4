"""Random clusters and policies for the policy engine's property tests and benchmark."""
from __future__ import annotations

import random
from typing import Any

from podnet.model import Namespace, NetworkPolicy, Pod

LABEL_KEYS = ["app", "tier", "role", "env"]
LABEL_VALUES = ["a", "b", "c"]
PORTS = [80, 81, 443, 8080]
NAMES = ["http", "metrics", "dns"]


def _labels(rng: random.Random, keys: list[str], max_n: int = 2) -> dict[str, str]:
    return {k: rng.choice(LABEL_VALUES) for k in rng.sample(keys, rng.randint(0, max_n))}


def _selector(rng: random.Random, keys: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.3:
        return {}
    if roll < 0.8:
        return {"matchLabels": _labels(rng, keys, 1) or {keys[0]: "a"}}
    op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    expr: dict[str, Any] = {"key": rng.choice(keys), "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = rng.sample(LABEL_VALUES, rng.randint(1, 2))
    return {"matchExpressions": [expr]}


def _peer(rng: random.Random, pod_ips: list[str]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.15:
        base = rng.choice(pod_ips) if pod_ips else "10.0.0.1"
        octets = base.split(".")
        if rng.random() < 0.5:
            return {"ipBlock": {"cidr": f"{base}/32"}}
        cidr = f"{octets[0]}.{octets[1]}.{octets[2]}.0/24"
        return {"ipBlock": {"cidr": cidr, "except": [f"{base}/32"]}}
    peer: dict[str, Any] = {}
    if roll < 0.55:
        peer["podSelector"] = _selector(rng, LABEL_KEYS)
    elif roll < 0.75:
        peer["namespaceSelector"] = _selector(rng, ["team", "kubernetes.io/metadata.name"])
    else:
        peer["podSelector"] = _selector(rng, LABEL_KEYS)
        peer["namespaceSelector"] = _selector(rng, ["team"])
    return peer


def _ports(rng: random.Random) -> list[dict[str, Any]] | None:
    roll = rng.random()
    if roll < 0.35:
        return None
    if roll < 0.4:
        return []
    out = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.random()
        proto = rng.choice(["TCP", "TCP", "UDP", "SCTP"])
        if kind < 0.5:
            out.append({"protocol": proto, "port": rng.choice(PORTS)})
        elif kind < 0.7:
            start = rng.choice(PORTS)
            out.append({"protocol": proto, "port": start, "endPort": start + rng.randint(0, 400)})
        elif kind < 0.9:
            out.append({"protocol": proto, "port": rng.choice(NAMES)})
        else:
            out.append({"protocol": proto})
    return out


def _rules(rng: random.Random, key: str, pod_ips: list[str]) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 2)):
        rule: dict[str, Any] = {}
        peers = rng.random()
        if peers < 0.75:
            rule[key] = [_peer(rng, pod_ips) for _ in range(rng.randint(1, 2))]
        elif peers < 0.8:
            rule[key] = []
        ports = _ports(rng)
        if ports is not None:
            rule["ports"] = ports
        rules.append(rule)
    return rules


def random_cluster(seed: int, n_ns: int = 3, n_pods: int = 8, n_pol: int = 4):
    """(namespaces, pods, policies) as model values; deterministic per seed."""
    rng = random.Random(seed)
    namespaces = [
        Namespace.model_validate({"metadata": {"name": f"ns{i}", "labels": _labels(rng, ["team"], 1)}})
        for i in range(n_ns)
    ]
    pods = []
    nodes = ["n1", "n2"]
    for i in range(n_pods):
        ns = rng.choice(namespaces).metadata.name
        host = rng.random() < 0.1
        node = rng.choice(nodes)
        node_ip = f"192.168.0.{nodes.index(node) + 1}"
        ports = []
        for name in rng.sample(NAMES, rng.randint(0, 2)):
            ports.append({"name": name, "containerPort": rng.choice(PORTS), "protocol": rng.choice(["TCP", "UDP"])})
        manifest: dict[str, Any] = {
            "metadata": {"name": f"p{i}", "namespace": ns, "labels": _labels(rng, LABEL_KEYS)},
            "spec": {"containers": [{"name": "c", "ports": ports}], "hostNetwork": host, "nodeName": node},
            "status": {"podIP": node_ip if host else f"10.{rng.randint(0, 1)}.{rng.randint(0, 1)}.{i + 2}",
                       "hostIP": node_ip},
        }
        pods.append(Pod.model_validate(manifest))
    pod_ips = [p.status.pod_ip for p in pods if p.status.pod_ip]
    policies = []
    for i in range(n_pol):
        spec: dict[str, Any] = {"podSelector": _selector(rng, LABEL_KEYS)}
        roll = rng.random()
        if roll < 0.7:
            spec["ingress"] = _rules(rng, "from", pod_ips)
        if rng.random() < 0.5:
            spec["egress"] = _rules(rng, "to", pod_ips)
        if rng.random() < 0.5:
            spec["policyTypes"] = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        policies.append(NetworkPolicy.model_validate(
            {"metadata": {"name": f"pol{i}", "namespace": rng.choice(namespaces).metadata.name}, "spec": spec}))
    return namespaces, pods, policies


# --- small builders for table-driven tests --------------------------------------------------


def ns(ns_name: str, **labels: str) -> Namespace:
    return Namespace.model_validate({"metadata": {"name": ns_name, "labels": labels}})


def pod(namespace: str, name: str, labels: dict[str, str] | None = None, ip: str | None = None, *,
        ports: list[dict[str, Any]] | None = None, host_network: bool = False, node: str = "node1",
        host_ip: str = "192.168.0.1") -> Pod:
    return Pod.model_validate({
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "ports": ports or []}], "hostNetwork": host_network, "nodeName": node},
        "status": {"podIP": host_ip if host_network else ip, "hostIP": host_ip},
    })


def netpol(namespace: str, name: str, spec: dict[str, Any]) -> NetworkPolicy:
    return NetworkPolicy.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})
