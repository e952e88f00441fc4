"""``podnet install-cni``: put the plugin where runtimes look and write its conflist.

The executable is ``plugin.py`` with the paths podnet lives in written into it (used only on
its in-process fallback path); the conflist names the node, the state directory and the
agent's socket, which is all the thin plugin needs to find its agent.
"""
from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

from .spec import LATEST, PLUGIN_TYPE, IPAM_TYPE

PLUGIN_NAME = PLUGIN_TYPE
CONFLIST_NAME = "10-podnet.conflist"


def podnet_paths() -> list[str]:
    """Where ``import podnet`` and its dependencies resolve from in this interpreter."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(paths))


def plugin_source(agent_socket_path: str = "", python: str = "/usr/bin/python3") -> str:
    src = (Path(__file__).parent / "plugin.py").read_text()
    body = src.split("\n", 1)[1]
    body = body.replace("FALLBACK_PATH: list = []", f"FALLBACK_PATH: list = {podnet_paths()!r}", 1)
    body = body.replace('AGENT_SOCKET = ""', f"AGENT_SOCKET = {agent_socket_path!r}", 1)
    return f"#!{python} -IS\n" + body


def conflist(node: str, state_dir: str, *, name: str = "k8s-pod-network", mtu: int = 1500,
             cni_version: str = LATEST, pod_cidr: str = "10.244.0.0/16", socket: str | None = None) -> dict:
    return {
        "cniVersion": cni_version, "name": name,
        "plugins": [{"type": PLUGIN_TYPE, "mtu": mtu, "nodeName": node, "stateDir": state_dir,
                     "agentSocket": socket or agent_socket(state_dir, node),
                     "ipam": {"type": IPAM_TYPE, "podCIDR": pod_cidr}}],
    }


def agent_socket(state_dir: str, node: str) -> str:
    return os.path.join(os.path.abspath(state_dir), "nodes", node, "cni.sock")


def install(bin_dir: str, conf_dir: str, node: str, state_dir: str, **conf: object) -> tuple[str, str]:
    """Write ``<bin_dir>/podnet-cni`` (0755) and ``<conf_dir>/10-podnet.conflist``; returns both paths."""
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(conf_dir, exist_ok=True)
    exe = os.path.join(bin_dir, PLUGIN_NAME)
    tmp = exe + ".tmp"
    with open(tmp, "w") as f:
        f.write(plugin_source(str(conf.get("socket") or agent_socket(state_dir, node))))
    os.chmod(tmp, 0o755)
    os.replace(tmp, exe)  # atomic: a runtime mid-exec keeps the old file
    path = os.path.join(conf_dir, CONFLIST_NAME)
    with open(path + ".tmp", "w") as f:
        json.dump(conflist(node, os.path.abspath(state_dir), **conf), f, indent=2)  # type: ignore[arg-type]
    os.replace(path + ".tmp", path)
    return exe, path
