"""The pod runner (the kubelet's job on one node).

For every Pod bound to this node: create its network namespace, call the CNI plugin exactly as
a runtime does, start each container as a process inside the namespace (PIDs recorded on
disk), report status (phase, podIP, hostIP, ready, restarts), restart crashed containers with
back-off, and on delete stop the processes by PID, call CNI DEL and remove the namespace.
State survives an agent restart: recorded processes that are still the same process (PID
plus start time) are adopted, not restarted.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from typing import Any, Callable

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.model.core import Node, Pod
from podnet.workloads.images import UnknownImage, launch_for
from podnet.workloads.records import (ContainerState, LocalPod, load_pods, pod_dir, pods_dir, proc_start_time,
                                      record_path, sandbox_owner, save_pod, stop_recorded)

from .cnicall import CniRuntime

log = logging.getLogger("podnet.agent.pods")
STOP_GRACE = 2.0
START_WORKERS = 8
MAX_BACKOFF = 10.0
UID_CHARS = 12  # 48 random bits of the pod's uid in its namespace name


def pod_netns_name(node: str, namespace: str, name: str, uid: str) -> str:
    """The pod's namespace under /run/netns: readable, unique per pod incarnation.

    Pod namespaces of every cluster on the machine share /run/netns, and two clusters (or test
    runs) easily have the same node and pod names, so the uid part must tell them apart: it is
    long enough not to collide by chance, and it is kept whole when long names are shortened."""
    tag = (uid or "nouid").replace("-", "")[:UID_CHARS]
    return f"{node}-{namespace}-{name}"[:200 - len(tag) - 1] + "-" + tag


def sandbox_id(uid: str, namespace: str, name: str) -> str:
    """The container id CNI sees for the pod (one per incarnation, 64 hex like a runtime's)."""
    return hashlib.sha256(f"{uid}/{namespace}/{name}".encode()).hexdigest()


def podbin_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "podbin")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodRunner:
    """Reconciles this node's pods; ``reconcile(snapshot)`` is called by the agent loop."""

    def __init__(self, store: Any, node: str, state_dir: str, cni: CniRuntime, podbin: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.node = node
        self.state_dir = state_dir
        self.cni = cni
        self.podbin = podbin
        self.clock = clock
        self.local: dict[tuple[str, str], LocalPod] = {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.retry_at: dict[tuple[str, str], float] = {}
        os.makedirs(pods_dir(state_dir, node), exist_ok=True)
        self._load()

    # ---- persistence -------------------------------------------------------------------------

    def _state_file(self, lp: LocalPod) -> str:
        return record_path(self.state_dir, self.node, lp.namespace, lp.name)

    def _save(self, lp: LocalPod) -> None:
        save_pod(self.state_dir, self.node, lp)

    def _load(self) -> None:
        for lp in load_pods(self.state_dir, self.node):
            self.local[lp.key] = lp

    # ---- the loop ----------------------------------------------------------------------------

    def reconcile(self, snapshot: Any) -> None:
        """Tear down pods that are gone (or whose start a crash interrupted), start new ones,
        supervise and report the rest. A failure with one pod is logged and does not keep
        the others from being handled."""
        desired = {(p.namespace or "default", p.name): p for p in snapshot.of(Pod)
                   if p.spec.node_name == self.node and not p.metadata.deletion_timestamp}
        for key, lp in list(self.local.items()):
            pod = desired.get(key)
            # "Pending" is only ever on disk: a start that had not finished when the agent died.
            # A sandbox that is gone (a reboot emptied /run, or `ip netns del`) is started afresh.
            if (pod is None or (pod.metadata.uid or "") != lp.uid or lp.phase == "Pending"
                    or (lp.netns and not netns.exists(lp.netns))):
                self._guarded(f"teardown of {lp.namespace}/{lp.name}", self.teardown, lp)
        host_ip = self._host_ip(snapshot)
        new = [pod for key, pod in desired.items()
               if key not in self.local and self.clock() >= self.retry_at.get(key, 0)]
        if len(new) > 1:  # CNI ADD and process start are mostly waiting: overlap them
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(min(START_WORKERS, len(new))) as pool:
                list(pool.map(lambda p: self._start_and_report(p, host_ip), new))
        elif new:
            self._start_and_report(new[0], host_ip)
        started = {(p.namespace or "default", p.name) for p in new}
        for key, pod in desired.items():
            lp = self.local.get(key)
            if lp is not None and key not in started:
                self._guarded(f"supervision of {lp.namespace}/{lp.name}", self._supervise_and_report, pod, lp, host_ip)

    @staticmethod
    def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed", what)

    def _supervise_and_report(self, pod: Pod, lp: LocalPod, host_ip: str | None) -> None:
        self.supervise(lp)
        self._report(pod, lp, host_ip)

    def _start_and_report(self, pod: Pod, host_ip: str | None) -> None:
        def run() -> None:
            lp = self.start(pod)
            if lp is not None:
                self._report(pod, lp, host_ip)
        self._guarded(f"start of {pod.namespace or 'default'}/{pod.name}", run)

    def _host_ip(self, snapshot: Any) -> str | None:
        node = snapshot.get(Node, self.node)
        for a in (node.status.addresses or []) if node and node.status else []:
            if a.type == "InternalIP":
                return a.address
        return None

    # ---- start -------------------------------------------------------------------------------

    def start(self, pod: Pod) -> LocalPod | None:
        """Sandbox + CNI ADD + containers, recorded on disk before each step so that the
        successor of an agent that died half-way can undo it. Any failure undoes every step
        (processes, CNI DEL, namespace) and the pod is retried later; an unknown image fails
        the pod for good (the user must change the spec)."""
        ns = pod.namespace or "default"
        uid = pod.metadata.uid or ""
        lp = LocalPod(ns, pod.name, uid, restart_policy=pod.spec.restart_policy or "Always",
                      start_time=now_rfc3339())
        try:
            launches = [(c, launch_for(pod, c, self.podbin)) for c in pod.spec.containers]
        except UnknownImage as exc:
            lp.phase, lp.reason, lp.message = "Failed", "UnknownImage", str(exc)
            self.local[lp.key] = lp
            self._save(lp)
            return lp
        lp.netns = pod_netns_name(self.node, ns, pod.name, uid)
        lp.sandbox = sandbox_id(uid, ns, pod.name)
        try:
            self._make_sandbox(lp)
            lp.cni_result = self.cni.call("ADD", lp.sandbox, netns.path(lp.netns), "eth0", args=self._cni_args(lp))
            for c, launch in launches:
                st = ContainerState(c.name, c.image or "", list(launch.argv), dict(launch.env))
                lp.containers.append(st)
                self._spawn(lp, st)
                self._save(lp)
        except Exception as exc:
            log.warning("pod %s/%s: start failed, undone: %s", ns, pod.name, exc)
            self.teardown(lp)
            self.retry_at[lp.key] = self.clock() + 2.0
            self._set_pending(pod, str(exc))
            return None
        self.retry_at.pop(lp.key, None)
        lp.phase = "Running"
        self.local[lp.key] = lp
        self._save(lp)
        return lp

    def _make_sandbox(self, lp: LocalPod) -> None:
        """The pod's namespace, replacing a half-made one of this same pod, never anyone else's."""
        if netns.exists(lp.netns):
            if not self._sandbox_is_ours(lp):
                raise PodnetError(f"network namespace {lp.netns} already exists and is not the sandbox of pod "
                                  f"{lp.namespace}/{lp.name} (uid {lp.uid})",
                                  hint=f"something else uses that name; remove it with `ip netns del {lp.netns}` "
                                       "if it is unused")
            netns.remove(lp.netns)  # left by an earlier start of this pod that did not finish
        self._save(lp)  # recorded before it exists: whoever finds the record can undo the start
        netns.create(lp.netns, owner=sandbox_owner(lp.sandbox))

    def _sandbox_is_ours(self, lp: LocalPod) -> bool:
        return bool(lp.netns) and netns.owner(lp.netns) == sandbox_owner(lp.sandbox)

    def _cni_args(self, lp: LocalPod) -> dict[str, str]:
        return {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": lp.namespace, "K8S_POD_NAME": lp.name,
                "K8S_POD_INFRA_CONTAINER_ID": lp.sandbox, "K8S_POD_UID": lp.uid}

    def _spawn(self, lp: LocalPod, st: ContainerState) -> None:
        logdir = pod_dir(self.state_dir, self.node, lp.namespace, lp.name)
        os.makedirs(logdir, exist_ok=True)
        with open(os.path.join(logdir, f"{st.name}.log"), "ab") as out:
            proc = netns.popen_in(lp.netns, st.argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True, cwd=logdir,
                                  env={**st.env, "POD_IP": lp.ip or ""})
        self.children[proc.pid] = proc
        st.pid = proc.pid
        st.start_ticks = proc_start_time(proc.pid) or 0
        st.started_at = now_rfc3339()
        st.finished = False

    # ---- supervise -----------------------------------------------------------------------------

    def _alive(self, st: ContainerState) -> bool:
        child = self.children.get(st.pid)
        if child is not None:
            if child.poll() is None:
                return True
            st.last_exit = child.returncode
            del self.children[st.pid]
            return False
        return st.pid > 0 and proc_start_time(st.pid) == st.start_ticks  # adopted after a restart

    def supervise(self, lp: LocalPod) -> None:
        """Restart exited containers per restartPolicy, with exponential back-off."""
        if lp.phase in ("Failed", "Succeeded") or not lp.netns:
            return
        changed = False
        for st in lp.containers:
            if st.finished or st.pid == 0 or self._alive(st):
                continue
            if st.exited_at == 0:
                st.exited_at = self.clock()
                changed = True
            restart = lp.restart_policy == "Always" or (lp.restart_policy == "OnFailure" and st.last_exit != 0)
            if not restart:
                st.finished, st.pid = True, 0
                changed = True
                continue
            backoff = min(MAX_BACKOFF, 0.5 * (2 ** st.restarts))
            if self.clock() - st.exited_at >= backoff:
                st.restarts += 1
                st.exited_at = 0
                self._spawn(lp, st)
                changed = True
        if lp.containers and all(st.finished for st in lp.containers):
            lp.phase = "Succeeded" if all(st.last_exit == 0 for st in lp.containers) else "Failed"
            changed = True
        if changed:
            self._save(lp)

    # ---- status --------------------------------------------------------------------------------

    def status_for(self, lp: LocalPod, host_ip: str | None) -> dict[str, Any]:
        cs = []
        for st in lp.containers:
            running = st.pid > 0 and not st.finished and st.exited_at == 0
            if running:
                state: dict[str, Any] = {"running": {"startedAt": st.started_at}}
            elif st.finished:
                state = {"terminated": {"exitCode": st.last_exit if st.last_exit is not None else -1,
                                        "reason": "Completed" if st.last_exit == 0 else "Error"}}
            else:
                state = {"waiting": {"reason": "CrashLoopBackOff",
                                     "message": f"last exit code {st.last_exit}"}}
            cs.append({"name": st.name, "ready": running, "restartCount": st.restarts, "image": st.image,
                       "imageID": "", "containerID": f"podnet://{lp.sandbox[:12]}-{st.name}",
                       "started": running, "state": state})
        ready = bool(cs) and all(c["ready"] for c in cs) and lp.phase == "Running"
        status: dict[str, Any] = {"phase": lp.phase, "startTime": lp.start_time,
                                  "conditions": [{"type": "Ready", "status": "True" if ready else "False"},
                                                 {"type": "ContainersReady", "status": "True" if ready else "False"},
                                                 {"type": "PodScheduled", "status": "True"}]}
        if lp.message:
            status["message"], status["reason"] = lp.message, lp.reason
        if lp.ip:
            status["podIP"], status["podIPs"] = lp.ip, [{"ip": lp.ip}]
        if host_ip:
            status["hostIP"], status["hostIPs"] = host_ip, [{"ip": host_ip}]
        if cs:
            status["containerStatuses"] = cs
        return status

    def _report(self, pod: Pod, lp: LocalPod, host_ip: str | None) -> None:
        status = self.status_for(lp, host_ip)
        if pod.to_dict().get("status") == status:
            return
        self._write_status(pod, status)

    def _set_pending(self, pod: Pod, message: str) -> None:
        self._write_status(pod, {"phase": "Pending", "reason": "SandboxFailed", "message": message,
                                 "conditions": [{"type": "PodScheduled", "status": "True"}]})

    def _write_status(self, pod: Pod, status: dict[str, Any]) -> None:
        data = pod.to_dict()
        data["status"] = status
        try:
            self.store.update_status(Pod.model_validate(data))
        except PodnetError as exc:  # deleted meanwhile: the next pass tears it down
            log.info("status of %s/%s not written: %s", pod.namespace, pod.name, exc)

    # ---- teardown ------------------------------------------------------------------------------

    def _stop_processes(self, lp: LocalPod) -> None:
        self._stop_all([lp])

    def _stop_all(self, lps: list[LocalPod]) -> None:
        """SIGTERM every container of ``lps`` at once, one grace period, then SIGKILL; our own
        children are reaped."""
        stop_recorded(lps, STOP_GRACE)
        for lp in lps:
            for st in lp.containers:
                child = self.children.pop(st.pid, None)
                if child is not None:
                    child.wait(timeout=5)
                st.pid = 0

    def _cni_del(self, lp: LocalPod) -> None:
        if not lp.sandbox:
            return
        # The namespace is named only when it is this pod's: DEL removes eth0 in whatever it is given.
        ns_path = netns.path(lp.netns) if self._sandbox_is_ours(lp) else ""
        try:
            self.cni.call("DEL", lp.sandbox, ns_path, "eth0", args=self._cni_args(lp), prev_result=lp.cni_result)
        except PodnetError as exc:
            log.warning("CNI DEL for %s/%s failed: %s", lp.namespace, lp.name, exc)

    def teardown(self, lp: LocalPod) -> None:
        """Stop processes by PID, CNI DEL, remove the namespace if it is this pod's, forget the
        pod. Idempotent."""
        self._stop_processes(lp)
        self._cni_del(lp)
        if self._sandbox_is_ours(lp):
            netns.remove(lp.netns)
        self.local.pop(lp.key, None)
        self.retry_at.pop(lp.key, None)
        shutil.rmtree(os.path.dirname(self._state_file(lp)), ignore_errors=True)
        log.info("pod %s/%s torn down", lp.namespace, lp.name)

    def teardown_all(self) -> None:
        """Every pod of this node (agent shutdown): processes stopped together, then the CNI
        DELs and namespace removals in parallel, so a node with many pods stops quickly."""
        from concurrent.futures import ThreadPoolExecutor

        lps = list(self.local.values())
        self._stop_all(lps)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self.teardown, lps))
