"""What a node's pod runner started, as it records it on disk: one
``<state-dir>/nodes/<node>/pods/<namespace>_<pod>/pod.json`` per pod with its sandbox namespace
and each container's PID and kernel start time.

The records are how a restarted runner adopts (or undoes) what its predecessor started, and
how ``podnet down`` stops what a runner that died left running. A PID counts as the recorded
process only while its start time still matches (PIDs get reused).
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

RECORD = "pod.json"


def sandbox_owner(sandbox: str) -> str:
    """The owner recorded with the pod's namespace: only this pod incarnation may remove it."""
    return f"pod:{sandbox}"


def pods_dir(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, "nodes", node, "pods")


def pod_dir(state_dir: str, node: str, namespace: str, name: str) -> str:
    return os.path.join(pods_dir(state_dir, node), f"{namespace}_{name}")


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None if gone/zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass
class ContainerState:
    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    pid: int = 0
    start_ticks: int = 0
    started_at: str = ""
    restarts: int = 0
    last_exit: int | None = None
    exited_at: float = 0.0  # monotonic-free wall clock seconds, for back-off
    finished: bool = False  # exited and not to be restarted
    finished_at: str = ""  # when the last run ended (RFC 3339)
    last_terminated: dict[str, Any] | None = None  # the previous run, as status.lastState.terminated
    backoff: float = 0.0  # the kubelet's restart back-off: current delay and when it last grew
    backoff_at: float = 0.0
    waiting_reason: str = ""  # why it is not running (CreateContainerConfigError …)
    waiting_message: str = ""


@dataclass
class LocalPod:
    namespace: str
    name: str
    uid: str
    netns: str = ""
    sandbox: str = ""
    cni_result: dict[str, Any] | None = None
    containers: list[ContainerState] = field(default_factory=list)
    phase: str = "Pending"
    message: str = ""
    reason: str = ""
    start_time: str = ""
    restart_policy: str = "Always"
    conditions: list[dict[str, Any]] = field(default_factory=list)  # as last reported (transition times)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def ip(self) -> str | None:
        if not self.cni_result:
            return None
        address: str = self.cni_result["ips"][0]["address"]
        return address.split("/")[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LocalPod:
        d = dict(d)
        d["containers"] = [ContainerState(**c) for c in d.get("containers", [])]
        return cls(**d)

    def container(self, name: str) -> ContainerState | None:
        return next((st for st in self.containers if st.name == name), None)


def record_path(state_dir: str, node: str, namespace: str, name: str) -> str:
    return os.path.join(pod_dir(state_dir, node, namespace, name), RECORD)


def save_pod(state_dir: str, node: str, lp: LocalPod) -> None:
    """Write the record atomically (a crash leaves the old record or the new one)."""
    path = record_path(state_dir, node, lp.namespace, lp.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(lp.to_dict(), f)
    os.replace(path + ".tmp", path)


def load_pods(state_dir: str, node: str) -> list[LocalPod]:
    """Every readable record of the node (unreadable ones are skipped)."""
    base = pods_dir(state_dir, node)
    out = []
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, entry, RECORD)) as f:
                out.append(LocalPod.from_dict(json.load(f)))
        except (OSError, ValueError, TypeError):
            continue
    return out


def live_pids(lps: Iterable[LocalPod]) -> list[int]:
    """The recorded container PIDs that still run the recorded process."""
    return [st.pid for lp in lps for st in lp.containers
            if st.pid > 0 and st.start_ticks and proc_start_time(st.pid) == st.start_ticks]


def stop_recorded(lps: Iterable[LocalPod], grace: float = 2.0) -> list[int]:
    """SIGTERM the process group of every recorded container still running, SIGKILL what is
    left after ``grace`` seconds; returns the PIDs that were running. For processes this
    process did not start (a dead runner's): they are not our children to wait for."""
    lps = list(lps)
    pids = live_pids(lps)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while live_pids(lps) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in live_pids(lps):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
