"""A container's sandbox, made by bubblewrap: what a container runtime gives each container.

Each container runs under ``bwrap`` inside its pod's network namespace with private mount,
PID, UTS and IPC namespaces, the runtime's default capability set (``securityContext``'s
``capabilities.add``/``drop`` and ``privileged`` honoured), ``no_new_privs``, and a root
filesystem of its own: the host's ``/usr`` and ``/etc`` read-only, the pod's own
``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` over them, a fresh ``/proc``,
``/dev``, ``/tmp``, ``/run`` and ``/var``, and only the few host directories the built-in
workloads need (read-only). Nothing of podnet's state directory or ``/run`` is there.

Process tree: ``bwrap`` (the monitor, our child) → the sandbox's init (PID 1 inside, reaps
orphans, ignores SIGTERM as a namespace's init does) → the container's command (PID 2, its own
session). The init's host PID is what the runner records: ``killpg(init, SIGTERM)`` reaches
the command and its process group, ``kill(init, SIGKILL)`` ends every process of the sandbox,
and the monitor exits with the command's exit code (128 + signal when a signal ended it).
``enter_argv`` is how ``podnet exec`` and exec probes run a command inside a running sandbox
with the same namespaces, capabilities and ``no_new_privs``.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import PodnetError

BWRAP = "/usr/bin/bwrap"
NSENTER = "/usr/bin/nsenter"
SETPRIV = "/usr/bin/setpriv"
PODBIN = "/opt/podnet/bin"  # where the pods' PATH directory (podbin.py) is inside
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
START_TIMEOUT = 10.0

#: containerd's and Docker's default capability set (``oci.DefaultCapabilities``).
DEFAULT_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})

#: Every capability the kernel headers name (what ``privileged`` and ``add: [ALL]`` mean).
ALL_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
})


class SandboxError(PodnetError):
    """The sandbox could not be made (the container's start fails and is retried)."""


@dataclass(frozen=True)
class Privileges:
    """What a container may do: its capabilities (bounding = effective = permitted)."""

    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    privileged: bool = False


def _cap_name(raw: object) -> str:
    name = str(raw).upper()
    return name[4:] if name.startswith("CAP_") else name


def privileges(container_context: Mapping[str, Any] | None) -> Privileges:
    """A container's ``securityContext`` as the runtime applies it: the default set, minus
    ``drop`` (``ALL`` drops every one), plus ``add`` (``ALL`` adds every one); ``privileged``
    gives them all. Unknown names are ignored, as runc ignores capabilities the kernel lacks."""
    sc = container_context or {}
    if sc.get("privileged") is True:
        return Privileges(ALL_CAPABILITIES, privileged=True)
    caps_field = sc.get("capabilities") or {}
    drop = {_cap_name(c) for c in caps_field.get("drop") or []}
    add = {_cap_name(c) for c in caps_field.get("add") or []}
    caps = set() if "ALL" in drop else set(DEFAULT_CAPABILITIES - drop)
    caps |= ALL_CAPABILITIES if "ALL" in add else add & ALL_CAPABILITIES
    return Privileges(frozenset(caps))


@dataclass(frozen=True)
class SandboxSpec:
    """One container's sandbox. ``files`` and ``binds`` map a path inside to a host path
    (bound read-only); ``host_dirs`` are host directories visible read-only at the same path."""

    hostname: str
    privileges: Privileges = Privileges()
    files: Mapping[str, str] = field(default_factory=dict)
    binds: Mapping[str, str] = field(default_factory=dict)
    host_dirs: tuple[str, ...] = ()
    workdir: str = "/"


def _root_links() -> list[str]:
    """/bin, /sbin, /lib* as the host has them: merged-/usr symlinks, else read-only binds."""
    out: list[str] = []
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + top
        if os.path.islink(path):
            out += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            out += ["--ro-bind", path, path]
    return out


def bwrap_argv(spec: SandboxSpec, argv: Sequence[str], info_fd: int | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` in ``spec``'s sandbox (reporting the
    init's PID on ``info_fd``)."""
    out = [BWRAP, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", spec.hostname,
           "--new-session",
           "--ro-bind", "/usr", "/usr", *_root_links(), "--ro-bind", "/etc", "/etc"]
    for inside, host in spec.files.items():
        out += ["--ro-bind", host, inside]
    out += ["--proc", "/proc"]
    out += ["--dev-bind", "/dev", "/dev", "--ro-bind", "/sys", "/sys"] if spec.privileges.privileged else ["--dev", "/dev"]
    out += ["--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var", "--dir", "/var/tmp"]
    for host in spec.host_dirs:
        out += ["--ro-bind", host, host]
    for inside, host in spec.binds.items():
        out += ["--ro-bind", host, inside]
    out += ["--cap-drop", "ALL"]
    for cap in sorted(spec.privileges.capabilities):
        out += ["--cap-add", f"CAP_{cap}"]
    if info_fd is not None:
        out += ["--info-fd", str(info_fd)]
    out += ["--chdir", spec.workdir, "--", *argv]
    return out


def enter_argv(init_pid: int, privs: Privileges, argv: Sequence[str]) -> list[str]:
    """Run ``argv`` inside the running sandbox whose init is ``init_pid``: its mount, PID, UTS,
    IPC and network namespaces, root and working directory, with the container's capabilities
    as the bounding set and ``no_new_privs``."""
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in sorted(privs.capabilities))])
    return [NSENTER, "-t", str(init_pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--",
            SETPRIV, "--no-new-privs", "--inh-caps=-all", f"--bounding-set={bounding}", "--", *argv]


def _read_info(fd: int, proc: subprocess.Popen[Any], timeout: float) -> dict[str, Any]:
    """bwrap's ``--info-fd`` report (the init's host PID), or why there is none."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxError("the sandbox did not start in time")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            code = proc.wait(timeout=5)
            raise SandboxError(f"bwrap exited with status {code} before the container started",
                               hint="see the container's log for bwrap's message")
        buf += chunk
        try:
            info: dict[str, Any] = json.loads(buf)
            return info
        except ValueError:
            continue


def start(spec: SandboxSpec, argv: Sequence[str], wrap: Sequence[str] = (), **popen: Any) -> tuple[subprocess.Popen[Any], int]:
    """Start ``argv`` in a new sandbox (``wrap`` goes in front of bwrap, e.g. ``nsenter --net``);
    returns the monitor (our child) and the sandbox init's host PID."""
    read_end, write_end = os.pipe()
    try:
        command = [*wrap, *bwrap_argv(spec, argv, info_fd=write_end)]
        proc = subprocess.Popen(command, pass_fds=(write_end,), **popen)
        os.close(write_end)
        write_end = -1
        try:
            info = _read_info(read_end, proc, START_TIMEOUT)
        except SandboxError:
            proc.kill()  # a sandbox that did not report is not left behind
            proc.wait()
            raise
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    return proc, int(info["child-pid"])
