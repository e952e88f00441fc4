"""The long run of the manifest property (tests/unit/manifest_mutations.py) and the large inputs.

    fuzz_manifests.py [--count 10000] [--seed 1] [--timeout 10]   mutated manifests, in process
    fuzz_manifests.py --large                                     10 MB hostile inputs, one process each

Prints one line per category — accepted, refused, traceback, unlocated, partial, hang — and
keeps every input that broke a promise in ./fuzz-failures/ (replay: podnet apply -f FILE). The
large mode prints, per input and command, the exit code, wall and CPU seconds and peak RSS.
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "unit"))

from manifest_mutations import Violation, check_apply, check_read, generate, seeds  # noqa: E402


class Hang(BaseException):
    """An input took longer than --timeout (a BaseException, so no handler under test takes it)."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def mutated(count: int, seed: int, timeout: float) -> int:
    from podnet.store.open import open_store

    pool = seeds()
    counts: collections.Counter[str] = collections.Counter()
    slowest = (0.0, -1)
    work = tempfile.mkdtemp(prefix="podnet-fuzz-")
    failures = os.path.abspath("fuzz-failures")
    state = os.path.join(work, "state")
    signal.signal(signal.SIGALRM, _alarm)
    started = time.monotonic()
    try:
        for index in range(count):
            if index % 500 == 0:
                shutil.rmtree(state, ignore_errors=True)
                open_store(state).close()
            generated = generate(random.Random(seed * 1_000_003 + index), pool)
            path = os.path.join(work, generated.filename)
            with open(path, "wb") as handle:
                handle.write(generated.data)
            begun = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, timeout)
            faulthandler.dump_traceback_later(timeout * 2)  # where it is stuck, even inside C code
            try:
                problems = check_read(path)
                code = check_apply(path, state)
                counts["accepted" if code == 0 else "refused"] += 1
                if problems and code == 0:
                    raise Violation("partial", "read refused it, apply accepted it")
            except Violation as exc:
                counts[exc.kind] += 1
                _keep(failures, index, generated, str(exc))
            except Hang:
                counts["hang"] += 1
                _keep(failures, index, generated, f"no answer within {timeout} s")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.cancel_dump_traceback_later()
            slowest = max(slowest, (time.monotonic() - begun, index))
            if (index + 1) % 1000 == 0:
                print(f"  {index + 1:,} inputs, {dict(counts)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{count:,} inputs (seed {seed}) in {elapsed:.0f} s; slowest {slowest[0]:.2f} s (input {slowest[1]}); "
          f"peak RSS {rss} MB")
    for kind in ("accepted", "refused", "traceback", "unlocated", "partial", "hang"):
        print(f"  {kind:10} {counts[kind]:,}")
    return 1 if any(counts[k] for k in ("traceback", "unlocated", "partial", "hang")) else 0


def _keep(directory: str, index: int, generated: object, why: str) -> None:
    os.makedirs(directory, exist_ok=True)
    name = os.path.join(directory, f"{index:06d}-{generated.filename}")  # type: ignore[attr-defined]
    with open(name, "wb") as handle:
        handle.write(generated.data)  # type: ignore[attr-defined]
    with open(name + ".why", "w") as handle:
        handle.write(why + "\n")


LIMIT = 10 * 1024 * 1024 - 64


def large_inputs() -> dict[str, str]:
    """Inputs of just under 10 MiB shaped to cost the most per byte."""
    def fill(unit: str, head: str = "", tail: str = "") -> str:
        return head + unit * ((LIMIT - len(head) - len(tail)) // len(unit)) + tail

    pod = ("- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: web-{i}\n    namespace: default\n"
           "    labels: {{app: web, tier: t{t}}}\n  spec:\n    containers:\n    - name: c\n      image: nginx\n"
           "      ports:\n      - containerPort: 80\n  status:\n    podIP: 10.{a}.{b}.{c}\n")
    dump, i = ["apiVersion: v1\nkind: List\nitems:\n"], 0
    size = len(dump[0])
    while size < LIMIT - 400:
        item = pod.format(i=i, t=i % 5, a=244 + i // 65536 % 10, b=i // 256 % 256, c=i % 256)
        dump.append(item)
        size += len(item)
        i += 1
    return {
        "document-separators": fill("---\n"),
        "empty-documents-with-values": fill("--- a\n"),
        "keys": fill("k: v\n", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  annotations:\n", ""),
        "flow-list": fill("1,", "x: [", "1]\n"),
        "flow-empties": fill("[],", "x: [", "[]]\n"),
        "block-list": fill("- a\n", "x:\n"),
        "json-array": fill("1,", "[", "1]"),
        "deep-and-wide": fill("[[[[[[[[[[]]]]]]]]]],", "x: [", "1]\n"),
        "slips": fill("port:80\n"),
        "tabs": fill("a:\n\tb: c\n"),
        "aliases": fill("- *a\n", "a: &a [1,2,3,4,5,6,7,8,9,10]\nx:\n"),
        "duplicate-keys": fill("  name: y\n", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n"),
        "bad-objects": fill("apiVersion: v1\nkind: Pod\nmetadata:\n  name: X\n---\n"),
        "pod-dump": "".join(dump),
    }


def _measure(argv: list[str], timeout: float = 120.0) -> tuple[int, float, float, int, str]:
    """(exit code, wall s, CPU s, peak RSS MB, output) of one process, killed after ``timeout``."""
    import threading

    begun = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    assert proc.stdout is not None
    err = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, time.monotonic() - begun, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, err)


def large() -> int:
    work = tempfile.mkdtemp(prefix="podnet-fuzz-large-")
    podnet = os.path.join(os.path.dirname(sys.executable), "podnet")
    worst_wall = worst_cpu = 0.0
    worst_rss = 0
    failed = 0
    print(f"{'input':28} {'command':7} {'size':>9}  exit   wall    CPU    RSS  first line of the answer")
    try:
        for name, text in large_inputs().items():
            path = os.path.join(work, name + (".json" if name.startswith("json") else ".yaml"))
            with open(path, "w") as handle:
                handle.write(text)
            for command in (["apply", "-f", path], ["lint", "-f", path]):
                state = os.path.join(work, "state")
                shutil.rmtree(state, ignore_errors=True)
                code, wall, cpu, rss, err = _measure([podnet, "--state-dir", state, *command])
                lines = [line.strip() for line in err.splitlines() if line.strip()]
                said = next((line for line in lines if path in line), lines[0] if lines else "").replace(path, name)
                print(f"{name:28} {command[0]:7} {len(text) / 1048576:5.1f} MiB  {code:4}  {wall:5.1f}s  {cpu:5.1f}s "
                      f"{rss:4} MB  {said[:80]}", flush=True)
                worst_wall, worst_cpu, worst_rss = max(worst_wall, wall), max(worst_cpu, cpu), max(worst_rss, rss)
                failed += code not in (0, 1) or "Traceback" in err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"slowest answer {worst_wall:.1f} s wall, {worst_cpu:.1f} s CPU; largest peak RSS {worst_rss} MB; "
          f"{failed} crashes")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds an input may take")
    parser.add_argument("--large", action="store_true", help="the 10 MB inputs instead")
    args = parser.parse_args()
    return large() if args.large else mutated(args.count, args.seed, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
