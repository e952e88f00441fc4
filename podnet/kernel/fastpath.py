"""The eBPF fast path for established TCP flows: build, load, attach at tc ingress, detach.

nftables flowtables are not available on this kernel (see docs/enforcement.md), so the fast
path is a tc program (``bpf/fastpath.bpf.c``) that hands packets of confirmed, established,
un-NATed and unmarked conntrack flows straight to the egress device; everything else keeps
the slow path. The object is compiled once per source and kernel (clang, cached under
``/var/cache/podnet/bpf``) and loaded through libbpf over ctypes; one loaded object serves all
devices of a node, so its maps (counters, the veths a packet may jump into) are shared.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from podnet.errors import PodnetError

from . import netns as _netns
from .underlay import sysctl

SOURCE = Path(__file__).with_name("bpf") / "fastpath.bpf.c"
CACHE_DIR = Path(os.environ.get("PODNET_BPF_CACHE", "/var/cache/podnet/bpf"))
PROG_NAME = b"podnet_fastpath"
STATS_MAP = b"fp_stats"
PEER_MAP = b"fp_peer_ifs"
# Conntrack's TCP window tracking never sees the packets the fast path forwards.
LIBERAL_SYSCTL = "net.netfilter.nf_conntrack_tcp_be_liberal"

BPF_TC_INGRESS = 1
BPF_TC_EGRESS = 2
BPF_TC_F_REPLACE = 1
TC_HANDLE = 1
TC_PRIORITY = 1


class FastPathError(PodnetError):
    """The fast path could not be built, loaded, attached or detached."""


class _TcHook(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("ifindex", ctypes.c_int), ("attach_point", ctypes.c_int),
                ("parent", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class _TcOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("prog_fd", ctypes.c_int), ("flags", ctypes.c_uint32),
                ("prog_id", ctypes.c_uint32), ("handle", ctypes.c_uint32), ("priority", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32)]


def _libbpf() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError as e:
        raise FastPathError(f"the fast path needs libbpf (package libbpf1): {e}") from e
    lib.libbpf_set_print(None)  # failures come back as return codes, told in FastPathError
    lib.bpf_object__open_file.restype = ctypes.c_void_p
    lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.bpf_object__load.argtypes = [ctypes.c_void_p]
    lib.bpf_object__close.argtypes = [ctypes.c_void_p]
    lib.bpf_object__find_program_by_name.restype = ctypes.c_void_p
    lib.bpf_object__find_program_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.bpf_object__find_map_fd_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.bpf_program__fd.argtypes = [ctypes.c_void_p]
    lib.bpf_map_update_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64]
    lib.bpf_map_delete_elem.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.bpf_tc_hook_create.argtypes = [ctypes.POINTER(_TcHook)]
    lib.bpf_tc_hook_destroy.argtypes = [ctypes.POINTER(_TcHook)]
    lib.bpf_tc_attach.argtypes = [ctypes.POINTER(_TcHook), ctypes.POINTER(_TcOpts)]
    return lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise FastPathError(f"fast path: {what}: {os.strerror(-rc)}")
    return rc


def build_object(source: Path = SOURCE, cache_dir: Path = CACHE_DIR) -> Path:
    """Compile the program once per (source, kernel): the object is cached by their hash."""
    text = source.read_bytes()
    key = hashlib.sha256(text + platform.release().encode()).hexdigest()[:16]
    obj = cache_dir / f"fastpath-{key}.o"
    if obj.exists():
        return obj
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        vmlinux = Path(tmp) / "vmlinux.h"
        try:
            with open(vmlinux, "w") as out:
                subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                               stdout=out, stderr=subprocess.PIPE, check=True, text=True)
            built = Path(tmp) / obj.name
            subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I", tmp, "-c", str(source), "-o", str(built)],
                           capture_output=True, check=True, text=True)
        except FileNotFoundError as e:
            raise FastPathError(f"the fast path needs clang and bpftool (make setup): {e}") from e
        except subprocess.CalledProcessError as e:
            raise FastPathError(f"building the fast path failed: {e.stderr.strip()[-2000:]}") from e
        os.replace(built, obj)
    return obj



def _kind(ifname: str) -> str:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.link("get", ifname=ifname)
        info = links[0].get_attr("IFLA_LINKINFO") if links else None
        return str(info.get_attr("IFLA_INFO_KIND")) if info else ""


@dataclass(frozen=True)
class Stats:
    """Packets forwarded by the fast path, and TCP packets it left to the slow path."""

    fast: int
    slow_tcp: int


class FastPath:
    """One loaded fast-path program for one node namespace; attaches it to that node's
    devices. Closing it keeps nothing loaded that no device uses."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._lib = _libbpf()
        path = build_object()
        obj = self._lib.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            raise FastPathError(f"fast path: opening {path}: {os.strerror(ctypes.get_errno())}")
        self._obj: int | None = obj
        try:
            _check(self._lib.bpf_object__load(obj), "loading the program (verifier)")
            prog = self._lib.bpf_object__find_program_by_name(obj, PROG_NAME)
            self.prog_fd = _check(self._lib.bpf_program__fd(prog), "program fd")
            self._stats_fd = _check(self._lib.bpf_object__find_map_fd_by_name(obj, STATS_MAP), "stats map")
            self._peer_fd = _check(self._lib.bpf_object__find_map_fd_by_name(obj, PEER_MAP), "peer map")
        except Exception:
            self.close()
            raise
        self._ncpus = _check(self._lib.libbpf_num_possible_cpus(), "possible CPUs")
        self.attached: dict[str, int] = {}  # device name -> its ifindex

    def enable_liberal_tracking(self) -> None:
        """Set in the node namespace only: the host's conntrack is never touched."""
        sysctl(self.ns, LIBERAL_SYSCTL, 1)

    def attach(self, ifname: str) -> None:
        """Attach at ``ifname``'s tc ingress (replacing an earlier copy: idempotent)."""
        with _netns.enter(self.ns):
            try:
                ifindex = socket.if_nametoindex(ifname)
            except OSError as e:
                raise FastPathError(f"fast path: no device {ifname} in {self.ns}") from e
            hook = _TcHook(ctypes.sizeof(_TcHook), ifindex, BPF_TC_INGRESS, 0, 0)
            rc = self._lib.bpf_tc_hook_create(ctypes.byref(hook))
            if rc < 0 and rc != -errno.EEXIST:
                _check(rc, f"clsact on {ifname}")
            opts = _TcOpts(ctypes.sizeof(_TcOpts), self.prog_fd, BPF_TC_F_REPLACE, 0, TC_HANDLE, TC_PRIORITY, 0)
            _check(self._lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)), f"attach to {ifname}")
            if _kind(ifname) == "veth":
                key, val = ctypes.c_uint32(ifindex), ctypes.c_uint8(1)
                _check(self._lib.bpf_map_update_elem(self._peer_fd, ctypes.byref(key), ctypes.byref(val), 0),
                       f"peer map for {ifname}")
        self.attached[ifname] = ifindex

    def detach(self, ifname: str) -> None:
        """Remove the clsact qdisc (and so the program) from ``ifname``; a device that is
        already gone is fine."""
        with _netns.enter(self.ns):
            try:
                ifindex = socket.if_nametoindex(ifname)
            except OSError:
                ifindex = 0
            if ifindex:
                hook = _TcHook(ctypes.sizeof(_TcHook), ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS, 0, 0)
                rc = self._lib.bpf_tc_hook_destroy(ctypes.byref(hook))
                if rc < 0 and rc not in (-errno.ENOENT, -errno.EINVAL, -errno.ENODEV):
                    _check(rc, f"detach from {ifname}")
                key = ctypes.c_uint32(ifindex)
                self._lib.bpf_map_delete_elem(self._peer_fd, ctypes.byref(key))
        self.attached.pop(ifname, None)

    def forget(self, ifname: str) -> None:
        """A device that went away (a pod's veth goes with its namespace): drop its entry."""
        ifindex = self.attached.pop(ifname, 0)
        if ifindex:
            key = ctypes.c_uint32(ifindex)
            self._lib.bpf_map_delete_elem(self._peer_fd, ctypes.byref(key))

    def stats(self) -> Stats:
        """Sum the per-CPU counters."""
        totals = []
        for which in (0, 1):
            key = ctypes.c_uint32(which)
            values = (ctypes.c_uint64 * self._ncpus)()
            _check(self._lib.bpf_map_lookup_elem(self._stats_fd, ctypes.byref(key), values), "read counters")
            totals.append(sum(values))
        return Stats(totals[0], totals[1])

    def close(self) -> None:
        """Detach from every device still attached, then drop the object."""
        for ifname in sorted(self.attached):
            self.detach(ifname)
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None
