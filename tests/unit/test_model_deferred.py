"""Model validators are built on first use, not at import (a process's start is part of a
restarted loop's convergence), and building them from many threads at once is safe."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading, time
t0 = time.perf_counter()
from podnet.model import NetworkPolicy, Pod
from podnet.model.admin_policy import AdminNetworkPolicy
print("built-at-import", Pod.__pydantic_complete__, NetworkPolicy.__pydantic_complete__,
      AdminNetworkPolicy.__pydantic_complete__)
doc = {"metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"}},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
start, errors, names = threading.Barrier(16), [], []
def first_use():
    start.wait()
    try:
        names.append(Pod.model_validate(doc).metadata.name)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_use) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", len(names), names.count("p"), errors)
print("built-after-use", Pod.__pydantic_complete__)
"""


def test_models_are_built_on_first_use_and_safely_from_threads() -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert lines["built-at-import"] == "False False False", "validators were built at import"
    assert lines["threads"] == "16 16 []", lines["threads"]
    assert lines["built-after-use"] == "True"
