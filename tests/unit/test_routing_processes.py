"""Cluster processes are stopped by recorded PID only while that PID still runs the recorded
command (PIDs get reused), all at once, and stopping twice is harmless."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys

from podnet.cluster.processes import ProcessRecord, alive, start, stop, stop_all


def test_start_alive_stop(tmp_path):
    log = str(tmp_path / "logs" / "p.log")
    recs = [start(f"p{i}", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"], log)
            for i in range(3)]
    assert all(alive(r) for r in recs)
    assert ProcessRecord.from_dict(recs[0].to_dict()) == recs[0]
    # Same PID, different command: not ours, so never signalled.
    impostor = dataclasses.replace(recs[0], argv=("/bin/true",))
    assert not alive(impostor) and not stop(impostor)
    assert alive(recs[0])
    assert sorted(r.pid for r in stop_all(recs, timeout=5)) == sorted(r.pid for r in recs)
    assert not any(alive(r) for r in recs)
    assert stop_all(recs) == [] and not stop(recs[0])
    assert os.path.exists(log)


def test_routing_loop_refuses_a_namespace_podnet_did_not_create(tmp_path):
    """Started by hand outside a node namespace, the loop would install routes, a VTEP, a NAT
    table and BIRD in the machine's own namespace: it refuses before touching anything."""
    import subprocess

    from podnet.kernel.netns import current_owned

    assert current_owned() is None  # the test suite runs in the machine's namespace
    proc = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", str(tmp_path), "routing-loop",
                           "--node", "n1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "not in a network namespace podnet created" in proc.stderr and "--host-network" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_alive_right_after_start(tmp_path):
    """Popen returns once exec has begun, a moment before the kernel shows the new command
    line (/proc/PID/cmdline reads empty): a process just started is alive all the same (`up`
    checks its processes at once and took that moment for a crash)."""
    log = str(tmp_path / "p.log")
    recs = []
    try:
        for i in range(150):
            rec = start(f"p{i}", ["sleep", "30"], log)
            recs.append(rec)
            assert alive(rec), f"start {i}: {rec.pid} not seen alive"
            if len(recs) >= 25:
                stop_all(recs, timeout=5)
                recs = []
    finally:
        stopped = stop_all(recs, timeout=5)
        for rec in recs:  # judged not alive: still our unreaped children, so the PID is still theirs
            if rec not in stopped:
                os.kill(rec.pid, signal.SIGKILL)
                os.waitpid(rec.pid, 0)
