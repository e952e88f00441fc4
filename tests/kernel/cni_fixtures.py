"""Fixtures shared by the CNI, pod and podman kernel tests: a node namespace of our own, an
installed plugin, the agent-side CNI socket, and a leak check that runs after each test."""
from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest

from podnet.agent.cnicall import CniRuntime
from podnet.cni.handler import Handler
from podnet.cni.install import install
from podnet.cni.server import CniServer
from podnet.ipam.allocator import IPAM
from podnet.kernel import netns
from podnet.store.open import open_backend, state_dir_url

pytestmark = pytest.mark.kernel


def uid() -> str:
    return secrets.token_hex(3)


def make_node_ns(name: str) -> None:
    """A node namespace: forwarding on and a default route (so proxy ARP answers pods)."""
    netns.create(name)
    netns.run_in(name, ["sh", "-c", "sysctl -qw net.ipv4.ip_forward=1 && ip addr add 192.168.200.1/32 dev lo && ip route add default dev lo"], check=True)


def links(ns: str) -> list[str]:
    out = netns.run_in(ns, ["ip", "-o", "link", "show"]).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


@dataclass
class Lab:
    """One node namespace with podnet-cni installed and (optionally) its agent socket served."""

    node_ns: str
    state_dir: str
    bin_dir: str
    conf_dir: str
    conflist: dict
    server: CniServer | None
    prefix: str
    _pods: list[str]

    def runtime(self, **conf_overrides: object) -> CniRuntime:
        cl = dict(self.conflist)
        if conf_overrides:
            plugin = {**cl["plugins"][0], **conf_overrides}
            cl = {**cl, "plugins": [plugin]}
            for k in ("cniVersion", "name"):
                if k in conf_overrides:
                    cl[k] = conf_overrides[k]
        return CniRuntime(cl, bin_dirs=(self.bin_dir,), netns_exec=netns.nsenter_argv(self.node_ns, [])[:-1])

    def pod_ns(self) -> str:
        name = f"{self.prefix}-p{len(self._pods)}"
        netns.create(name)
        self._pods.append(name)
        return name

    def ipam(self) -> IPAM:
        return IPAM(open_backend(state_dir_url(self.state_dir)))


def _lab(tmp_path, serve: bool) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    before_root = [n for n in root_links() if n.startswith("cali")]
    prefix = f"pt-{uid()}"
    node = f"{prefix}-node"
    state = str(tmp_path / "state")
    bin_dir, conf_dir = str(tmp_path / "bin"), str(tmp_path / "net.d")
    make_node_ns(node)
    server = None
    lab = None
    try:
        _, conf_path = install(bin_dir, conf_dir, node="n1", state_dir=state)
        import json
        with open(conf_path) as f:
            conflist = json.load(f)
        if serve:
            store = open_backend(state_dir_url(state))
            server = CniServer(conflist["plugins"][0]["agentSocket"], Handler(lambda conf: store)).start()
        lab = Lab(node, state, bin_dir, conf_dir, conflist, server, prefix, [])
        yield lab
    finally:
        if server is not None:
            server.close()
        for p in (lab._pods if lab else []):
            netns.remove(p)
        netns.remove(node)
        for n in netns.list_all():
            if n.startswith(prefix):
                netns.remove(n)
    # leak check: no namespace of ours and no pod link in the root namespace left behind
    assert [n for n in netns.list_all() if n.startswith(prefix)] == []
    assert [n for n in root_links() if n.startswith("cali")] == before_root


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    yield from _lab(tmp_path, serve=True)


@pytest.fixture
def lab_inprocess(tmp_path) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    yield from _lab(tmp_path, serve=False)


def ping(ns: str, ip: str) -> bool:
    return netns.run_in(ns, ["ping", "-c1", "-W1", ip]).returncode == 0


Fixture = Callable[..., Lab]
