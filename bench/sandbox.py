"""Container start cost: a process in a pod's network namespace (what `podnet agent
--no-sandbox` does) vs the same process in a bubblewrap sandbox (the default), interleaved
in one namespace of our own. Timed from the call until the agent knows the PID it records
(the sandbox's init: bwrap's --info-fd report), then the process is killed outside the timer.

Usage: sudo .venv/bin/python bench/sandbox.py [--runs 200]
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.kernel import netns  # noqa: E402
from podnet.workloads import sandbox  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    runs = ap.parse_args().runs
    ns = f"psb-{secrets.token_hex(3)}"
    netns.create(ns)
    work = tempfile.mkdtemp(prefix="podnet-bench-")
    files = {}
    for name in ("hosts", "hostname", "resolv.conf"):
        files[f"/etc/{name}"] = os.path.join(work, name)
        with open(files[f"/etc/{name}"], "w") as f:
            f.write("bench\n")
    spec = sandbox.SandboxSpec("bench", files=files)
    argv = ["/bin/sleep", "60"]
    plain: list[float] = []
    boxed: list[float] = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = netns.popen_in(ns, argv, stdin=subprocess.DEVNULL, start_new_session=True)
            plain.append(time.perf_counter() - t0)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            t0 = time.perf_counter()
            proc, init = sandbox.start(spec, argv, netns.nsenter_argv(ns, []), stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            boxed.append(time.perf_counter() - t0)
            os.kill(init, signal.SIGKILL)
            proc.wait()
    finally:
        netns.remove(ns)
        for path in files.values():
            os.unlink(path)
        os.rmdir(work)
    print(f"== container start, {runs} interleaved runs (ms): p50 / p99 / mean")
    for label, xs in (("plain process in the pod's netns", plain), ("bubblewrap sandbox, init PID known", boxed)):
        print(f"  {label:36s} {pct(xs, 50) * 1000:6.1f} / {pct(xs, 99) * 1000:6.1f} / "
              f"{statistics.mean(xs) * 1000:6.1f}")
    print(f"  sandbox / plain (p50): {pct(boxed, 50) / pct(plain, 50):.1f}x;"
          f" 100 containers over the agent's 8 start workers add ~{(pct(boxed, 50) - pct(plain, 50)) * 100 / 8:.2f} s")


if __name__ == "__main__":
    main()
