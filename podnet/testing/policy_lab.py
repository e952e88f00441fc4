"""A small lab for policy enforcement: node namespaces on one underlay bridge, Calico-style pods.

No store, no agent, no CNI: the pieces a policy test or benchmark needs and nothing else, so
the nftables table and the probes can be checked on the real kernel in well under a second of
set-up. Every namespace carries the caller's unique prefix and ``close()`` removes all of them
(idempotent), so a test can always clean up and then check nothing leaked.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from podnet.dataplane.nft.diff import SyncPlan
from podnet.dataplane.nft.dispatch import dispatch_entries
from podnet.dataplane.nft.recheck import judge_flows, pods_to_recheck_after
from podnet.dataplane.nft.render import FROM_MAP, TO_MAP, render, workload_ifname
from podnet.kernel import netns, underlay
from podnet.kernel.conntrack import enforce_pod_flows
from podnet.kernel.fastpath import FastPath
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import ProbePod
from podnet.model import GlobalNetworkSet, Namespace, NetworkSet, Pod, Tier
from podnet.policy.cluster import ClusterState, PolicyObject

UNDERLAY = "10.99.0.0/24"
GATEWAY = "10.99.0.254"


@dataclass
class LabNode:
    name: str
    netns: str
    ip: str
    pod_cidr: str
    applier: NftApplier
    next_host: int = 2


@dataclass
class LabPod:
    namespace: str
    name: str
    node: str
    ip: str
    netns: str
    ifname: str
    labels: dict[str, str]
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, number, protocol)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def model(self, host_ip: str) -> Pod:
        container: dict[str, Any] = {"name": "c", "image": "agnhost"}
        if self.ports:
            container["ports"] = [{"name": n, "containerPort": p, "protocol": proto} if n else
                                  {"containerPort": p, "protocol": proto} for n, p, proto in self.ports]
        return Pod.model_validate({
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)},
            "spec": {"nodeName": self.node, "containers": [container]},
            "status": {"phase": "Running", "podIP": self.ip, "hostIP": host_ip},
        })


@dataclass
class PolicyLab:
    """``nodes`` node namespaces named ``<prefix>-n1…`` on a bridge in ``<prefix>-ul``."""

    prefix: str
    nodes: dict[str, LabNode] = field(default_factory=dict)
    pods: dict[str, LabPod] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    seq: int = 0
    fast_paths: dict[str, FastPath] = field(default_factory=dict)

    @classmethod
    def build(cls, prefix: str, nodes: int = 2) -> PolicyLab:
        lab = cls(prefix)
        try:
            ul = f"{prefix}-ul"
            netns.create(ul)
            lab.created.append(ul)
            underlay.add_bridge(ul, "br0", f"{GATEWAY}/24")
            for i in range(1, nodes + 1):
                lab.add_node(f"n{i}", i)
            names = [n.netns for n in lab.nodes.values()]
            for node in lab.nodes.values():
                for other in lab.nodes.values():
                    if other is not node:
                        underlay.add_route(node.netns, other.pod_cidr, gateway=other.ip)
            underlay.wait_carrier([ul, *names])
        except BaseException:
            lab.close()
            raise
        return lab

    def add_node(self, name: str, index: int) -> LabNode:
        ns = f"{self.prefix}-{name}"
        netns.create(ns)
        self.created.append(ns)
        ip = str(ipaddress.ip_network(UNDERLAY).network_address + index)
        underlay.wire(ns, "eth0", f"{self.prefix}-ul", f"{name}-ul", a_addr=f"{ip}/24", b_master="br0")
        underlay.sysctl(ns, "net.ipv4.ip_forward", 1)
        underlay.add_route(ns, "0.0.0.0/0", gateway=GATEWAY)
        node = LabNode(name, ns, ip, f"10.244.{index}.0/24", NftApplier(ns))
        self.nodes[name] = node
        return node

    def add_pod(self, namespace: str, name: str, node: str, labels: Mapping[str, str] | None = None,
                ports: Sequence[tuple[str, int, str]] = ()) -> LabPod:
        n = self.nodes[node]
        ip = str(ipaddress.ip_network(n.pod_cidr).network_address + n.next_host)
        n.next_host += 1
        self.seq += 1
        pod_ns = f"{self.prefix}-{node}-{self.seq}"
        ifname = workload_ifname(namespace, name)
        self.created.append(pod_ns)
        underlay.wire_pod(n.netns, pod_ns, ifname, ip)
        if node in self.fast_paths:
            self.fast_paths[node].attach(ifname)
        pod = LabPod(namespace, name, node, ip, pod_ns, ifname, dict(labels or {}), tuple(ports))
        self.pods[pod.key] = pod
        self.namespace_labels.setdefault(namespace, {})
        return pod

    def enable_fast_path(self) -> None:
        """Attach the eBPF fast path to every node's underlay device and pod veths, as the
        agent does with ``--fast-path`` (pods added later get it too)."""
        for node in self.nodes.values():
            if node.name in self.fast_paths:
                continue
            fp = FastPath(node.netns)
            self.fast_paths[node.name] = fp
            fp.enable_liberal_tracking()
            fp.attach("eth0")
        for pod in self.pods.values():
            self.fast_paths[pod.node].attach(pod.ifname)

    def remove_pod(self, key: str) -> None:
        pod = self.pods.pop(key)
        if pod.node in self.fast_paths:
            self.fast_paths[pod.node].detach(pod.ifname)
        netns.remove(pod.netns)

    def namespaces(self) -> list[Namespace]:
        return [Namespace.model_validate({"metadata": {"name": ns, "labels": labels}})
                for ns, labels in sorted(self.namespace_labels.items())]

    def pod_models(self) -> list[Pod]:
        return [p.model(self.nodes[p.node].ip) for p in self.pods.values()]

    def state(self, policies: Iterable[PolicyObject] = (), *, ipblock_matches_pods: bool = True,
              tiers: Iterable[Tier] = (), network_sets: Iterable[NetworkSet | GlobalNetworkSet] = ()) -> ClusterState:
        """The engine's view of the lab with these policies (of any kind), tiers and network sets."""
        return ClusterState.build(self.namespaces(), self.pod_models(), list(policies),
                                  ipblock_matches_pods=ipblock_matches_pods, tiers=tiers, network_sets=network_sets)

    def apply(self, state: ClusterState, *, read_back: bool = False, hold_flows: bool = True) -> dict[str, SyncPlan]:
        """Render and sync every node's table, then (``hold_flows``) hold the tracked flows of
        the pods whose rules changed to ``state`` as the policy loop does, so an earlier probe's
        flow that a later one happens to reuse counts as what the new rules say; the plans that
        were committed."""
        plans = {}
        for name, node in self.nodes.items():
            table = render(state, name, node_ips=[node.ip])
            plan = plans[name] = node.applier.sync(table, read_back=read_back)
            if not hold_flows:
                continue
            addresses = pods_to_recheck_after(plan.commands, table.chains, dispatch_entries(table, FROM_MAP),
                                         dispatch_entries(table, TO_MAP))
            enforce_pod_flows(node.netns, addresses,
                              partial(judge_flows, state=state, pods=addresses, node_ips=[node.ip]))
        return plans

    def flush_conntrack(self) -> None:
        """Forget every tracked flow on the lab's nodes (a clean start for a benchmark)."""
        for node in self.nodes.values():
            netns.run_in(node.netns, ["conntrack", "-F"], check=False)

    def probe_pods(self) -> list[ProbePod]:
        return [ProbePod(p.key, p.netns, p.ip) for p in self.pods.values()]

    def close(self) -> None:
        """Remove every namespace the lab made (pods first); safe to call twice."""
        for fp in self.fast_paths.values():
            try:
                fp.close()
            except Exception:  # the namespaces go next anyway
                pass
        self.fast_paths.clear()
        for ns in reversed(self.created):
            try:
                netns.remove(ns)
            except Exception:  # keep removing the rest
                pass
        self.created.clear()
        self.pods.clear()
        self.nodes.clear()

    def leftovers(self) -> list[str]:
        """Namespaces with this lab's prefix still mounted (for leak checks)."""
        return [n for n in netns.list_all() if n.startswith(self.prefix + "-")]
