"""The pod runner driven directly (no agent process): what a failed or interrupted pod start
leaves behind, and which namespaces it may touch. The CNI plugin is the real one, served by
the node's CNI socket (the ``lab`` fixture)."""
from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator

import pytest

from podnet.agent.pods import PodRunner, pod_dir, pod_netns_name, podbin_dir, proc_start_time
from podnet.kernel import netns
from podnet.model.core import Pod
from podnet.store.open import open_store
from podnet.testing.cni_lab import Lab
from podnet.workloads.podbin import ensure_podbin

pytestmark = pytest.mark.kernel


class Node:
    """A PodRunner for one node of the lab, its store and the pods it was asked to run."""

    def __init__(self, the_lab: Lab) -> None:
        self.lab = the_lab
        self.name = f"{the_lab.prefix}n1"
        self.store = open_store(the_lab.state_dir)
        self.podbin = ensure_podbin(podbin_dir(the_lab.state_dir))
        self.runners: list[PodRunner] = []

    def runner(self, cni_bin: str | None = None) -> PodRunner:
        rt = self.lab.runtime()
        if cni_bin is not None:
            rt = type(rt)(rt.conflist, bin_dirs=(cni_bin,), netns_exec=rt.netns_exec)
        r = PodRunner(self.store, self.name, self.lab.state_dir, rt, self.podbin)
        self.runners.append(r)
        return r

    def create(self, name: str, *commands: list[str]) -> Pod:
        containers = [{"name": f"c{i}", "image": "busybox", "command": cmd} for i, cmd in enumerate(commands)]
        return self.store.create(Pod.model_validate({  # type: ignore[return-value]
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": self.name, "containers": containers}}))

    def netns_of(self, pod: Pod) -> str:
        return pod_netns_name(self.name, "default", pod.name, pod.metadata.uid or "")


@pytest.fixture
def node(lab: Lab) -> Iterator[Node]:
    n = Node(lab)
    try:
        yield n
    finally:
        for r in reversed(n.runners):  # whatever a failing test left running
            r.teardown_all()
        n.store.close()


def _pods_running_in(directory: str) -> list[int]:
    """The sandboxes started for the pod: the init each bwrap monitor (run in the pod's
    directory) made."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(directory) and proc_start_time(int(pid)):
                    with open(f"/proc/{pid}/task/{pid}/children") as f:
                        out += [int(child) for child in f.read().split()]
            except OSError:
                pass
    return out


def _handles(the_lab: Lab) -> dict:
    return {h: v for h, v in the_lab.ipam().handles().items() if v.get("containerID")}


def test_failed_start_leaves_no_netns_address_or_process(node: Node) -> None:
    """The second container cannot be started (its argv has a NUL byte, which exec refuses):
    the first container, the CNI attachment and the namespace are all undone."""
    pod = node.create("broken", ["sleep", "36000"], ["sleep", "36\x00000"])
    runner = node.runner()
    runner.reconcile(node.store.snapshot())  # must not raise: one pod cannot stop the pass
    ns = node.netns_of(pod)
    assert not netns.exists(ns)
    assert _pods_running_in(pod_dir(node.lab.state_dir, node.name, "default", "broken")) == []
    assert _handles(node.lab) == {}
    assert ("default", "broken") not in runner.local
    status = node.store.get(Pod, "broken", "default")
    assert status is not None and status.status.phase == "Pending" and "null byte" in (status.status.message or "")


def test_plugin_with_garbage_output_leaves_no_netns(node: Node, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A plugin that answers ADD with something that is not JSON: the sandbox is removed and
    the pod is retried later, as for any other CNI failure."""
    bad = tmp_path / "badbin"
    bad.mkdir()
    exe = bad / "podnet-cni"
    exe.write_text("#!/bin/sh\necho 'this is not json'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    pod = node.create("p1", ["sleep", "36000"])
    runner = node.runner(cni_bin=str(bad))
    runner.reconcile(node.store.snapshot())
    assert not netns.exists(node.netns_of(pod))
    assert ("default", "p1") not in runner.local and ("default", "p1") in runner.retry_at


def test_never_removes_a_namespace_of_the_same_name_it_did_not_make(node: Node) -> None:
    """Another cluster (or test run) with the same node and pod names: its pod namespace is
    podnet's, but not this pod's sandbox, so the runner must leave it alone."""
    pod = node.create("twin", ["sleep", "36000"])
    ns = node.netns_of(pod)
    ino = netns.create(ns, owner="pod:someone-else")
    try:
        runner = node.runner()
        runner.reconcile(node.store.snapshot())
        assert netns.exists(ns) and netns.inode(ns) == ino
        assert ("default", "twin") not in runner.local
        got = node.store.get(Pod, "twin", "default")
        assert got is not None and got.status.phase == "Pending" and ns in (got.status.message or "")
        assert _handles(node.lab) == {}
    finally:
        netns.remove(ns)


def test_netns_name_keeps_the_uid_when_names_are_long() -> None:
    uid_a, uid_b = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "0f1e2d3c-ffff-6978-8796-a5b4c3d2e1f0"
    long = "x" * 250
    a, b = pod_netns_name("n1", "default", long, uid_a), pod_netns_name("n1", "default", long, uid_b)
    assert a != b and len(a) <= 200 and len(b) <= 200
    # two clusters with the same node and pod names differ by uid only: more than 24 bits of it
    c = pod_netns_name("n1", "default", "web", "0f1e2d-aaaa")
    d = pod_netns_name("n1", "default", "web", "0f1e2d-bbbb")
    assert c != d


def test_restart_after_a_crash_mid_start_leaves_one_sandbox(node: Node) -> None:
    """The agent died after starting the pod's process but before recording the pod as
    Running: the next agent stops the recorded process, replaces the sandbox and starts once."""
    pod = node.create("half", ["sleep", "36000"])
    first = node.runner()
    first.reconcile(node.store.snapshot())
    lp = first.local[("default", "half")]
    old_pid = lp.containers[0].pid
    path = os.path.join(pod_dir(node.lab.state_dir, node.name, "default", "half"), "pod.json")
    with open(path) as f:
        rec = json.load(f)
    rec["phase"] = "Pending"  # what is on disk when the crash hits before the final save
    with open(path, "w") as f:
        json.dump(rec, f)
    second = node.runner()
    try:
        second.reconcile(node.store.snapshot())
        new = second.local[("default", "half")]
        assert new.phase == "Running" and new.containers[0].pid != old_pid
        assert proc_start_time(old_pid) is None
        assert _pods_running_in(pod_dir(node.lab.state_dir, node.name, "default", "half")) == [new.containers[0].pid]
        assert netns.exists(node.netns_of(pod)) and len(_handles(node.lab)) == 1
    finally:
        second.teardown_all()
        first.local.clear()  # the same pod, now the second runner's
    assert not netns.exists(node.netns_of(pod)) and _handles(node.lab) == {}


def test_a_workload_whose_only_port_the_kernel_cannot_serve_stays_up(prefix: str) -> None:
    """agnhost with only an SCTP port on a kernel without SCTP: the port is reported as not
    served (in the log) and the container keeps running, instead of exiting into a restart loop."""
    import subprocess
    import time

    from podnet.workloads.images import PYTHON, SERVE_SCRIPT
    from podnet.workloads.serve import sctp_supported

    if sctp_supported():
        pytest.skip("this kernel serves SCTP")
    name = f"{prefix}wl"
    netns.create(name)
    proc = None
    try:
        proc = netns.popen_in(name, [PYTHON, "-IS", SERVE_SCRIPT, "serve", "--name", "x", "sctp:9999"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1.5)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        netns.remove(name)


def test_a_pod_whose_namespace_vanished_is_started_again(node: Node) -> None:
    """After a reboot (/run is gone, the records in the state directory are not) or an `ip netns
    del` by hand, a recorded pod has no sandbox: it is torn down and started afresh, instead of
    failing to restart its containers on every pass."""
    pod = node.create("lost", ["sleep", "36000"])
    runner = node.runner()
    runner.reconcile(node.store.snapshot())
    ns = node.netns_of(pod)
    old_pid = runner.local[("default", "lost")].containers[0].pid
    netns.remove(ns)
    runner.reconcile(node.store.snapshot())
    lp = runner.local[("default", "lost")]
    assert netns.exists(ns) and lp.phase == "Running" and lp.containers[0].pid != old_pid
    assert proc_start_time(old_pid) is None
    assert len(_handles(node.lab)) == 1


def test_a_pass_over_pods_reports_progress_after_each_pod(node: Node) -> None:
    """The agent's watchdog is fed from the pass after each pod it starts or supervises: a pass
    over many pods on a busy machine outlasts the watchdog, and killing it mid-start loses every
    half-made pod."""
    for i in range(3):
        node.create(f"prog{i}", ["sleep", "36000"])
    node.create("prog-bad", ["/no/such/command"])  # a failed start is progress too
    r = node.runner()
    ticks: list[int] = []
    r.progress = lambda: ticks.append(len(r.local))
    r.reconcile(node.store.snapshot())
    assert len(ticks) == 4, ticks
    assert {"prog0", "prog1", "prog2"} <= {name for _, name in r.local}
    ticks.clear()
    r.reconcile(node.store.snapshot())  # and after each pod it supervised
    assert len(ticks) == len(r.local) >= 3, ticks
