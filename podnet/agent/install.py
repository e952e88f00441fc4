"""``podnet node install``: make this machine a podnet node of an etcd-backed cluster.

What it writes, all idempotently (run it again to change a setting):

1. ``<state-dir>/store.json``: the etcd endpoints and this node's TLS files (referenced where
   they are, as Calico's ``etcd_ca``/``etcd_cert``/``etcd_key``); checked by reading the
   store first, so a wrong endpoint or certificate fails here, not in a unit's log;
2. the node's registration in the store, as calico-node does at start: a v1 Node and a Calico
   Node with its address, and — on the first node only — the network settings (backend, pod
   CIDR) and the default IP pool;
3. the CNI plugin and its conflist (``podnet install-cni``);
4. systemd units for the agent, the routing loop, the policy loop and BIRD
   (``agent/units.py``): ``Restart=always``; the loops ``Type=notify`` with ``WatchdogSec=``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.store.config import StoreConfig, TlsFiles, parse_endpoints, save

from .units import START_TIMEOUT_SEC, WATCHDOG_SEC, Service, node_services

UNIT_PREFIX = "podnet-"
NODE_FILE = "node.json"  # which node this state directory is (``podnet node status`` reads it)


def installed_node(state_dir: str) -> str | None:
    try:
        with open(os.path.join(state_dir, NODE_FILE)) as f:
            return str(json.load(f)["node"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class InstallOptions:
    node: str
    endpoints: tuple[str, ...]
    tls: TlsFiles | None
    state_dir: str = "/var/lib/podnet"
    address: str = ""  # this node's address on the underlay ("": the source of its default route)
    backend: str = "bgp"
    pod_cidr: str = "10.244.0.0/16"
    cni_bin_dir: str = "/opt/cni/bin"
    cni_conf_dir: str = "/etc/cni/net.d"
    unit_dir: str = "/etc/systemd/system"
    mtu: int = 1500
    watchdog_sec: float = WATCHDOG_SEC


def default_address() -> str:
    """The address this machine uses toward the rest of the network (its default route's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
            return str(s.getsockname()[0])
        except OSError as exc:
            raise PodnetError("cannot tell this node's address (no default route)",
                              hint="give it with --address") from exc


def unit_text(service: Service, unit_prefix: str = UNIT_PREFIX) -> str:
    """A systemd unit for ``service``."""
    argv = list(service.argv)
    argv[0] = shutil.which(argv[0]) or argv[0]
    exec_start = " ".join(_quote(a) for a in argv)
    lines = ["[Unit]", f"Description={service.description}",
             "After=network-online.target", "Wants=network-online.target", "StartLimitIntervalSec=0", "",
             "[Service]"]
    if service.watchdog_sec:
        lines += ["Type=notify", "NotifyAccess=main", f"WatchdogSec={service.watchdog_sec:g}",
                  f"TimeoutStartSec={START_TIMEOUT_SEC:g}"]
    else:
        lines += ["Type=simple"]
    if service.requires_file:
        lines.append(f"ExecStartPre={shutil.which('test') or '/usr/bin/test'} -f {_quote(service.requires_file)}")
    lines += [f"ExecStart={exec_start}", "Restart=always", "RestartSec=1", "KillMode=mixed",
              "Environment=PYTHONUNBUFFERED=1", "", "[Install]", "WantedBy=multi-user.target", ""]
    if service.name == "routing":
        lines.insert(lines.index("[Service]"), f"Wants={unit_prefix}bird.service")
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return f'"{arg}"' if any(c in arg for c in " \t\"'\\") else arg


def _check_store(config: StoreConfig) -> None:
    from podnet.store.etcd import EtcdStore

    store = EtcdStore(config.endpoints, config.tls)
    try:
        store.revision()
    finally:
        store.close()


def register(opts: InstallOptions, address: str) -> tuple[list[str], str]:
    """The node's Node and Calico Node; the network settings and pool if none exist yet."""
    from podnet.model import IPPool, Node, Resource
    from podnet.store.open import open_store

    from .node import NETWORK_CONFIG_KEY, cluster_backend, record_network_config
    from .registration import block_size, default_pool, node_objects

    done = []
    iface = ipaddress.ip_interface(address if "/" in address else f"{address}/24")
    store = open_store(opts.state_dir)
    try:
        if store.kv.get(NETWORK_CONFIG_KEY) is None:
            record_network_config(store, opts.backend, opts.pod_cidr)
            done.append(f"network settings: backend {opts.backend}, pod CIDR {opts.pod_cidr}")
        objs: list[Resource] = node_objects(opts.node, str(iface.ip), iface.network.prefixlen)
        if not store.list(IPPool):
            objs.append(default_pool(opts.pod_cidr, block_size(opts.backend)))
            done.append(f"IP pool {opts.pod_cidr}")
        store.apply(objs)
        for obj in objs:
            if isinstance(obj, Node):
                store.update_status(obj)
        done.append(f"node {opts.node} at {iface.ip}")
        backend = cluster_backend(opts.state_dir, store)
    finally:
        store.close()
    return done, backend


def install(opts: InstallOptions, *, check: bool = True, python: str | None = None) -> list[str]:
    """Do it all; returns what was written, one line each."""
    config = StoreConfig(opts.endpoints, opts.tls)
    if check:
        _check_store(config)
    done = [f"store: {save(opts.state_dir, config)}"]
    with open(os.path.join(opts.state_dir, NODE_FILE), "w") as f:
        json.dump({"node": opts.node}, f)
    address = opts.address or default_address()
    registered, backend = register(opts, address)
    done += registered
    from podnet.cni.install import install as install_cni

    exe, conflist = install_cni(opts.cni_bin_dir, opts.cni_conf_dir, node=opts.node, state_dir=opts.state_dir,
                                mtu=opts.mtu, pod_cidr=opts.pod_cidr)
    done += [f"CNI plugin: {exe}", f"CNI conflist: {conflist}"]
    os.makedirs(opts.unit_dir, exist_ok=True)
    for service in node_services(opts.node, opts.state_dir, bgp=backend == "bgp", host_network=True,
                                 watchdog_sec=opts.watchdog_sec, python=python):
        path = os.path.join(opts.unit_dir, f"{UNIT_PREFIX}{service.name}.service")
        with open(path, "w") as f:
            f.write(unit_text(service))
        done.append(f"unit: {path}")
    return done


def options(node: str, store: str, ca: str | None, cert: str | None, key: str | None,
            **settings: object) -> InstallOptions:
    """Checked options from the command line's strings."""
    from podnet.store.config import check_tls

    endpoints: Sequence[str] = parse_endpoints(store)
    tls = check_tls(ca, cert, key)
    if any(e.startswith(("https://", "unixs://")) for e in endpoints) and tls is None:
        raise PodnetError("https endpoints need --etcd-ca, --etcd-cert and --etcd-key")
    if tls is not None:
        endpoints = tuple(e.replace("http://", "https://", 1) for e in endpoints)
    return InstallOptions(node=node, endpoints=tuple(endpoints), tls=tls, **settings)  # type: ignore[arg-type]
