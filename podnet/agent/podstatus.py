"""A pod's status as the kubelet reports it (pure): phase, the conditions PodReadyToStartContainers,
Initialized, ContainersReady, Ready and PodScheduled (each ``lastTransitionTime`` kept while
its status holds), and per container ``state``, ``lastState``, ``ready``, ``started`` and
``restartCount``."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.workloads.records import ContainerState, LocalPod

CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class Probed:
    """What the probes say of one running container."""

    ready: bool
    started: bool


def running(st: ContainerState) -> bool:
    return st.pid > 0 and not st.finished and st.exited_at == 0


def terminated_state(st: ContainerState) -> dict[str, Any]:
    code = st.last_exit if st.last_exit is not None else 137
    out: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                           "startedAt": st.started_at or None, "finishedAt": st.finished_at or None}
    if code > 128:
        out["signal"] = code - 128
    return {k: v for k, v in out.items() if v is not None}


def container_status(lp: LocalPod, st: ContainerState, probed: Probed | None, pod_ref: str) -> dict[str, Any]:
    ready = started = False
    if st.waiting_reason:
        state: dict[str, Any] = {"waiting": {"reason": st.waiting_reason, "message": st.waiting_message}}
    elif running(st):
        state = {"running": {"startedAt": st.started_at}}
        started = probed.started if probed else True
        ready = started and (probed.ready if probed else True)
    elif st.finished:
        state = {"terminated": terminated_state(st)}
    elif st.pid == 0 and st.exited_at == 0:
        state = {"waiting": {"reason": "ContainerCreating"}}
    else:
        state = {"waiting": {"reason": "CrashLoopBackOff",
                             "message": f"back-off {int(st.backoff)}s restarting failed container={st.name} "
                                        f"pod={pod_ref}"}}
    out: dict[str, Any] = {"name": st.name, "state": state, "lastState": {}, "ready": ready,
                           "restartCount": st.restarts, "image": st.image, "imageID": "",
                           "containerID": f"podnet://{lp.sandbox[:12]}-{st.name}", "started": started}
    if st.last_terminated:
        out["lastState"] = {"terminated": st.last_terminated}
    return out


def phase(lp: LocalPod) -> str:
    if lp.phase in ("Failed", "Succeeded", "Pending"):
        return lp.phase
    if lp.containers and all(st.finished for st in lp.containers):
        return "Succeeded" if all(st.last_exit == 0 for st in lp.containers) else "Failed"
    return "Running"


def _condition(kind: str, true: bool, previous: Mapping[str, Mapping[str, Any]], now: str,
               reason: str = "", message: str = "") -> dict[str, Any]:
    status = "True" if true else "False"
    before = previous.get(kind)
    since = before.get("lastTransitionTime") if before and before.get("status") == status else None
    out: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now}
    if not true and reason:
        out["reason"], out["message"] = reason, message
    return out


def pod_status(lp: LocalPod, probed: Mapping[str, Probed], host_ip: str | None, now: str,
               previous: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The status to write; ``previous`` conditions keep their transition times."""
    pod_ref = f"{lp.name}_{lp.namespace}({lp.uid})"
    statuses = [container_status(lp, st, probed.get(st.name), pod_ref) for st in lp.containers]
    the_phase = phase(lp)
    unready = [c["name"] for c in statuses if not c["ready"]]
    all_ready = bool(statuses) and not unready and the_phase == "Running"
    prev = {str(c.get("type")): c for c in previous or []}
    why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]") if unready else \
        ("PodCompleted", "") if the_phase in ("Succeeded", "Failed") else ("", "")
    conditions = [
        _condition("PodReadyToStartContainers", bool(lp.netns) and the_phase != "Pending", prev, now),
        _condition("Initialized", True, prev, now),
        _condition("Ready", all_ready, prev, now, *why),
        _condition("ContainersReady", all_ready, prev, now, *why),
        _condition("PodScheduled", True, prev, now),
    ]
    status: dict[str, Any] = {"phase": the_phase, "conditions": conditions, "startTime": lp.start_time}
    if lp.message:
        status["message"], status["reason"] = lp.message, lp.reason
    if lp.ip:
        status["podIP"], status["podIPs"] = lp.ip, [{"ip": lp.ip}]
    if host_ip:
        status["hostIP"], status["hostIPs"] = host_ip, [{"ip": host_ip}]
    if statuses:
        status["containerStatuses"] = statuses
    status["qosClass"] = "BestEffort"
    return status
