"""Real attempts through Services, against what the engine expects of them.

``probe_services``: from every running pod to a Service's ClusterIP and port, one attempt
each (in parallel); the engine's expectation beside each (``policy.services.explain_service``:
every usable backend admits the source → reached; none does → blocked; no endpoint at all →
refused at once by the proxy; only some do → it depends on the endpoint the proxy picks, so
the attempt is shown but not judged). ``service_trace``: one attempt through a Service and the
rules whose counters it moved: the proxy's DNAT on the source's node (which endpoint it
picked) and the policy rules on the nodes of both ends.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from podnet.dataplane.nft.model import POLICY_TABLE
from podnet.dataplane.nft.services import SERVICE_TABLE
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import CONNECTED, REFUSED, TIMEOUT, probe
from podnet.policy.cluster import ClusterState, Endpoint
from podnet.policy.services import ServiceVerdict, explain_service

from .lifecycle import node_netns
from .trace import RuleHit

REACHED, BLOCKED, REJECTED, DEPENDS = "reached", "blocked", "refused", "depends on the endpoint"


@dataclass(frozen=True)
class ServiceAttempt:
    """One attempt from a pod through a Service, and what the engine expected of it."""

    src: str
    service: str  # ns/name
    address: str  # ClusterIP:port/PROTOCOL
    outcome: str
    detail: str
    expected: str  # REACHED, BLOCKED, REJECTED or DEPENDS

    @property
    def agrees(self) -> bool | None:
        """None when the engine cannot say (only some backends admit the source)."""
        if self.expected == DEPENDS:
            return None
        if self.expected == REACHED:
            return self.outcome in (CONNECTED, REFUSED)
        if self.expected == REJECTED:
            return self.outcome == REFUSED
        return self.outcome == TIMEOUT

    def to_dict(self) -> dict[str, object]:
        return {"from": self.src, "service": self.service, "address": self.address, "outcome": self.outcome,
                "detail": self.detail, "expected": self.expected, "agrees": self.agrees}


def expectation(verdict: ServiceVerdict) -> str:
    """What an attempt through the Service should do, by the engine's verdicts per backend."""
    ready = [b for b in verdict.backends if b.backend.ready]
    usable = [b for b in (ready or [b for b in verdict.backends if b.backend.serving and b.backend.terminating])
              if b.port is not None]
    if not usable:
        return REJECTED
    allowed = sum(b.allowed for b in usable)
    return REACHED if allowed == len(usable) else BLOCKED if not allowed else DEPENDS


def probe_services(state: ClusterState, pod_netns: Mapping[str, str], sources: Sequence[Endpoint],
                   services: Sequence[tuple[str, str | None, str | None]], timeout: float = 1.0,
                   workers: int = 32) -> list[ServiceAttempt]:
    """Every source pod through every (service ``ns/name``, port, protocol)."""
    jobs = []
    for ref, port_text, proto in services:
        for src in sources:
            verdict = explain_service(state, src, ref, port_text, proto)
            spec = verdict.view.service.spec
            if not spec.cluster_ip or spec.cluster_ip == "None":
                raise ValueError(f"service {ref} has no ClusterIP (headless or ExternalName): probe its pods instead")
            jobs.append((src.key, ref, spec.cluster_ip, verdict.port.port, verdict.port.protocol, expectation(verdict)))

    def attempt(job: tuple[str, str, str, int, str, str]) -> ServiceAttempt:
        src, ref, ip, port, protocol, expected = job
        outcome, detail = probe(pod_netns[src], ip, port, protocol, timeout)
        return ServiceAttempt(src, ref, f"{ip}:{port}/{protocol}", outcome, detail, expected)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        return list(pool.map(attempt, jobs))


@dataclass(frozen=True)
class ServiceTrace:
    verdict: ServiceVerdict
    outcome: str
    detail: str
    nodes: tuple[str, ...]
    hits: tuple[RuleHit, ...]


def _counts(appliers: Mapping[tuple[str, str], NftApplier]) -> dict[tuple[str, str, str, str], int]:
    out = {}
    for (node, table), a in appliers.items():
        for c in a.counters():
            out[(node, table, c.chain, c.comment)] = c.packets
    return out


def service_trace(state_dir: str, state: ClusterState, pod_netns: Mapping[str, str], src: Endpoint, ref: str,
                  port_text: str | None, protocol: str | None, timeout: float = 1.0) -> ServiceTrace:
    """One attempt from ``src`` (a running pod) through the Service ``ref``."""
    verdict = explain_service(state, src, ref, port_text, protocol)
    ip = verdict.view.service.spec.cluster_ip
    if not src.is_pod or src.key not in pod_netns or not src.node or not ip or ip == "None":
        raise ValueError("a trace through a Service needs a running source pod and a Service with a ClusterIP")
    nodes = tuple(sorted({src.node, *(b.endpoint.node for b in verdict.backends if b.endpoint.node)}))
    appliers = {(n, t): NftApplier(node_netns(state_dir, n), table=table) for n in nodes
                for t, table in (("svc", SERVICE_TABLE), ("policy", POLICY_TABLE)) if t == "policy" or n == src.node}
    before = _counts(appliers)
    outcome, detail = probe(pod_netns[src.key], ip, verdict.port.port, verdict.port.protocol, timeout)
    hits = [RuleHit(node, chain, comment, packets - before.get((node, table, chain, comment), 0))
            for (node, table, chain, comment), packets in _counts(appliers).items()
            if packets > before.get((node, table, chain, comment), 0)]
    return ServiceTrace(verdict, outcome, detail, nodes, tuple(hits))
