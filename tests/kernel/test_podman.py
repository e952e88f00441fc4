"""A real container runtime uses podnet-cni: Debian's podman (CNI backend) runs a container from a
local root filesystem; it gets its address from podnet IPAM and is reachable from the node and
from a podnet pod. Everything podman writes goes to a temporary directory (private
containers.conf, storage, run root, CNI config dir); nothing under /etc is touched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from podnet.kernel import netns
from podnet.testing.cni_lab import Lab, links, ping

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")]
GLOBAL_DIRS = ("/run/libpod", "/run/runc", "/run/containers", "/var/lib/cni")


class Podman:
    def __init__(self, lab: Lab, work: str) -> None:
        self.lab, self.work = lab, work
        self.conf_dir = os.path.join(work, "net.d")
        os.makedirs(self.conf_dir)
        conflist = dict(lab.conflist)
        conflist["cniVersion"] = "1.0.0"  # podman 4.3's libcni speaks CNI up to 1.0.0
        conflist["name"] = "podnet"
        with open(os.path.join(self.conf_dir, "10-podnet.conflist"), "w") as f:
            json.dump(conflist, f)
        self.containers_conf = os.path.join(work, "containers.conf")
        with open(self.containers_conf, "w") as f:
            f.write(f"""[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{lab.bin_dir}", "/usr/lib/cni"]
network_config_dir = "{self.conf_dir}"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
""")
        self.rootfs = os.path.join(work, "rootfs")
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "run", "www"):
            os.makedirs(os.path.join(self.rootfs, d))
        shutil.copy("/bin/busybox", os.path.join(self.rootfs, "bin", "busybox"))
        with open(os.path.join(self.rootfs, "www", "index.html"), "w") as f:
            f.write("hello from podman\n")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = netns.nsenter_argv(self.lab.node_ns, ["podman", "--root", os.path.join(self.work, "storage"),
                                                     "--runroot", os.path.join(self.work, "run"), *args])
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CONTAINERS_CONF": self.containers_conf})


@pytest.fixture
def podman(lab: Lab, tmp_path) -> Iterator[Podman]:  # type: ignore[no-untyped-def]
    existed = {d: os.path.exists(d) for d in GLOBAL_DIRS}
    pm = Podman(lab, tempfile.mkdtemp(prefix="pt-pm-", dir="/tmp"))  # podman wants a runroot ≤ 50 chars
    try:
        yield pm
    finally:
        pm.run("rm", "-a", "-f", "-t", "0")
        pm.run("system", "reset", "-f")
        for d, was in existed.items():
            if not was and os.path.exists(d):
                shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(pm.work, ignore_errors=True)


def test_podman_container_gets_podnet_address(lab: Lab, podman: Podman) -> None:
    info = podman.run("info", "--format", "{{.Host.NetworkBackend}}")
    assert info.stdout.strip() == "cni", info.stderr
    assert "podnet" in podman.run("network", "ls").stdout
    r = podman.run("run", "-d", "--name", "pm1", "--network", "podnet", "--rootfs", podman.rootfs,
                   "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    assert r.returncode == 0, r.stderr
    ip = podman.run("inspect", "pm1", "--format", "{{.NetworkSettings.Networks.podnet.IPAddress}}").stdout.strip()
    sandbox = podman.run("inspect", "pm1", "--format", "{{.NetworkSettings.SandboxKey}}").stdout.strip()
    assert sandbox.startswith(netns.NETNS_DIR + "/netns-"), sandbox
    handles = lab.ipam().handles()
    assert [h["ips"][0] for h in handles.values()] == [ip]  # the address came from podnet IPAM
    assert ip.startswith("10.244.")
    # podman names the container as a "pod" in CNI_ARGS but passes no pod UID: podnet's
    # controllers therefore never reap this address; podman's own DEL/GC frees it
    (attrs,) = handles.values()
    assert "podUID" not in attrs and attrs["network"] == "podnet"
    # reachable from the node
    assert ping(lab.node_ns, ip)
    out = netns.run_in(lab.node_ns, ["busybox", "wget", "-qO-", f"http://{ip}/"]).stdout
    assert out == "hello from podman\n"
    # and from a podnet pod on the same node
    p = lab.pod_ns()
    res = lab.runtime().call("ADD", "podnet-pod", netns.path(p), "eth0")
    assert res
    assert netns.run_in(p, ["busybox", "wget", "-qO-", f"http://{ip}/"]).stdout == "hello from podman\n"
    lab.runtime().call("DEL", "podnet-pod", netns.path(p), "eth0", prev_result=res)
    # podman's own teardown calls DEL: the address goes back to the pool, the veth goes away
    r = podman.run("rm", "-f", "-t", "0", "pm1")
    assert r.returncode == 0, r.stderr
    assert lab.ipam().handles() == {}
    for _ in range(200):
        if not [n for n in links(lab.node_ns) if n.startswith("cali")]:
            break
        time.sleep(0.01)
    assert [n for n in links(lab.node_ns) if n.startswith("cali")] == []
    assert not os.path.lexists(sandbox), "podman left the container's network namespace behind"


def test_podman_publish_port_through_podnet(lab: Lab, podman: Podman) -> None:
    """``podman run -p 18080:80``: podman passes runtimeConfig.portMappings to podnet-cni (the
    conflist's ``portMappings`` capability), the attachment's IPAM handle records them, and the
    node's proxy forwards the node's addresses and 127.0.0.1 to the container."""
    from podnet.agent.policy_view import LiveView
    from podnet.agent.proxy import ProxyReconciler, ProxyView
    from podnet.agent.proxy_loop import ProxyPass
    from podnet.dataplane.nft.hostports import HOSTPORT_TABLE
    from podnet.kernel.nft.apply import NftApplier
    from podnet.store.open import open_backend, state_dir_url
    from podnet.store.resources import ResourceStore
    from podnet.testing.cni_lab import NODE_ADDRESS

    store = ResourceStore(open_backend(state_dir_url(lab.state_dir)))
    proxy = ProxyPass(ProxyReconciler("n1", netns=lab.node_ns, health=False), ProxyView(LiveView(store), "n1"))
    r = podman.run("run", "-d", "--name", "pm2", "--network", "podnet", "-p", "18080:80", "--rootfs", podman.rootfs,
                   "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    assert r.returncode == 0, r.stderr
    ip = podman.run("inspect", "pm2", "--format", "{{.NetworkSettings.Networks.podnet.IPAddress}}").stdout.strip()
    (attrs,) = lab.ipam().handles().values()
    assert attrs["portMappings"] == [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
    proxy()
    assert proxy.reconciler.status.host_ports["forwards"] == 1, proxy.reconciler.status
    for where in (NODE_ADDRESS, "127.0.0.1"):  # from the node
        out = netns.run_in(lab.node_ns, ["busybox", "wget", "-qO-", f"http://{where}:18080/"])
        assert out.stdout == "hello from podman\n", (where, out.stderr)
    p = lab.pod_ns()  # and from a podnet pod
    res = lab.runtime().call("ADD", "podnet-pod", netns.path(p), "eth0")
    out = netns.run_in(p, ["busybox", "wget", "-qO-", f"http://{NODE_ADDRESS}:18080/"])
    assert out.stdout == "hello from podman\n", out.stderr
    lab.runtime().call("DEL", "podnet-pod", netns.path(p), "eth0", prev_result=res)
    assert ip.startswith("10.244.")
    # podman's DEL releases the handle: the forward goes with it
    assert podman.run("rm", "-f", "-t", "0", "pm2").returncode == 0
    proxy()
    assert NftApplier(lab.node_ns, table=HOSTPORT_TABLE).read() is None
