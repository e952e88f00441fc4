"""Executes one CNI invocation: env + stdin config in, (exit code, stdout JSON) out.

Used in two places with the same code: by the node agent's CNI socket (the fast path; the
plugin process just forwards its env, stdin and network namespace) and in-process by the
plugin when no agent is listening. ADD rolls back IPAM and links on any failure; DEL is
idempotent and works when the container's namespace is already gone.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from podnet.errors import PodnetError
from podnet.ipam.allocator import IPAM
from podnet.ipam.blocks import handle_id_for
from podnet.kernel import podwire
from podnet.store.api import Store

from . import spec
from .spec import CniError, Env, NetConf

FAIL_AFTER_ENV = "PODNET_CNI_FAIL_AFTER"
ADD_STEPS = ("ipam", "veth", "pod-side", "host-side", "result")


class InjectedFailure(Exception):
    """Raised by the failure-injection hook (``PODNET_CNI_FAIL_AFTER=<step>``)."""


class Handler:
    """Runs CNI commands against the store returned by ``store_for(conf)``."""

    def __init__(self, store_for: Callable[[NetConf], Store], default_node: str = "") -> None:
        self.store_for = store_for
        self.default_node = default_node
        self._locks = [threading.Lock() for _ in range(64)]  # striped: bounded memory, rare sharing

    def _lock(self, key: str) -> threading.Lock:
        """Serialises ADD/DEL of one attachment (a runtime retrying while the first call runs)."""
        return self._locks[hash(key) % len(self._locks)]

    def run(self, environ: Mapping[str, str], stdin: bytes | str, host_ns: str) -> tuple[int, str]:
        """One invocation. ``host_ns`` is the namespace the runtime called the plugin in."""
        version = spec.LATEST
        try:
            env = spec.parse_env(environ)
            if env.command == "VERSION":
                return 0, json.dumps(spec.version_result(stdin))
            conf = spec.parse_config(stdin, default_node=self.default_node)
            version = conf.cni_version
            spec.check_command_version(env.command, version)
            ipam = IPAM(self.store_for(conf), default_cidr=conf.pool_cidr)
            if env.command == "ADD":
                with self._lock(env.container_id + "/" + env.ifname):
                    return 0, json.dumps(self.add(env, conf, ipam, host_ns, environ.get(FAIL_AFTER_ENV, "")))
            if env.command == "DEL":
                with self._lock(env.container_id + "/" + env.ifname):
                    self.delete(env, conf, ipam, host_ns)
                return 0, ""
            if env.command == "CHECK":
                self.check(env, conf, ipam, host_ns)
                return 0, ""
            if env.command == "STATUS":
                self.status(conf, ipam)
                return 0, ""
            self.gc(conf, ipam)
            return 0, ""
        except CniError as exc:
            return 1, json.dumps(exc.to_json(version))
        except PodnetError as exc:
            return 1, json.dumps(CniError(spec.E_PLUGIN, exc.message, exc.hint or "").to_json(version))
        except InjectedFailure as exc:
            return 1, json.dumps(CniError(spec.E_PLUGIN, f"injected failure after step {exc}").to_json(version))
        except OSError as exc:
            return 1, json.dumps(CniError(spec.E_PLUGIN, f"kernel refused: {exc}").to_json(version))
        except Exception as exc:  # netlink errors and bugs: still the spec's error JSON, never silence
            return 1, json.dumps(CniError(spec.E_PLUGIN, f"{type(exc).__name__}: {exc}").to_json(version))

    # ---- commands ----------------------------------------------------------------------------

    def add(self, env: Env, conf: NetConf, ipam: IPAM, host_ns: str, fail_after: str = "") -> dict[str, Any]:
        if fail_after and fail_after not in ADD_STEPS:
            raise CniError(spec.E_INVALID_ENV, f"{FAIL_AFTER_ENV}={fail_after!r} is not a step",
                           "use one of " + ", ".join(ADD_STEPS))

        def hook(step: str) -> None:
            if step == fail_after:
                raise InjectedFailure(step)

        if not os.path.exists(env.netns):
            raise CniError(spec.E_UNKNOWN_CONTAINER, f"network namespace {env.netns} does not exist",
                           "create the container's namespace before ADD")
        host_if = spec.host_ifname(env)
        handle = handle_id_for(conf.name, env.container_id, env.ifname)
        pod = env.pod
        attrs = {"containerID": env.container_id, "ifname": env.ifname, "network": conf.name,
                 "hostIf": host_if, **({"namespace": pod[0], "pod": pod[1]} if pod else {}),
                 **({"podUID": env.args["K8S_POD_UID"]} if env.args.get("K8S_POD_UID") else {}),
                 # the node's proxy forwards these (``services/hostports.attachment_mappings``)
                 **({"portMappings": [dict(m) for m in conf.port_mappings]} if conf.port_mappings else {})}
        assignment = ipam.assign(handle, conf.node_name, attrs)
        preexisting = not assignment.fresh  # a repeated ADD must not undo the first
        try:
            hook("ipam")
            wired = podwire.wire(host_ns, env.netns, env.ifname, host_if, assignment.cidr, conf.mtu, hook)
            try:
                hook("result")
            except BaseException:
                podwire.unwire(host_ns, env.netns, env.ifname, host_if)
                raise
        except BaseException:
            if not preexisting:
                ipam.release(handle)
            raise
        return spec.add_result(conf.cni_version, host_if=wired.host_ifname, host_mac=wired.host_mac,
                               ifname=env.ifname, mac=wired.mac, sandbox=env.netns,
                               address=assignment.cidr, mtu=conf.mtu)

    def delete(self, env: Env, conf: NetConf, ipam: IPAM, host_ns: str) -> None:
        handle = handle_id_for(conf.name, env.container_id, env.ifname)
        record = ipam.handle(handle) or {}
        host_if = record.get("hostIf") or spec.host_ifname(env)
        pod_ns = env.netns if env.netns and os.path.exists(env.netns) else None
        address = (record.get("ips") or [None])[0]
        podwire.unwire(host_ns, pod_ns, env.ifname, host_if, address)
        ipam.release(handle)

    def check(self, env: Env, conf: NetConf, ipam: IPAM, host_ns: str) -> None:
        prev = conf.prev_result
        if not prev:
            raise CniError(spec.E_INVALID_CONFIG, "invalid network configuration: field 'prevResult' is missing",
                           "CHECK needs the result of the ADD in prevResult")
        if not os.path.exists(env.netns):
            raise CniError(spec.E_UNKNOWN_CONTAINER, f"network namespace {env.netns} does not exist")
        try:
            address = prev["ips"][0]["address"]
            host_if = prev["interfaces"][0]["name"]
        except (KeyError, IndexError, TypeError):
            raise CniError(spec.E_INVALID_CONFIG, "invalid network configuration: field 'prevResult' lacks "
                           "ips[0].address or interfaces[0].name", "pass the ADD result unchanged") from None
        handle = ipam.handle(handle_id_for(conf.name, env.container_id, env.ifname))
        problems = []
        ip = address.split("/")[0]
        if handle is None or ip not in handle.get("ips", []):
            problems.append(f"IPAM does not hold {ip} for container {env.container_id} interface {env.ifname}")
        problems += podwire.check(host_ns, env.netns, env.ifname, host_if, address)
        if problems:
            raise CniError(spec.E_PLUGIN, "CHECK found differences: " + "; ".join(problems))

    def status(self, conf: NetConf, ipam: IPAM) -> None:
        try:
            pools = ipam.eligible_pools(conf.node_name)
        except PodnetError as exc:
            raise CniError(spec.E_NOT_AVAILABLE, exc.message, exc.hint or "") from None
        names = {p.name for p in pools}
        rows = [u for u in ipam.usage() if u.name in names]
        if rows and all(u.free == 0 for u in rows):
            raise CniError(spec.E_NOT_AVAILABLE, "every IP pool for node "
                           f"{conf.node_name!r} is exhausted: " + ", ".join(f"{u.name} ({u.cidr})" for u in rows),
                           "add an IPPool or free addresses")

    def gc(self, conf: NetConf, ipam: IPAM) -> None:
        if conf.valid_attachments is None:  # never read "nothing is valid" into a missing field
            raise CniError(spec.E_INVALID_CONFIG, "invalid network configuration: field "
                           "'cni.dev/valid-attachments' is missing", "GC needs the list of valid attachments")
        valid = {handle_id_for(conf.name, c, i) for c, i in (conf.valid_attachments or ())}
        ipam.release_not_in(valid, lambda h: h.get("network") == conf.name and h.get("node") == conf.node_name)
