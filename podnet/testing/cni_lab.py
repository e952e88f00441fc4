"""A node namespace with podnet-cni installed, for CNI, pod and container-runtime tests.

The lab is one node namespace of the caller's prefix (forwarding on, a default route, so proxy
ARP answers pods), the plugin and its conflist installed under a work directory, and optionally
the agent side of the CNI socket served in this process. Pod namespaces come from ``pod_ns``;
``cni_lab`` removes all of them however the block ends.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from podnet.agent.cnicall import CniRuntime
from podnet.cni.handler import Handler
from podnet.cni.install import install
from podnet.cni.server import CniServer
from podnet.ipam.allocator import IPAM
from podnet.kernel import netns
from podnet.store.open import open_backend, state_dir_url

NODE_ADDRESS = "192.168.200.1"


@dataclass
class Lab:
    """One node namespace with podnet-cni installed and (optionally) its agent socket served."""

    node_ns: str
    state_dir: str
    bin_dir: str
    conf_dir: str
    conflist: dict[str, Any]
    server: CniServer | None
    prefix: str
    pods: list[str] = field(default_factory=list)

    def runtime(self, **conf_overrides: object) -> CniRuntime:
        """A CNI runtime calling the installed plugin from the node namespace, as a kubelet
        would; overrides change the plugin's conf (``cniVersion`` and ``name`` the list's)."""
        cl = dict(self.conflist)
        if conf_overrides:
            plugin = {**cl["plugins"][0], **conf_overrides}
            cl = {**cl, "plugins": [plugin]}
            for k in ("cniVersion", "name"):
                if k in conf_overrides:
                    cl[k] = conf_overrides[k]
        return CniRuntime(cl, bin_dirs=(self.bin_dir,), netns_exec=netns.nsenter_argv(self.node_ns, [])[:-1])

    def pod_ns(self) -> str:
        """A new, empty pod namespace (removed with the lab)."""
        name = f"{self.prefix}p{len(self.pods)}"
        netns.create(name)
        self.pods.append(name)
        return name

    def ipam(self) -> IPAM:
        return IPAM(open_backend(state_dir_url(self.state_dir)))


def make_node_ns(name: str) -> None:
    """A node namespace: forwarding on and a default route (so proxy ARP answers pods)."""
    netns.create(name)
    netns.run_in(name, ["sh", "-c", f"sysctl -qw net.ipv4.ip_forward=1 && ip addr add {NODE_ADDRESS}/32 dev lo"
                                    " && ip route add default dev lo"], check=True)


@contextmanager
def cni_lab(work_dir: str, prefix: str, *, serve: bool = True) -> Iterator[Lab]:
    """A lab whose namespaces are named ``<prefix>node`` and ``<prefix>p<N>``, its files under
    ``work_dir``; with ``serve`` the agent's CNI socket answers in this process."""
    node = f"{prefix}node"
    state = os.path.join(work_dir, "state")
    bin_dir, conf_dir = os.path.join(work_dir, "bin"), os.path.join(work_dir, "net.d")
    make_node_ns(node)
    server = None
    lab = None
    try:
        _, conf_path = install(bin_dir, conf_dir, node="n1", state_dir=state)
        with open(conf_path) as f:
            conflist = json.load(f)
        if serve:
            store = open_backend(state_dir_url(state))
            server = CniServer(conflist["plugins"][0]["agentSocket"], Handler(lambda conf: store)).start()
        lab = Lab(node, state, bin_dir, conf_dir, conflist, server, prefix)
        yield lab
    finally:
        if server is not None:
            server.close()
        for p in (lab.pods if lab else []):
            netns.remove(p)
        netns.remove(node)


def links(ns: str) -> list[str]:
    """The names of the links in a namespace, sorted."""
    out = netns.run_in(ns, ["ip", "-o", "link", "show"]).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def ping(ns: str, ip: str) -> bool:
    """One echo answered within 3 s, asking every 0.2 s: a veth's carrier reaches the qdisc
    through the kernel's link watch, up to a second after the link is up on a busy machine, and
    what it drops meanwhile is not the wiring's fault."""
    return netns.run_in(ns, ["ping", "-c1", "-i0.2", "-w3", ip]).returncode == 0
