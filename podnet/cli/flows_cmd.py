"""``podnet flows``: the connections the nodes' policy rules decided (Hubble's ``observe``).

Reads every node's flow ring in the state directory (``telemetry.flows``), names the pods
behind the addresses from the store, and for a drop adds the one-line hint ``explain`` gives
for that pair and port.
"""
from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import click

from podnet.errors import PodnetError
from podnet.telemetry.flows import FILE, FlowRecord, follow_rings, read_ring

from .common import state_dir, user_errors
from .process_cmds import metrics_options

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_since(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms`` (a bare number: seconds) → seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration: use e.g. 30s, 5m, 1h", param_hint="--since")
    return float(m.group(1)) * _UNITS[m.group(2)]


def ring_paths(sd: str, node: str | None) -> list[str]:
    """The ring of every node directory (or of ``node``), whether written yet or not. On an
    etcd cluster each node keeps its own state directory (``cluster.datastore``), as a host would."""
    from podnet.cluster.builder import read_state
    from podnet.cluster.datastore import is_etcd

    state = read_state(sd)
    if is_etcd(state):
        assert state is not None
        hosts = state["store"]["hosts"]
        names = [node] if node else sorted(os.listdir(hosts)) if os.path.isdir(hosts) else []
        dirs = [os.path.join(hosts, n, "nodes", n) for n in names]
    else:
        dirs = [os.path.join(sd, "nodes", node)] if node else sorted(glob.glob(os.path.join(sd, "nodes", "*")))
    return [os.path.join(d, FILE) for d in dirs if os.path.isdir(d)]


class PodNames:
    """Addresses → pods, and the ``explain`` hint of a drop, from one snapshot of the store."""

    def __init__(self, sd: str) -> None:
        self.state: Any = None
        self.by_ip: dict[str, Any] = {}
        self._hints: dict[tuple[str, str, int, str], str] = {}
        try:
            from podnet.policy.sources import cluster_from_snapshot
            from podnet.store.open import open_store

            store = open_store(sd, bootstrap=False, create=False)
            try:
                self.state = cluster_from_snapshot(store.snapshot(), True)
            finally:
                store.close()
        except (PodnetError, OSError):  # no store: addresses only
            return
        self.by_ip = {ep.ip: ep for ep in self.state.pods if ep.ip}

    def name(self, ip: str) -> str:
        ep = self.by_ip.get(ip)
        return f"{ep.namespace}/{ep.name}" if ep is not None else ""

    def hint(self, rec: FlowRecord) -> str:
        key = (rec.src, rec.dst, rec.dport, rec.protocol)
        if key not in self._hints:
            self._hints[key] = self._explain(rec)
        return self._hints[key]

    def _explain(self, rec: FlowRecord) -> str:
        src, dst = self.by_ip.get(rec.src), self.by_ip.get(rec.dst)
        if self.state is None or src is None or dst is None or rec.protocol not in ("TCP", "UDP", "SCTP"):
            return ""
        from podnet.policy.evaluate import evaluate

        try:
            v = evaluate(self.state, src, dst, rec.dport, rec.protocol)
        except Exception:  # a pod changed since: no hint rather than a wrong one
            return ""
        if v.fixes:
            return v.fixes[0]
        misses = v.nearest_misses
        return misses[0].describe() if misses else v.summary


def policy_matches(ref: str, wanted: str) -> bool:
    """``wanted`` names the policy ``ref``: the ref itself (``ns/name``, ``gnp:name``,
    ``calico:ns/name``, ``anp:name``), the ref without its kind, or the bare name."""
    plain = ref.split(":", 1)[1] if ":" in ref.split("/", 1)[0] else ref
    return wanted in (ref, plain, plain.rsplit("/", 1)[-1])


def _matches(rec: FlowRecord, names: PodNames, *, verdict: str | None, from_pod: str | None, to_pod: str | None,
             namespace: str | None, port: int | None, since: float | None, tier: str | None = None,
             policy: str | None = None) -> bool:
    if verdict and rec.verdict != verdict:
        return False
    if tier and rec.tier != tier:
        return False
    if policy and not any(policy_matches(ref, policy) for ref in rec.policies):
        return False
    if port is not None and rec.dport != port:
        return False
    if since is not None and rec.last < since:
        return False
    src, dst = names.name(rec.src), names.name(rec.dst)
    if from_pod and from_pod not in (src, rec.src):
        return False
    if to_pod and to_pod not in (dst, rec.dst):
        return False
    if namespace and not (src.startswith(namespace + "/") or dst.startswith(namespace + "/")):
        return False
    return True


def _pod_ref(ref: str | None, namespace: str | None) -> str | None:
    if ref is None or "/" in ref or re.match(r"^[\d.:a-fA-F]+$", ref) and any(c in ref for c in ".:"):
        return ref
    return f"{namespace or 'default'}/{ref}"


def flow_dict(rec: FlowRecord, names: PodNames) -> dict[str, Any]:
    d = rec.to_dict()
    d["source"] = {"ip": rec.src, "pod": names.name(rec.src) or None}
    d["destination"] = {"ip": rec.dst, "pod": names.name(rec.dst) or None}
    d["hint"] = names.hint(rec) if rec.verdict == "DROPPED" else None
    return d


def flow_line(rec: FlowRecord, names: PodNames) -> str:
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(rec.time)) + f".{int(rec.time * 1000) % 1000:03d}"
    src, dst = names.name(rec.src), names.name(rec.dst)
    port = f"{rec.dport}/{rec.protocol}" if rec.dport else rec.protocol
    line = (f"{stamp} {rec.node}: {src or '-'} ({rec.src}) -> {dst or '-'} ({rec.dst}) {port} {rec.verdict} "
            f"by {rec.rule} [{rec.tier}] packets={rec.packets} bytes={rec.bytes}")
    if rec.verdict == "DROPPED":
        hint = names.hint(rec)
        if hint:
            line += f"  hint: {hint}"
    return line


def _emit(records: Iterable[FlowRecord], names: PodNames, output: str) -> None:
    for rec in records:
        click.echo(json.dumps(flow_dict(rec, names)) if output == "json" else flow_line(rec, names))


@click.command("flows")
@click.option("--verdict", type=click.Choice(["DROPPED", "ALLOWED"], case_sensitive=False), default=None,
              help="Only flows with this verdict.")
@click.option("--from-pod", default=None, help="Only flows from this pod (NAMESPACE/NAME, NAME with -n, or an IP).")
@click.option("--to-pod", default=None, help="Only flows to this pod (NAMESPACE/NAME, NAME with -n, or an IP).")
@click.option("-n", "--namespace", default=None, help="Only flows from or to pods of this namespace.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Only flows to this destination port.")
@click.option("--since", default=None, help="Only flows seen in the last DURATION (30s, 5m, 1h).")
@click.option("--node", default=None, help="Only flows this node recorded.")
@click.option("--tier", default=None, help="Only flows decided in this tier: default (Kubernetes NetworkPolicies), "
                                            "kube-admin, kube-baseline or a Calico tier.")
@click.option("--policy", default=None,
              help="Only flows decided by this policy: NAMESPACE/NAME, gnp:NAME, anp:NAME, calico:NAMESPACE/NAME "
                   "as shown, or just its NAME.")
@click.option("--last", default=20, show_default=True, type=click.IntRange(0),
              help="How many past flows to show (0: all the rings hold).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing flows as they are recorded.")
@click.option("--follow-for", type=float, default=None, hidden=True, help="Stop following after this many seconds.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def command(ctx: click.Context, verdict: str | None, from_pod: str | None, to_pod: str | None,
            namespace: str | None, port: int | None, since: str | None, node: str | None, tier: str | None,
            policy: str | None, last: int, follow: bool, follow_for: float | None, output: str) -> None:
    """Connections the nodes' policy rules allowed or dropped, with the deciding policy and rule."""
    sd = state_dir(ctx)
    since_t = None if since is None else time.time() - parse_since(since)
    paths = ring_paths(sd, node)
    if not any(os.path.exists(p) for p in paths) and not follow:
        raise PodnetError(f"no flow logs for the nodes of {sd}: is the cluster up with its flow loggers?",
                          hint="podnet up starts a flow logger on every node; `podnet status` shows them")
    names = PodNames(sd)
    filters = dict(verdict=verdict.upper() if verdict else None, from_pod=_pod_ref(from_pod, namespace),
                   to_pod=_pod_ref(to_pod, namespace), namespace=namespace if not (from_pod or to_pod) else None,
                   port=port, since=since_t, tier=tier, policy=policy)
    past = sorted((r for p in paths for r in read_ring(p)), key=lambda r: r.time)
    shown = [r for r in past if _matches(r, names, **filters)]  # type: ignore[arg-type]
    _emit(shown[-last:] if last else shown, names, output)
    if follow:
        live: Iterator[FlowRecord] = follow_rings(paths, follow_for)
        read_at = time.monotonic()
        for rec in live:
            if (rec.src not in names.by_ip or rec.dst not in names.by_ip) and time.monotonic() - read_at > 1.0:
                names, read_at = PodNames(sd), time.monotonic()  # a pod created since: read the store again
            if _matches(rec, names, **filters):  # type: ignore[arg-type]
                _emit([rec], names, output)


@click.command("flow-logger")
@click.option("--node", required=True, help="This node's name (the process runs inside its network namespace).")
@click.option("--netns", default=None, help="Read the logs of this namespace instead of the current one.")
@click.option("--host-network", is_flag=True, help="This machine is the node (distributed mode, not the lab).")
@metrics_options("flow-logger")
@click.pass_context
@user_errors
def flow_logger(ctx: click.Context, node: str, netns: str | None, host_network: bool, metrics_port: int,
                metrics_host: str) -> None:
    """Run the node's flow logger: its policy decisions (NFLOG) into the node's flow ring."""
    from podnet.agent.flow_logger import FlowLoggerConfig, run_flow_logger

    from .process_cmds import _serve

    _serve(run_flow_logger, FlowLoggerConfig(node, os.path.abspath(state_dir(ctx)), netns, host_network,
                                             metrics_port=metrics_port, metrics_host=metrics_host))
