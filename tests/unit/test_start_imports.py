"""What a node process loads to start: only what its first pass needs (the lab starts about
seven interpreters per node at once, and on two CPUs their imports are most of `podnet up`)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from podnet.cluster.bytecode import compile_podnet
from podnet.model.registry import KINDS


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


def test_flow_logger_starts_without_the_policy_model() -> None:
    mods = loaded_after("import podnet.cli.flows_cmd, podnet.agent.flow_logger")
    assert "podnet.agent.flow_logger" in mods
    assert not {m for m in mods if m.startswith(("pydantic", "podnet.model", "podnet.policy.ir"))}


def test_agent_starts_without_pyroute2() -> None:
    # what run_node imports before its first pass (pod ADD runs on podnet's own rtnetlink code)
    mods = loaded_after("import podnet.agent.node, podnet.cni.handler, podnet.agent.pods, podnet.agent.core\n"
                        "from podnet.agent.routing import pod_mtu")
    assert "podnet.kernel.podwire" in mods
    assert not {m for m in mods if m.startswith("pyroute2")}


def test_policy_package_names_load_on_first_use() -> None:
    mods = loaded_after("import podnet.policy.tiers")
    assert "podnet.policy.cluster" not in mods
    mods = loaded_after("from podnet.policy import ClusterState, resolve\nassert ClusterState and resolve")
    assert {"podnet.policy.cluster", "podnet.policy.resolve"} <= mods


def test_model_fields_are_not_annotation_strings() -> None:
    # a string annotation is compiled and evaluated by pydantic when the class is made
    seen: set[type] = set()
    todo: list[type] = list(KINDS)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        quoted = {name: a for name, a in vars(cls).get("__annotations__", {}).items() if isinstance(a, str)}
        assert not quoted, f"{cls.__module__}.{cls.__name__}: {quoted}"
        todo += [b for b in cls.__mro__[1:] if b.__module__.startswith("podnet.model")]
        for field in cls.model_fields.values():  # type: ignore[attr-defined]
            todo += [t for t in getattr(field.annotation, "__args__", ()) + (field.annotation,)
                     if isinstance(t, type) and t.__module__.startswith("podnet.model")]
    assert len(seen) > len(KINDS)


def test_compile_writes_bytecode_once(tmp_path: os.PathLike[str]) -> None:
    pkg = os.path.join(tmp_path, "pkg")
    os.makedirs(pkg)
    for name in ("__init__", "a", "b"):
        with open(os.path.join(pkg, f"{name}.py"), "w") as f:
            f.write(f"X = {name!r}\n")
    assert compile_podnet(pkg)
    pycs = {p: os.stat(os.path.join(pkg, "__pycache__", p)).st_mtime_ns
            for p in os.listdir(os.path.join(pkg, "__pycache__"))}
    assert {importlib.util.cache_from_source(os.path.join(pkg, "a.py")).rsplit("/", 1)[1]} <= set(pycs)
    assert len(pycs) == 3
    assert compile_podnet(pkg)  # current: nothing is rewritten
    assert pycs == {p: os.stat(os.path.join(pkg, "__pycache__", p)).st_mtime_ns for p in pycs}
