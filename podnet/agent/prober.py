"""The kubelet's probe workers: one per probe of each running container, each with its own
period, thresholds and result; a startup probe holds the container's others back until it
passes; liveness and startup stop (as passed) once the pod is being deleted, readiness goes
on until the container has stopped.

One scheduler thread hands due probes to a small pool (a probe may block up to its timeout);
results are applied under one lock and reported through three callbacks, outside that lock:
``on_change(pod)`` when the pod's readiness or started state changed, ``on_failure(pod,
container, kind, message)`` for every failed probe (the kubelet's Unhealthy event), and
``on_unhealthy(pod, container, kind)`` when liveness or startup reached failureThreshold (the
container is to be killed; its workers hold until it starts again).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from podnet.model.probes import Probe

from . import probes
from .probes import Target

KINDS = ("startup", "readiness", "liveness")
PodKey = tuple[str, str]  # (namespace, name)


@dataclass
class _Worker:
    pod: PodKey
    container: str
    kind: str
    probe: Probe
    target: Target | None = None
    running: bool = False
    result: bool = False  # readiness: ready; startup: passed; liveness: failed threshold reached
    last: bool | None = None
    run: int = 0
    on_hold: bool = False
    busy: bool = False
    next_at: float = 0.0
    generation: int = 0


@dataclass
class _Pod:
    workers: dict[tuple[str, str], _Worker] = field(default_factory=dict)
    terminating: bool = False


class ProbeManager:
    def __init__(self, on_change: Callable[[PodKey], None],
                 on_failure: Callable[[PodKey, str, str, str], None],
                 on_unhealthy: Callable[[PodKey, str, str], None],
                 clock: Callable[[], float] = time.monotonic, threads: int = 16) -> None:
        self.on_change, self.on_failure, self.on_unhealthy = on_change, on_failure, on_unhealthy
        self.clock = clock
        self._pods: dict[PodKey, _Pod] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="probe")
        self._thread: threading.Thread | None = None
        self.runs = 0

    # ---- what the pod runner tells -------------------------------------------------------------

    def set_probes(self, pod: PodKey, container: str, probes_: dict[str, Probe | None]) -> None:
        """The container's probes by kind (readiness, liveness, startup); None = none."""
        with self._lock:
            entry = self._pods.setdefault(pod, _Pod())
            for kind in KINDS:
                probe = probes_.get(kind)
                key = (container, kind)
                if probe is None:
                    entry.workers.pop(key, None)
                elif key not in entry.workers:
                    entry.workers[key] = _Worker(pod, container, kind, probe)
        self._ensure_thread()

    def container_started(self, pod: PodKey, container: str, target: Target) -> None:
        """A (new) container runs: its workers start over, first probe after initialDelaySeconds."""
        now = self.clock()
        with self._lock:
            for w in self._workers_of(pod, container):
                w.target, w.running, w.on_hold = target, True, False
                w.result, w.last, w.run = False, None, 0
                w.generation += 1
                w.next_at = now + w.probe.delay
        self._wake.set()

    def container_stopped(self, pod: PodKey, container: str) -> None:
        with self._lock:
            for w in self._workers_of(pod, container):
                w.running, w.result, w.generation = False, False, w.generation + 1

    def terminating(self, pod: PodKey) -> None:
        """The pod is being deleted: liveness and startup stop; readiness goes on."""
        with self._lock:
            entry = self._pods.get(pod)
            if entry is not None:
                entry.terminating = True

    def remove(self, pod: PodKey) -> None:
        with self._lock:
            self._pods.pop(pod, None)

    # ---- what the status asks --------------------------------------------------------------------

    def has(self, pod: PodKey, container: str, kind: str) -> bool:
        with self._lock:
            entry = self._pods.get(pod)
            return entry is not None and (container, kind) in entry.workers

    def result(self, pod: PodKey, container: str, kind: str) -> bool | None:
        """Readiness: ready; startup: passed; None when the container has no such probe."""
        with self._lock:
            entry = self._pods.get(pod)
            w = entry.workers.get((container, kind)) if entry else None
            return None if w is None else w.result

    # ---- the scheduler ---------------------------------------------------------------------------

    def _workers_of(self, pod: PodKey, container: str) -> list[_Worker]:
        entry = self._pods.get(pod)
        return [w for (c, _), w in entry.workers.items() if c == container] if entry else []

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="prober", daemon=True)
            self._thread.start()

    def _active(self, entry: _Pod, w: _Worker) -> bool:
        if not w.running or w.on_hold or w.busy or w.target is None:
            return False
        if w.kind == "startup":
            return not w.result and not entry.terminating
        if w.kind == "liveness" and entry.terminating:
            return False
        startup = entry.workers.get((w.container, "startup"))
        return startup is None or startup.result

    def _loop(self) -> None:
        while not self._stop.is_set():
            due: list[tuple[_Worker, int]] = []
            with self._lock:
                now = self.clock()
                wait = 1.0
                for entry in self._pods.values():
                    for w in entry.workers.values():
                        if not self._active(entry, w):
                            continue
                        if w.next_at <= now:
                            w.busy = True
                            w.next_at = now + w.probe.period
                            due.append((w, w.generation))
                        else:
                            wait = min(wait, w.next_at - now)
            for w, gen in due:
                self._pool.submit(self._probe, w, gen)
            self._wake.wait(max(0.005, wait))
            self._wake.clear()

    def _probe(self, w: _Worker, generation: int) -> None:
        assert w.target is not None
        try:
            outcome = probes.run(w.probe.handler, w.target, float(w.probe.timeout))
        except Exception as exc:  # a prober bug must not kill the worker: count it as failed
            outcome = probes.Result(False, f"probe errored: {exc}")
        self.runs += 1
        changed = unhealthy = False
        with self._lock:
            w.busy = False
            entry = self._pods.get(w.pod)
            if entry is None or generation != w.generation or not w.running:
                return
            if entry.terminating and w.kind != "readiness":
                return
            w.run = w.run + 1 if w.last == outcome.ok else 1
            w.last = outcome.ok
            threshold = w.probe.successes if outcome.ok else w.probe.failures
            if w.run >= threshold:
                if w.kind == "readiness":
                    changed, w.result = w.result != outcome.ok, outcome.ok
                elif w.kind == "startup" and outcome.ok:
                    changed, w.result = True, True
                    for other in self._workers_of(w.pod, w.container):
                        other.next_at = self.clock()
                elif not outcome.ok:  # liveness or startup failed: the container is killed
                    unhealthy, w.on_hold, w.run = True, True, 0
        if not outcome.ok:
            self.on_failure(w.pod, w.container, w.kind, outcome.message)
        if changed:
            self._wake.set()
            self.on_change(w.pod)
        if unhealthy:
            self.on_unhealthy(w.pod, w.container, w.kind)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
