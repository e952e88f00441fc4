"""The CNI protocol as values: versions, config validation, result and error JSON.

Spec 1.1.0 (ADD, DEL, CHECK, VERSION, STATUS, GC), 1.0.0 and 0.4.0 (plus 0.3.x, whose result
is 0.4.0's). Pure and stdlib-only: the thin plugin executable imports nothing else, so it can
run under ``python3 -IS`` and start in a few milliseconds.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
PLUGIN_TYPE = "podnet-cni"
IPAM_TYPE = "podnet-ipam"
GATEWAY = "169.254.1.1"
HOST_MAC = "ee:ee:ee:ee:ee:ee"

# Error codes from the spec (section "Error").
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN = 11
E_NOT_AVAILABLE = 50
E_LIMITED = 51
E_PLUGIN = 100  # plugin-specific failures (IPAM exhausted, kernel refused, CHECK mismatch)


class CniError(Exception):
    """A failure reported to the runtime as the spec's error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, version: str = LATEST) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def at_least(version: str, minimum: str) -> bool:
    return _vkey(version) >= _vkey(minimum)


@dataclass(frozen=True)
class Env:
    """The CNI_* environment of one invocation."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def pod(self) -> tuple[str, str] | None:
        """(namespace, name) when a Kubernetes runtime passed K8S_POD_* in CNI_ARGS."""
        ns, name = self.args.get("K8S_POD_NAMESPACE"), self.args.get("K8S_POD_NAME")
        return (ns, name) if ns and name else None


_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "VERSION": (),
    "STATUS": ("CNI_PATH",),
    "GC": ("CNI_PATH",),
}


def parse_env(environ: Mapping[str, str]) -> Env:
    """Read and check CNI_* variables; a missing required one is error 4 naming it."""
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CniError(E_INVALID_ENV, "CNI_COMMAND is not set",
                       "set CNI_COMMAND to one of " + ", ".join(COMMANDS))
    if command not in COMMANDS:
        raise CniError(E_INVALID_ENV, f"CNI_COMMAND {command!r} is not supported",
                       "use one of " + ", ".join(COMMANDS))
    missing = [k for k in _REQUIRED_ENV[command] if not environ.get(k)]
    if missing:
        raise CniError(E_INVALID_ENV, f"{', '.join(missing)} must be set for {command}",
                       "a runtime sets CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH (see the CNI spec)")
    ifname = environ.get("CNI_IFNAME", "")
    if ifname and (len(ifname) > 15 or "/" in ifname or " " in ifname):
        raise CniError(E_INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name",
                       "use at most 15 characters without '/' or spaces")
    args: dict[str, str] = {}
    for part in environ.get("CNI_ARGS", "").split(";"):
        if part:
            key, sep, value = part.partition("=")
            if not sep:
                raise CniError(E_INVALID_ENV, f"CNI_ARGS entry {part!r} is not KEY=VALUE")
            args[key] = value
    return Env(command, environ.get("CNI_CONTAINERID", ""), environ.get("CNI_NETNS", ""), ifname, args,
               environ.get("CNI_PATH", ""))


@dataclass(frozen=True)
class NetConf:
    """The validated network configuration (one plugin entry, conflist fields merged in)."""

    cni_version: str
    name: str
    mtu: int
    node_name: str
    state_dir: str
    agent_socket: str
    pool_cidr: str
    prev_result: Mapping[str, Any] | None
    valid_attachments: tuple[tuple[str, str], ...] | None
    raw: Mapping[str, Any]
    #: runtimeConfig.portMappings (capability ``portMappings``), normalised: hostPort,
    #: containerPort, protocol (lower case), hostIP ("" for every address)
    port_mappings: tuple[Mapping[str, Any], ...] = ()


def _bad(field_name: str, problem: str, fix: str) -> CniError:
    return CniError(E_INVALID_CONFIG, f"invalid network configuration: field {field_name!r} {problem}", fix)


def parse_config(text: str | bytes, *, default_node: str = "") -> NetConf:
    """Validate the stdin config; every problem is error 7 (or 6 for bad JSON, 1 for versions)."""
    try:
        conf = json.loads(text or b"")
    except ValueError as exc:
        raise CniError(E_DECODE, f"network configuration on stdin is not valid JSON: {exc}",
                       "the runtime must pass the network configuration as JSON on stdin") from None
    if not isinstance(conf, dict):
        raise CniError(E_DECODE, "network configuration must be a JSON object")
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise _bad("cniVersion", "is missing", f"set it to one of {', '.join(SUPPORTED_VERSIONS)}")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(E_INCOMPATIBLE_VERSION, f"incompatible CNI version {version!r}",
                       f"podnet-cni supports {', '.join(SUPPORTED_VERSIONS)}")
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("name", "must be a non-empty string", "name the network, e.g. \"k8s-pod-network\"")
    if conf.get("type") not in (None, PLUGIN_TYPE):
        raise _bad("type", f"is {conf.get('type')!r}, expected {PLUGIN_TYPE!r}", "fix the plugin type")
    mtu = conf.get("mtu", 1500)
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise _bad("mtu", f"is {mtu!r}, must be an integer between 68 and 65535", "e.g. 1500, or 1450 with VXLAN")
    node = conf.get("nodeName", default_node)
    if not isinstance(node, str) or not node:
        raise _bad("nodeName", "is missing", "set nodeName to this node's name (podnet install-cni does it)")
    for key in ("stateDir", "agentSocket"):
        if key in conf and not isinstance(conf[key], str):
            raise _bad(key, "must be a string path", "use an absolute path")
    ipam = conf.get("ipam", {"type": IPAM_TYPE})
    if not isinstance(ipam, dict):
        raise _bad("ipam", "must be an object", f'use {{"type": "{IPAM_TYPE}"}}')
    if ipam.get("type", IPAM_TYPE) != IPAM_TYPE:
        raise _bad("ipam.type", f"is {ipam.get('type')!r}, expected {IPAM_TYPE!r}",
                   "podnet-cni allocates from podnet's block IPAM only")
    pool_cidr = ipam.get("podCIDR", "10.244.0.0/16")
    try:
        ipaddress.ip_network(pool_cidr if isinstance(pool_cidr, str) and "/" in pool_cidr else "", strict=False)
    except ValueError:
        raise _bad("ipam.podCIDR", f"is {pool_cidr!r}, not a CIDR", "e.g. 10.244.0.0/16") from None
    prev = conf.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise _bad("prevResult", "must be an object", "pass the result of the ADD")
    valid = conf.get("cni.dev/valid-attachments")
    attachments = None
    if valid is not None:
        if not isinstance(valid, list) or not all(isinstance(a, dict) and isinstance(a.get("containerID"), str)
                                                  and isinstance(a.get("ifname"), str) for a in valid):
            raise _bad("cni.dev/valid-attachments", "must be a list of {containerID, ifname}",
                       "as the CNI 1.1 GC command defines it")
        attachments = tuple((a["containerID"], a["ifname"]) for a in valid)
    state_dir = conf.get("stateDir", "/var/lib/podnet")
    return NetConf(version, name, mtu, node, state_dir,
                   conf.get("agentSocket", f"{state_dir}/nodes/{node}/cni.sock"), pool_cidr, prev, attachments, conf,
                   _port_mappings(conf.get("runtimeConfig")))


def _port_mappings(runtime: Any) -> tuple[dict[str, Any], ...]:
    """``runtimeConfig.portMappings`` as the portmap plugin reads it (what a runtime passes for
    ``podman -p`` or a kubelet for ``hostPort``), each field checked."""
    if runtime is None:
        return ()
    if not isinstance(runtime, dict):
        raise _bad("runtimeConfig", "must be an object", "the runtime fills it from the plugin's capabilities")
    mappings = runtime.get("portMappings")
    if mappings is None:
        return ()
    if not isinstance(mappings, list):
        raise _bad("runtimeConfig.portMappings", "must be a list", "e.g. [{\"hostPort\": 8080, \"containerPort\": 80}]")
    out = []
    for i, m in enumerate(mappings):
        where = f"runtimeConfig.portMappings[{i}]"
        if not isinstance(m, dict):
            raise _bad(where, "must be an object", "with hostPort, containerPort, protocol and hostIP")
        ports = {}
        for key in ("hostPort", "containerPort"):
            v = m.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
                raise _bad(f"{where}.{key}", f"is {v!r}, must be an integer between 1 and 65535", "fix the port")
            ports[key] = v
        protocol = m.get("protocol") or "tcp"
        if not isinstance(protocol, str) or protocol.lower() not in ("tcp", "udp", "sctp"):
            raise _bad(f"{where}.protocol", f"is {protocol!r}, must be tcp, udp or sctp", "fix the protocol")
        host_ip = m.get("hostIP") or ""
        try:
            if host_ip:
                ipaddress.ip_address(host_ip)
        except (ValueError, TypeError):
            raise _bad(f"{where}.hostIP", f"is {host_ip!r}, not an IP address", "leave it empty for every address") from None
        out.append({**ports, "protocol": protocol.lower(), "hostIP": host_ip})
    return tuple(out)


def check_command_version(command: str, version: str) -> None:
    """CHECK exists from 0.4.0, STATUS and GC from 1.1.0."""
    need = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}.get(command)
    if need and not at_least(version, need):
        raise CniError(E_INCOMPATIBLE_VERSION, f"{command} needs cniVersion {need} or later, config says {version}",
                       f"set cniVersion to {LATEST}")


def version_result(conf_text: str | bytes) -> dict[str, Any]:
    """VERSION: the config's version (if any) and every version supported."""
    try:
        v = json.loads(conf_text or b"{}").get("cniVersion") or LATEST
    except (ValueError, AttributeError):
        v = LATEST
    return {"cniVersion": v, "supportedVersions": list(SUPPORTED_VERSIONS)}


def host_ifname(env: Env) -> str:
    """Calico's host-side name: cali + sha1("<namespace>.<pod>")[:11], or of the container id."""
    pod = env.pod
    basis = f"{pod[0]}.{pod[1]}" if pod else env.container_id
    return "cali" + hashlib.sha1(basis.encode()).hexdigest()[:11]


def add_result(version: str, *, host_if: str, host_mac: str, ifname: str, mac: str, sandbox: str,
               address: str, mtu: int) -> dict[str, Any]:
    """The ADD result in the shape of the requested version."""
    host: dict[str, Any] = {"name": host_if, "mac": host_mac}
    cont: dict[str, Any] = {"name": ifname, "mac": mac, "sandbox": sandbox}
    if at_least(version, "1.1.0"):
        host["mtu"] = mtu
        cont["mtu"] = mtu
    ip: dict[str, Any] = {"address": address, "gateway": GATEWAY, "interface": 1}
    if not at_least(version, "1.0.0"):
        ip = {"version": "4" if ":" not in address else "6", **ip}
    return {"cniVersion": version, "interfaces": [host, cont], "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}], "dns": {}}
