"""What a ``podnet up`` cluster holds that it should not, after faults: addresses given twice,
IPAM handles of pods that no longer exist, pods without their handle, pod veths without a pod,
pod namespaces without a pod, pod namespace names left as empty files, and pod records of pods that are gone. Read from the store, the
nodes' namespaces and the agents' records, so the same audit works for either store.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from podnet.agent.pods import pod_netns_name
from podnet.cluster import lifecycle
from podnet.cluster.datastore import node_state_dir
from podnet.ipam.allocator import IPAM
from podnet.kernel import netns
from podnet.model import Pod
from podnet.store.open import open_store
from podnet.workloads.records import load_pods


@dataclass
class Audit:
    pods: int = 0
    duplicate_ips: list[str] = field(default_factory=list)
    leaked_handles: list[str] = field(default_factory=list)  # a pod's address whose pod is gone
    pods_without_handle: list[str] = field(default_factory=list)
    leaked_links: dict[str, int] = field(default_factory=dict)  # node → cali veths beyond its pods
    missing_netns: list[str] = field(default_factory=list)
    #: pod namespace names left as empty files under /run/netns (a start killed mid-create)
    stale_netns: list[str] = field(default_factory=list)
    leaked_records: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicate_ips or self.leaked_handles or self.pods_without_handle or self.leaked_links
                    or self.missing_netns or self.stale_netns or self.leaked_records)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cali_links(ns: str) -> int:
    out = netns.run_in(ns, ["ip", "-o", "link", "show"]).stdout
    return sum(1 for line in out.splitlines() if line.split(":")[1].strip().startswith("cali"))


def audit(state_dir: str) -> Audit:
    """The audit of the cluster recorded in ``state_dir`` (its pods Running or not)."""
    store = open_store(state_dir, bootstrap=False)
    try:
        pods = [p for p in store.list(Pod) if isinstance(p, Pod)]
        handles = IPAM(store.kv).handles()
    finally:
        store.close()
    status = lifecycle.status(state_dir)
    result = Audit(pods=len(pods))
    addresses = Counter(ip for h in handles.values() for ip in h.get("ips", []))
    result.duplicate_ips = sorted(ip for ip, n in addresses.items() if n > 1)
    uids = {p.metadata.uid for p in pods}
    with_ip = [p for p in pods if p.status.pod_ip]
    by_uid = {h.get("podUID"): h for h in handles.values() if h.get("podUID")}
    result.leaked_handles = sorted(h for h, attrs in handles.items() if attrs.get("podUID") and attrs["podUID"] not in uids)
    result.pods_without_handle = sorted(f"{p.namespace}/{p.name}" for p in with_ip if p.metadata.uid not in by_uid)
    for row in status["nodes"]:
        node = row["name"]
        mine = [p for p in with_ip if p.spec.node_name == node]
        extra = _cali_links(row["netns"]) - len(mine)
        if extra > 0:
            result.leaked_links[node] = extra
        for p in mine:
            name = pod_netns_name(node, p.namespace or "default", p.name, p.metadata.uid or "")
            if not netns.exists(name):
                result.missing_netns.append(name)
        for rec in load_pods(node_state_dir(state_dir, node), node):
            if rec.uid not in uids:
                result.leaked_records.append(f"{node}:{rec.namespace}/{rec.name}")
    result.stale_netns = netns.stale_files([f"{row['name']}-" for row in status["nodes"]])
    return result


def pod_ips(state_dir: str) -> dict[str, str]:
    """ns/name → pod IP of every pod that has one."""
    store = open_store(state_dir, bootstrap=False)
    try:
        return {f"{p.namespace}/{p.name}": p.status.pod_ip for p in store.list(Pod)
                if isinstance(p, Pod) and p.status.pod_ip}
    finally:
        store.close()


__all__ = ["Audit", "audit", "pod_ips"]
