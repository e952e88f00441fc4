"""`podnet node install` on a "host" (a namespace this test makes, with an etcd member of its
own on loopback and TLS): it writes the store configuration, registers the node, installs the
CNI plugin, and writes systemd units that `systemd-analyze verify` accepts without a word;
then each unit's command runs as systemd would run it (ExecStartPre, ExecStart, a notify
socket): the three loops report READY=1 after a pass against etcd, BIRD starts on the
configuration the routing loop wrote, and `podnet node status` shows the node."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cluster.etcd import EtcdCluster, Member, memory_data_root
from podnet.kernel import netns
from podnet.testing.etcd_lab import free_ports

pytestmark = pytest.mark.kernel

NODE, ADDRESS = "host1", "192.168.77.10/24"


@pytest.fixture
def host(tmp_path: Path, prefix: str) -> Iterator[tuple[str, EtcdCluster, Path]]:
    ns = f"{prefix}host"
    netns.create(ns)
    etcd = None
    try:
        netns.run_in(ns, ["sh", "-c", f"ip link set lo up && ip link add eth0 type veth peer name eth0p && ip link set eth0p up && "
                                      f"ip addr add {ADDRESS} "
                                      "dev eth0 && ip link set eth0 up && ip route add default dev eth0"], check=True)
        client, peer = free_ports(2)
        etcd = EtcdCluster(str(tmp_path / "etcd"), [Member("e1", "127.0.0.1", client, peer, netns=ns)],
                           data_root=memory_data_root())
        etcd.create()
        etcd.start()
        yield ns, etcd, tmp_path
    finally:
        if etcd is not None:
            etcd.destroy()
        netns.remove(ns)


def unit(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("["):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_node_install_writes_units_whose_commands_run(host: tuple[str, EtcdCluster, Path]) -> None:
    ns, etcd, tmp = host
    sd, units = tmp / "state", tmp / "units"
    tls = etcd.client_tls
    res = netns.run_in(ns, [sys.executable, "-m", "podnet.cli.main", "--state-dir", str(sd), "node", "install",
                            "--node", NODE, "--store", etcd.endpoints()[0], "--etcd-ca", tls.ca, "--etcd-cert",
                            tls.cert, "--etcd-key", tls.key, "--address", ADDRESS, "--backend", "bgp",
                            "--cni-bin-dir", str(tmp / "bin"), "--cni-conf-dir", str(tmp / "net.d"),
                            "--unit-dir", str(units)], timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "node host1 at 192.168.77.10" in res.stdout and "IP pool 10.244.0.0/16" in res.stdout
    config = json.loads((sd / "store.json").read_text())
    assert config["endpoints"] == [etcd.endpoints()[0]] and config["tls"]["key"] == tls.key
    assert os.access(tmp / "bin" / "podnet-cni", os.X_OK)
    assert json.loads((tmp / "net.d" / "10-podnet.conflist").read_text())["plugins"][0]["nodeName"] == NODE
    names = sorted(p.name for p in units.iterdir())
    assert names == ["podnet-agent.service", "podnet-bird.service", "podnet-flow-logger.service", "podnet-policy.service",
                     "podnet-proxy.service", "podnet-routing.service"]
    for name in names:
        u = unit(units / name)
        assert u["Restart"] == ["always"]
    assert unit(units / "podnet-agent.service")["Type"] == ["notify"]
    assert unit(units / "podnet-agent.service")["WatchdogSec"] == ["30"]

    if shutil.which("systemd-analyze"):  # it exits 0 even on an unknown key: nothing may be printed
        check = subprocess.run(["systemd-analyze", "verify", *[str(units / n) for n in names]],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and check.stderr.strip() == "" and check.stdout.strip() == "", check.stderr

    # Each loop's ExecStart, as systemd runs it: a notify socket; READY=1 after its first pass.
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("routing", "agent", "policy"):
            u = unit(units / f"podnet-{name}.service")
            path = str(tmp / f"notify-{name}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            sock.settimeout(60)
            argv = netns.nsenter_argv(ns, shlex.split(u["ExecStart"][0]))
            with open(tmp / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen(argv, env={**os.environ, "NOTIFY_SOCKET": path}, stdout=log,
                                              stderr=subprocess.STDOUT))
            try:
                while sock.recv(64) != b"READY=1":  # WATCHDOG=1 comes before, while the pass runs
                    pass
            except TimeoutError:
                raise AssertionError(f"{name}: no READY=1\n" + (tmp / f"{name}.log").read_text()) from None
            sock.close()
        bird = unit(units / "podnet-bird.service")
        assert subprocess.run(netns.nsenter_argv(ns, shlex.split(bird["ExecStartPre"][0]))).returncode == 0
        procs.append(subprocess.Popen(netns.nsenter_argv(ns, shlex.split(bird["ExecStart"][0])),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while True:
            status = netns.run_in(ns, [sys.executable, "-m", "podnet.cli.main", "--state-dir", str(sd),
                                       "node", "status"], timeout=60)
            if "Calico process is running." in status.stdout:
                break
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(0.2)
        assert "No IPv4 peers found." in status.stdout
        nodes = netns.run_in(ns, [sys.executable, "-m", "podnet.cli.main", "--state-dir", str(sd), "get", "nodes"],
                             timeout=60).stdout
        assert "host1" in nodes and "Ready" in nodes
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
