"""``podnet install-cni``: put the plugin where runtimes look and write its conflist.

The executable is ``plugin.py`` with the paths podnet lives in written into it (used only on
its in-process fallback path), shipped precompiled: Python never caches the bytecode of the
script it is started with, and compiling plugin.py would be paid on every CNI call. The code
object is marshalled into the file for the interpreter that installed it; any other
interpreter compiles the embedded source instead. The conflist names the node, the state
directory and the agent's socket, which is all the thin plugin needs to find its agent.
"""
from __future__ import annotations

import json
import marshal
import os
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, TypedDict, Unpack

from .spec import IPAM_TYPE, LATEST, PLUGIN_TYPE

PLUGIN_NAME = PLUGIN_TYPE
CONFLIST_NAME = "10-podnet.conflist"


def podnet_paths() -> list[str]:
    """Where ``import podnet`` and its dependencies resolve from in this interpreter."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(paths))


def plugin_body(agent_socket_path: str = "") -> str:
    """plugin.py without its shebang, with the fallback path and the agent socket filled in."""
    src = (Path(__file__).parent / "plugin.py").read_text()
    body = src.split("\n", 1)[1]
    body = body.replace('FALLBACK_PATH: "list[str]" = []', f'FALLBACK_PATH: "list[str]" = {podnet_paths()!r}', 1)
    return body.replace('AGENT_SOCKET = ""', f"AGENT_SOCKET = {agent_socket_path!r}", 1)


def plugin_source(agent_socket_path: str = "", python: str = "/usr/bin/python3") -> str:
    """The executable's text: a precompiled ``plugin_body`` for this interpreter, the source
    for any other. Marshal format 2 has no back-references, so the bytes depend only on the
    source (concurrent installs write identical files)."""
    body = plugin_body(agent_socket_path)
    blob = marshal.dumps(compile(body, PLUGIN_NAME, "exec", optimize=2), 2)  # no docstrings to load
    this = (sys.implementation.cache_tag, sys.hexversion)
    return (f"#!{python} -IS\n"
            "# podnet-cni, written by `podnet install-cni` from podnet/cni/plugin.py: the code object for\n"
            "# the interpreter that installed it (no compile at start), else the same source compiled.\n"
            "import sys\n"
            f"if (sys.implementation.cache_tag, sys.hexversion) == {this!r}:\n"
            f"    exec(__import__('marshal').loads({blob!r}))\n"
            "else:\n"
            f"    exec(compile({body!r}, {PLUGIN_NAME!r}, 'exec'))\n")


class ConflistOptions(TypedDict, total=False):
    """The conflist settings ``install`` passes through to ``conflist``."""

    name: str
    mtu: int
    cni_version: str
    pod_cidr: str
    socket: str | None


def conflist(node: str, state_dir: str, *, name: str = "k8s-pod-network", mtu: int = 1500,
             cni_version: str = LATEST, pod_cidr: str = "10.244.0.0/16", socket: str | None = None) -> dict[str, Any]:
    return {
        "cniVersion": cni_version, "name": name,
        "plugins": [{"type": PLUGIN_TYPE, "mtu": mtu, "nodeName": node, "stateDir": state_dir,
                     "agentSocket": socket or agent_socket(state_dir, node),
                     # runtimes pass runtimeConfig.portMappings (podman -p, a kubelet's hostPort)
                     "capabilities": {"portMappings": True},
                     "ipam": {"type": IPAM_TYPE, "podCIDR": pod_cidr}}],
    }


def agent_socket(state_dir: str, node: str) -> str:
    return os.path.join(os.path.abspath(state_dir), "nodes", node, "cni.sock")


def install(bin_dir: str, conf_dir: str, node: str, state_dir: str, **conf: Unpack[ConflistOptions]) -> tuple[str, str]:
    """Write ``<bin_dir>/podnet-cni`` (0755) and ``<conf_dir>/10-podnet.conflist``; returns both paths."""
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(conf_dir, exist_ok=True)
    exe = os.path.join(bin_dir, PLUGIN_NAME)
    _write_replace(exe, plugin_source(str(conf.get("socket") or agent_socket(state_dir, node))), 0o755)
    path = os.path.join(conf_dir, CONFLIST_NAME)
    _write_replace(path, json.dumps(conflist(node, os.path.abspath(state_dir), **conf), indent=2), 0o644)
    return exe, path


def _write_replace(path: str, text: str, mode: int) -> None:
    """Write to a temporary file of this process's own, then rename it over ``path``: a
    runtime mid-exec keeps the old file, and installs running at once never share one."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
