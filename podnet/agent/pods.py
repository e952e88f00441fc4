"""The pod runner (the kubelet's job on one node).

For every Pod bound to this node: create its network namespace, call the CNI plugin exactly as
a runtime does, start each container as a process inside the namespace (PIDs recorded on
disk) with the environment a kubelet gives it, run its probes (``agent/prober.py``) and report
status (phase, conditions, container states, readiness, restarts), restart exited or unhealthy
containers per restartPolicy with the kubelet's back-off, and write Events.

Each container runs in a sandbox of its own (``workloads/sandbox.py``: bubblewrap with
private mount, PID, UTS and IPC namespaces, the runtime's default capabilities, the pod's own
/etc/hosts, /etc/hostname and /etc/resolv.conf written here as a kubelet writes them); the
PID recorded is the sandbox's init, whose process group holds the container's command.

A pod marked for deletion is terminated in its own thread, as the kubelet does: preStop hooks,
SIGTERM, SIGKILL when the grace period ends (readiness is still probed and reported meanwhile),
then CNI DEL (the address is released only now that the processes are gone), the namespace
removed, and the Pod deleted from the store with grace period 0. A pod removed from the store
outright (``--force``) is stopped the same way without preStop, with a 2 s grace.

State survives an agent restart: recorded processes that are still the same process (PID plus
start time) are adopted, not restarted; a pod whose termination was under way is terminated
again with what is left of its grace period.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podnet.errors import PodnetError
from podnet.kernel import netns
from podnet.model.core import Container, Node, Pod, PodStatus, Service
from podnet.model.probes import LifecycleHandler
from podnet.model.secrets import ServiceAccount
from podnet.pki import CLUSTER_CA_KEY, ClusterCA, mint_token
from podnet.workloads import sandbox
from podnet.workloads.env import ContainerConfigError, PodFacts, container_env, expand
from podnet.workloads.images import PACKAGE_DIR, UnknownImage, launch_for
from podnet.workloads.podfiles import (
    DNS_CONFIG_KEY,
    ClusterDNS,
    hostname_file,
    hosts_file,
    parse_resolv_conf,
    resolv_conf,
)
from podnet.workloads.records import (
    ContainerState,
    LocalPod,
    load_pods,
    pod_dir,
    pods_dir,
    proc_start_time,
    record_path,
    sandbox_owner,
    save_pod,
    stop_recorded,
)

from . import probes
from .cnicall import CniRuntime
from .events import EventRecorder
from .podstatus import Probed, pod_status, running, terminated_state
from .prober import ProbeManager

log = logging.getLogger("podnet.agent.pods")
STOP_GRACE = 2.0  # the kubelet's minimum grace after SIGTERM (and the agent's own stop)
START_WORKERS = 8
UID_CHARS = 12  # 48 random bits of the pod's uid in its namespace name
Key = tuple[str, str]


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
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _key(pod: Pod) -> Key:
    return (pod.namespace or "default", pod.name)


def exit_code(returncode: int) -> int:
    """A runtime's exit code: 128 + signal for a process a signal ended."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Termination:
    """One pod being stopped: ``deadline`` (wall clock) may only move earlier."""

    lp: LocalPod
    pod: Pod | None
    deadline: float
    pre_stop: bool
    finalize: bool
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)


class PodRunner:
    """Reconciles this node's pods; ``reconcile(snapshot)`` is called by the agent loop."""

    def __init__(self, store: Any, node: str, state_dir: str, cni: CniRuntime, podbin: str,
                 clock: Callable[[], float] = time.time, backoff_base: float = 10.0, sandboxed: bool = True,
                 resolv_conf_path: str = "/etc/resolv.conf", progress: Callable[[], None] | None = None) -> None:
        self.store = store
        # called after each pod started (done or failed) or supervised: a pass over many pods is long, and
        # the agent's watchdog must see it making progress (else it is killed mid-start, and its
        # successor tears the half-made pods down and starts over)
        self.progress = progress if progress is not None else (lambda: None)
        self.sandboxed = sandboxed
        self.resolv_conf_path = resolv_conf_path
        self.dns = ClusterDNS()
        self.ca: ClusterCA | None = None
        self.node = node
        self.state_dir = state_dir
        self.cni = cni
        self.podbin = podbin
        self.clock = clock
        self.backoff_base, self.backoff_max = backoff_base, backoff_base * 30  # 10 s doubling to 5 min
        self.local: dict[Key, LocalPod] = {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.retry_at: dict[Key, float] = {}
        self.pods: dict[Key, Pod] = {}
        self.jobs: dict[Key, _Termination] = {}
        self.host_ip: str | None = None
        self.services: tuple[Service, ...] = ()
        self.lock = threading.RLock()
        self.events = EventRecorder(store, "kubelet", node)
        self.prober = ProbeManager(self._probe_changed, self._probe_failed, self._probe_unhealthy)
        self._probed: set[Key] = set()
        self._written: dict[Key, dict[str, Any]] = {}
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
        """Terminate pods that are being deleted or are gone, tear down what a crash left
        half-made, start new pods, supervise and report the rest. A failure with one pod is
        logged and does not keep the others from being handled."""
        with self.lock:
            self.host_ip = self._host_ip(snapshot)
            self.services = tuple(snapshot.of(Service))
            self.dns = self._cluster_dns()
            record = self.store.kv.get(CLUSTER_CA_KEY)
            self.ca = ClusterCA.from_dict(record.value) if record is not None else None
            mine = {_key(p): p for p in snapshot.of(Pod) if p.spec.node_name == self.node}
            self.pods = mine
            for key, lp in list(self.local.items()):
                pod = mine.get(key)
                if key in self.jobs:
                    self._shorten(self.jobs[key], pod if pod is not None and pod.metadata.uid == lp.uid else None)
                elif pod is None or (pod.metadata.uid or "") != lp.uid:
                    self._terminate(lp, None)  # removed outright (--force): no preStop, 2 s grace
                elif lp.phase == "Pending" or (lp.netns and not netns.exists(lp.netns)):
                    # "Pending" is only ever on disk: a start that had not finished when the agent
                    # died. A sandbox that is gone (a reboot emptied /run, or `ip netns del`) is
                    # started afresh.
                    self._guarded(f"teardown of {lp.namespace}/{lp.name}", self.teardown, lp)
                elif pod.metadata.deletion_timestamp:
                    self._terminate(lp, pod)
            for key, pod in mine.items():
                if pod.metadata.deletion_timestamp and key not in self.local and key not in self.jobs:
                    self._guarded(f"removal of {key[0]}/{key[1]}", self._finalize, pod)
            busy = set(self.local) | set(self.jobs)
            new = [p for k, p in mine.items() if k not in busy and not p.metadata.deletion_timestamp
                   and self.clock() >= self.retry_at.get(k, 0)]
        if len(new) > 1:  # CNI ADD and process start are mostly waiting: overlap them
            with ThreadPoolExecutor(min(START_WORKERS, len(new))) as pool:
                list(pool.map(self._start_and_report, new))
        elif new:
            self._start_and_report(new[0])
        started = {_key(p) for p in new}
        with self.lock:
            for key, pod in mine.items():
                known = self.local.get(key)
                if known is not None and key not in started and key not in self.jobs:
                    self._guarded(f"supervision of {key[0]}/{key[1]}", self._supervise_and_report, pod, known)
                    self.progress()
        self.events.flush()

    @staticmethod
    def _guarded(what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s failed", what)

    def _supervise_and_report(self, pod: Pod, lp: LocalPod) -> None:
        if lp.key not in self._probed:
            self._register_probes(pod, lp)
        self.supervise(lp)
        self._report(lp)

    def _start_and_report(self, pod: Pod) -> None:
        def run() -> None:
            lp = self.start(pod)
            if lp is not None:
                with self.lock:
                    self._report(lp)
        try:
            self._guarded(f"start of {pod.namespace or 'default'}/{pod.name}", run)
        finally:
            self.progress()

    def _cluster_dns(self) -> ClusterDNS:
        """The cluster DNS as ``podnet up --cluster-dns`` recorded it, and the node's own
        resolver configuration (the kubelet's ``--resolv-conf``)."""
        try:
            with open(self.resolv_conf_path) as f:
                node = parse_resolv_conf(f.read())
        except OSError:
            node = parse_resolv_conf("")
        record = self.store.kv.get(DNS_CONFIG_KEY)
        config = record.value if record is not None else {}
        servers = tuple(config.get("clusterDNS", ClusterDNS.servers))
        return ClusterDNS(servers, str(config.get("clusterDomain", ClusterDNS.domain)), node)

    def _host_ip(self, snapshot: Any) -> str | None:
        node = snapshot.get(Node, self.node)
        return node.internal_ip if node is not None else None

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
            podbin = sandbox.PODBIN if self.sandboxed else self.podbin
            launches = [(c, launch_for(pod, c, podbin)) for c in pod.spec.containers]
        except UnknownImage as exc:
            lp.phase, lp.reason, lp.message = "Failed", "UnknownImage", str(exc)
            with self.lock:
                self.local[lp.key] = lp
            self._save(lp)
            return lp
        lp.netns = pod_netns_name(self.node, ns, pod.name, uid)
        lp.sandbox = sandbox_id(uid, ns, pod.name)
        try:
            self._make_sandbox(lp)
            lp.cni_result = self.cni.call("ADD", lp.sandbox, netns.path(lp.netns), "eth0", args=self._cni_args(lp))
            facts = PodFacts(lp.ip or "", self.host_ip or "")
            self._write_pod_files(pod, lp)
            for c, launch in launches:
                st = ContainerState(c.name, c.image or "", list(launch.argv), dict(launch.env))
                lp.containers.append(st)
                self._configure(pod, c, st, facts)
                if not st.waiting_reason:
                    self._spawn(lp, st, pod)
                self._save(lp)
        except Exception as exc:
            log.warning("pod %s/%s: start failed, undone: %s", ns, pod.name, exc)
            self.teardown(lp)
            self.retry_at[lp.key] = self.clock() + 2.0
            self._set_pending(pod, str(exc))
            return None
        self.retry_at.pop(lp.key, None)
        lp.phase = "Running"
        with self.lock:
            self.local[lp.key] = lp
            self._save(lp)
            self._register_probes(pod, lp, adopt=False)
            for c in pod.spec.containers:
                made = lp.container(c.name)
                if made is not None and made.pid:
                    self._started(pod, lp, made, c)
        return lp

    def _configure(self, pod: Pod, c: Container, st: ContainerState, facts: PodFacts) -> None:
        """The container's environment (and ``$(VAR)`` in its command), or why it has none."""
        try:
            env = container_env(pod, c, self.services, facts)
        except ContainerConfigError as exc:
            if st.waiting_reason != "CreateContainerConfigError":
                self.events.record(pod, "Warning", "Failed", f"Error: {exc.message}", _field(c.name))
            st.waiting_reason, st.waiting_message = "CreateContainerConfigError", exc.message
            return
        st.waiting_reason = st.waiting_message = ""
        st.argv = [expand(a, env) for a in st.argv]
        st.env = {**env, **st.env}

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

    def _logdir(self, lp: LocalPod) -> str:
        return pod_dir(self.state_dir, self.node, lp.namespace, lp.name)

    def _etc_dir(self, lp: LocalPod) -> str:
        return os.path.join(self._logdir(lp), "etc")

    def _write_pod_files(self, pod: Pod, lp: LocalPod) -> None:
        """/etc/hosts, /etc/hostname and /etc/resolv.conf of the pod, as a kubelet writes them."""
        etc = self._etc_dir(lp)
        os.makedirs(etc, exist_ok=True)
        files = {"hosts": hosts_file(pod, [lp.ip] if lp.ip else [], self.dns.domain),
                 "hostname": hostname_file(pod, self.dns.domain) + "\n",
                 "resolv.conf": resolv_conf(pod, self.dns).render()}
        for name, text in files.items():
            with open(os.path.join(etc, name), "w") as f:
                f.write(text)
        if self._automount(pod):
            assert self.ca is not None
            ns = pod.namespace or "default"
            account = pod.spec.service_account_name or pod.spec.service_account or "default"
            token = mint_token(self.ca, ns, account, pod.name, pod.metadata.uid or "", self.clock())
            secrets_dir = self._service_account_dir(lp)
            os.makedirs(secrets_dir, mode=0o755, exist_ok=True)
            for name, text in (("token", token), ("ca.crt", self.ca.cert_pem), ("namespace", ns)):
                with open(os.path.join(secrets_dir, name), "w") as f:
                    f.write(text)

    def _service_account_dir(self, lp: LocalPod) -> str:
        return os.path.join(self._logdir(lp), "serviceaccount")

    def _automount(self, pod: Pod) -> bool:
        """A token for the pod's ServiceAccount unless the pod (or else the account) opts out,
        in a cluster whose control plane issues them."""
        if self.ca is None or not self.sandboxed:
            return False
        if pod.spec.automount_service_account_token is not None:
            return pod.spec.automount_service_account_token
        account = self.store.get(ServiceAccount, pod.spec.service_account_name or pod.spec.service_account or "default",
                                 pod.namespace or "default")
        return not (isinstance(account, ServiceAccount) and account.automount_service_account_token is False)

    def _sandbox_spec(self, lp: LocalPod, st: ContainerState, pod: Pod | None) -> sandbox.SandboxSpec:
        c = next((c for c in pod.spec.containers if c.name == st.name), None) if pod is not None else None
        etc = self._etc_dir(lp)
        host = hostname_file(pod, self.dns.domain) if pod is not None else lp.name
        return sandbox.SandboxSpec(
            hostname=host, privileges=sandbox.privileges(c.security_context if c is not None else None),
            files={f"/etc/{name}": os.path.join(etc, name) for name in ("hosts", "hostname", "resolv.conf")},
            binds={sandbox.PODBIN: self.podbin, **({sandbox.SERVICE_ACCOUNT_DIR: self._service_account_dir(lp)}
                                                  if os.path.isdir(self._service_account_dir(lp)) else {})},
            host_dirs=(PACKAGE_DIR, sys.prefix),  # built-in workloads run podnet's code
            workdir=(c.working_dir if c is not None and c.working_dir else "/"))

    def _spawn(self, lp: LocalPod, st: ContainerState, pod: Pod | None = None) -> None:
        logdir = self._logdir(lp)
        os.makedirs(logdir, exist_ok=True)
        with open(os.path.join(logdir, f"{st.name}.log"), "ab") as out:
            popen: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": out, "stderr": subprocess.STDOUT,
                                     "start_new_session": True, "cwd": logdir, "env": self._process_env(lp, st)}
            if self.sandboxed:
                spec = self._sandbox_spec(lp, st, pod or self.pods.get(lp.key))
                proc, pid = sandbox.start(spec, st.argv, netns.nsenter_argv(lp.netns, []),
                                          **popen)
            else:
                proc = netns.popen_in(lp.netns, st.argv, **popen)
                pid = proc.pid
        with self.lock:
            self.children[pid] = proc
        st.pid = pid
        st.start_ticks = proc_start_time(pid) or 0
        st.started_at = now_rfc3339()
        st.finished = False

    @staticmethod
    def _process_env(lp: LocalPod, st: ContainerState) -> dict[str, str]:
        return {"POD_IP": lp.ip or "", **st.env}

    def _target(self, lp: LocalPod, st: ContainerState, c: Container) -> probes.Target:
        ports = {p.name: p.container_port for p in c.ports or [] if p.name}
        sandbox_pid, privs = (st.pid, sandbox.privileges(c.security_context)) if self.sandboxed else (0, None)
        return probes.Target(lp.ip or "", lp.netns, self._process_env(lp, st), self._logdir(lp), ports,
                             sandbox_pid, privs)

    def _started(self, pod: Pod, lp: LocalPod, st: ContainerState, c: Container) -> None:
        """A container process runs: events, probes from the start, postStart hook."""
        where = _field(c.name)
        self.events.record(pod, "Normal", "Pulled", f'Container image "{c.image}" already present on machine', where)
        self.events.record(pod, "Normal", "Created", f"Created container {c.name}", where)
        self.events.record(pod, "Normal", "Started", f"Started container {c.name}", where)
        self.prober.container_started(lp.key, c.name, self._target(lp, st, c))
        hook = c.lifecycle.post_start if c.lifecycle else None
        if hook is not None:
            threading.Thread(target=self._post_start, args=(pod, lp, st, c, hook), daemon=True).start()

    def _post_start(self, pod: Pod, lp: LocalPod, st: ContainerState, c: Container, hook: LifecycleHandler) -> None:
        pid = st.pid
        result = probes.run(hook.handler, self._target(lp, st, c), float(pod.spec.grace_period or STOP_GRACE))
        if not result.ok and st.pid == pid:
            self.events.record(pod, "Warning", "FailedPostStartHook", result.message, _field(c.name))
            self._kill_async(pod, lp, st, c, float(pod.spec.grace_period))

    def _register_probes(self, pod: Pod, lp: LocalPod, adopt: bool = True) -> None:
        for c in pod.spec.containers:
            self.prober.set_probes(lp.key, c.name, {"readiness": c.readiness_probe, "liveness": c.liveness_probe,
                                                    "startup": c.startup_probe})
            st = lp.container(c.name)
            if adopt and st is not None and self._alive(st):  # adopted after an agent restart
                self.prober.container_started(lp.key, c.name, self._target(lp, st, c))
        self._probed.add(lp.key)

    # ---- supervise -----------------------------------------------------------------------------

    def _alive(self, st: ContainerState) -> bool:
        with self.lock:
            child = self.children.get(st.pid)
            if child is not None:
                if child.poll() is None:
                    return True
                st.last_exit = exit_code(child.returncode)
                del self.children[st.pid]
                if self.sandboxed and proc_start_time(st.pid) == st.start_ticks:
                    _kill(st.pid)  # the command has ended: so does whatever it left in its sandbox
                return False
        return st.pid > 0 and proc_start_time(st.pid) == st.start_ticks  # adopted after a restart

    def _note_exit(self, lp: LocalPod, st: ContainerState) -> None:
        st.exited_at = self.clock()
        st.finished_at = now_rfc3339()
        st.last_terminated = terminated_state(st)
        self.prober.container_stopped(lp.key, st.name)

    def supervise(self, lp: LocalPod) -> None:
        """Restart exited containers per restartPolicy, with the kubelet's back-off: the first
        restart at once, then 10 s doubling up to 5 min (reset after 10 min without a crash)."""
        if lp.phase in ("Failed", "Succeeded") or not lp.netns:
            return
        pod = self.pods.get(lp.key)
        changed = False
        for st in lp.containers:
            c = next((c for c in pod.spec.containers if c.name == st.name), None) if pod else None
            if st.waiting_reason and pod is not None and c is not None:
                self._configure(pod, c, st, PodFacts(lp.ip or "", self.host_ip or ""))
                if not st.waiting_reason:
                    self._spawn(lp, st)
                    self._started(pod, lp, st, c)
                    changed = True
                continue
            if st.finished or st.pid == 0 or self._alive(st):
                continue
            if st.exited_at == 0:
                self._note_exit(lp, st)
                changed = True
            restart = lp.restart_policy == "Always" or (lp.restart_policy == "OnFailure" and st.last_exit != 0)
            if not restart:
                st.finished, st.pid = True, 0
                changed = True
                continue
            if self._in_backoff(st):
                continue
            self._next_backoff(st)
            st.restarts += 1
            st.exited_at = 0
            self._spawn(lp, st)
            if pod is not None and c is not None:
                self._started(pod, lp, st, c)
            changed = True
        if lp.containers and all(st.finished for st in lp.containers):
            lp.phase = "Succeeded" if all(st.last_exit == 0 for st in lp.containers) else "Failed"
            changed = True
        if changed:
            self._save(lp)

    def _in_backoff(self, st: ContainerState) -> bool:
        if not st.backoff_at or st.exited_at - st.backoff_at > 2 * self.backoff_max:
            return False
        return self.clock() - st.exited_at < st.backoff

    def _next_backoff(self, st: ContainerState) -> None:
        if not st.backoff_at or st.exited_at - st.backoff_at > 2 * self.backoff_max:
            st.backoff = self.backoff_base
        else:
            st.backoff = min(st.backoff * 2, self.backoff_max)
        st.backoff_at = self.clock()

    # ---- status --------------------------------------------------------------------------------

    def status_for(self, lp: LocalPod, host_ip: str | None) -> dict[str, Any]:
        probed = {}
        for st in lp.containers:
            ready, started = (self.prober.result(lp.key, st.name, k) for k in ("readiness", "startup"))
            probed[st.name] = Probed(ready=ready is not False, started=started is not False)
        return pod_status(lp, probed, host_ip, now_rfc3339(), lp.conditions)

    def _report(self, lp: LocalPod) -> None:
        """Write the pod's status if it changed (under ``lock``)."""
        pod = self.pods.get(lp.key)
        if pod is None or (pod.metadata.uid or "") != lp.uid:
            return
        if not lp.conditions:  # after an agent restart: keep the transition times already reported
            lp.conditions = list(pod.status.conditions or [])
        status = self.status_for(lp, self.host_ip)
        lp.conditions = status["conditions"]
        if self._written.get(lp.key) == status:
            return
        if pod.to_dict().get("status") != status:
            self._write_status(pod, status)
        self._written[lp.key] = status

    def _set_pending(self, pod: Pod, message: str) -> None:
        self._write_status(pod, {"phase": "Pending", "reason": "SandboxFailed", "message": message,
                                 "conditions": [{"type": "PodScheduled", "status": "True"}]})

    def _write_status(self, pod: Pod, status: dict[str, Any]) -> None:
        try:
            self.store.update_status(pod.model_copy(update={"status": PodStatus.model_validate(status)}))
        except PodnetError as exc:  # deleted meanwhile: the next pass tears it down
            log.info("status of %s/%s not written: %s", pod.namespace, pod.name, exc)

    # ---- probes' news --------------------------------------------------------------------------

    def _probe_changed(self, key: Key) -> None:
        with self.lock:
            lp = self.local.get(key)
            if lp is not None:
                self._report(lp)

    def _probe_failed(self, key: Key, container: str, kind: str, message: str) -> None:
        pod = self.pods.get(key)
        if pod is not None:
            self.events.record(pod, "Warning", "Unhealthy", f"{kind.title()} probe failed: {message}",
                               _field(container))

    def _probe_unhealthy(self, key: Key, container: str, kind: str) -> None:
        with self.lock:
            pod, lp = self.pods.get(key), self.local.get(key)
            if pod is None or lp is None or key in self.jobs:
                return
            st = lp.container(container)
            c = next((c for c in pod.spec.containers if c.name == container), None)
        if st is None or c is None:
            return
        probe = c.liveness_probe if kind == "liveness" else c.startup_probe
        grace = (probe.termination_grace_period_seconds if probe else None) or pod.spec.grace_period
        self.events.record(pod, "Normal", "Killing", f"Container {container} failed {kind} probe, will be restarted",
                           _field(container))
        self._kill_async(pod, lp, st, c, float(grace))

    def _kill_async(self, pod: Pod, lp: LocalPod, st: ContainerState, c: Container, grace: float) -> None:
        deadline = self.clock() + grace
        threading.Thread(target=self._kill_container, args=(pod, lp, st, c, lambda: deadline, True),
                         name=f"kill-{lp.name}-{c.name}", daemon=True).start()

    # ---- stopping containers -------------------------------------------------------------------

    def _kill_container(self, pod: Pod | None, lp: LocalPod, st: ContainerState, c: Container | None,
                        deadline: Callable[[], float], pre_stop: bool) -> None:
        """preStop (within the grace period), SIGTERM, SIGKILL once the grace period (at least
        2 s after SIGTERM) is over; returns when the process is gone."""
        pid = st.pid

        def alive() -> bool:  # this run of the container (a restart has another pid)
            return st.pid == pid and self._alive(st)

        if pid <= 0 or not alive():
            return
        hook = c.lifecycle.pre_stop if c is not None and c.lifecycle else None
        if pre_stop and hook is not None and pod is not None and c is not None:
            result = probes.run(hook.handler, self._target(lp, st, c), max(0.0, deadline() - self.clock()))
            if not result.ok:
                self.events.record(pod, "Warning", "FailedPreStopHook",
                                   f"PreStopHook failed: {result.message}".strip(), _field(st.name))
        _signal(pid, signal.SIGTERM)
        floor = self.clock() + STOP_GRACE
        while alive() and self.clock() < max(deadline(), floor):
            time.sleep(0.02)
        if alive():
            _signal(pid, signal.SIGKILL)
            while alive():
                time.sleep(0.01)

    # ---- termination ---------------------------------------------------------------------------

    def _terminate(self, lp: LocalPod, pod: Pod | None) -> None:
        """Start stopping ``lp`` in its own thread (under ``lock``)."""
        if pod is not None and pod.metadata.deletion_timestamp:
            deadline = _parse_time(pod.metadata.deletion_timestamp)
        else:
            deadline = self.clock() + STOP_GRACE
        job = _Termination(lp, pod, deadline, pre_stop=pod is not None, finalize=pod is not None)
        self.jobs[lp.key] = job
        self.prober.terminating(lp.key)
        if pod is not None:
            for st in lp.containers:
                if running(st):
                    self.events.record(pod, "Normal", "Killing", f"Stopping container {st.name}", _field(st.name))
        job.thread = threading.Thread(target=self._run_termination, args=(job,), name=f"stop-{lp.name}",
                                      daemon=True)
        job.thread.start()

    def _shorten(self, job: _Termination, pod: Pod | None) -> None:
        if pod is None:
            job.deadline = min(job.deadline, self.clock() + STOP_GRACE)
            job.finalize = False
        elif pod.metadata.deletion_timestamp:
            job.deadline = min(job.deadline, _parse_time(pod.metadata.deletion_timestamp))
            job.pod = pod

    def _run_termination(self, job: _Termination) -> None:
        lp = job.lp
        try:
            spec = {c.name: c for c in job.pod.spec.containers} if job.pod else {}
            workers = [threading.Thread(target=self._stop_one, args=(job, st, spec.get(st.name)), daemon=True)
                       for st in lp.containers]
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            with self.lock:
                self._report(lp)
            self.teardown(lp)
            if job.finalize and job.pod is not None:
                self._finalize(job.pod)
        except Exception:
            log.exception("termination of %s/%s failed", lp.namespace, lp.name)
        finally:
            with self.lock:
                self.jobs.pop(lp.key, None)
            job.done.set()

    def _stop_one(self, job: _Termination, st: ContainerState, c: Container | None) -> None:
        self._kill_container(job.pod, job.lp, st, c, lambda: job.deadline, job.pre_stop)
        with self.lock:
            if st.pid and not st.finished:
                self._note_exit(job.lp, st)
                st.finished, st.pid = True, 0
                self._report(job.lp)

    def _finalize(self, pod: Pod) -> None:
        """The pod's processes and address are gone: remove it from the store (grace 0)."""
        try:
            self.store.delete(Pod, pod.name, pod.namespace, grace_period_seconds=0, uid=pod.metadata.uid)
        except PodnetError as exc:
            log.warning("pod %s/%s not removed from the store: %s", pod.namespace, pod.name, exc)

    # ---- teardown ------------------------------------------------------------------------------

    def _stop_all(self, lps: Iterable[LocalPod]) -> None:
        """SIGTERM every container of ``lps`` at once, one grace period, then SIGKILL; our own
        children are reaped."""
        lps = list(lps)
        stop_recorded(lps, STOP_GRACE)
        for lp in lps:
            for st in lp.containers:
                with self.lock:
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
        self._stop_all([lp])
        self._cni_del(lp)
        if self._sandbox_is_ours(lp):
            netns.remove(lp.netns)
        elif lp.netns:
            netns.remove_stale(lp.netns)  # a start killed between claiming the name and mounting
        self.prober.remove(lp.key)
        with self.lock:
            if self.local.get(lp.key) is lp:
                del self.local[lp.key]
            self._probed.discard(lp.key)
            self._written.pop(lp.key, None)
            self.retry_at.pop(lp.key, None)
        shutil.rmtree(os.path.dirname(self._state_file(lp)), ignore_errors=True)
        log.info("pod %s/%s torn down", lp.namespace, lp.name)

    def teardown_all(self) -> None:
        """Every pod of this node (agent shutdown): pods under termination get what is left of
        a 2 s grace; the others are stopped together, then the CNI DELs and namespace removals
        run in parallel, so a node with many pods stops quickly."""
        with self.lock:
            jobs = list(self.jobs.values())
            for job in jobs:
                job.deadline = min(job.deadline, self.clock())
            lps = [lp for key, lp in self.local.items() if key not in self.jobs]
        self._stop_all(lps)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self.teardown, lps))
        for job in jobs:
            job.done.wait(timeout=STOP_GRACE + 10)
        self.prober.close()
        self.events.flush()


def _field(container: str) -> str:
    return f"spec.containers{{{container}}}"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
