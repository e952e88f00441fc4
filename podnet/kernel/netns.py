"""Named network namespaces, created without forking and recorded as podnet's.

Layout is the one iproute2 uses (a bind mount of the namespace under ``/run/netns/NAME``), so
``ip netns``, ``nsenter --net=/run/netns/NAME`` and CNI runtimes all see the same names. Creating
one takes a thread-local ``unshare`` + bind mount + ``setns`` back (no ``ip`` exec, no fork;
bench/netns.py compares it with ``ip netns add``). Every namespace podnet makes is also recorded under
``/run/podnet/netns`` with its inode, so ``remove`` deletes only what podnet created, never
something that merely has the same name.

Processes run inside a namespace through ``nsenter --net`` (not ``ip netns exec``, which also
remounts ``/sys`` and hides the cgroup hierarchy container runtimes need).
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from podnet.errors import AlreadyExists, NotFound, PodnetError

NETNS_DIR = "/run/netns"
RECORD_DIR = "/run/podnet/netns"

CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_BIND = 0x1000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_dir_lock = threading.Lock()
_dir_ready = False


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def path(name: str) -> str:
    """The bind-mount path of a named namespace (what CNI_NETNS should be)."""
    _check_name(name)
    return os.path.join(NETNS_DIR, name)


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or len(name) > 200:
        raise PodnetError(f"invalid network namespace name {name!r}",
                          hint="use a non-empty name without '/' (at most 200 characters)")


def _ensure_dir() -> None:
    """Make /run/netns a shared mount point, as ``ip netns add`` does, so namespaces mounted
    there are visible to processes in other mount namespaces (container runtimes)."""
    global _dir_ready
    if _dir_ready:
        return
    with _dir_lock:
        if _dir_ready:
            return
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
        os.makedirs(RECORD_DIR, mode=0o700, exist_ok=True)
        target = NETNS_DIR.encode()
        if _libc.mount(b"none", target, None, MS_SHARED | MS_REC, None) != 0:
            if ctypes.get_errno() != errno.EINVAL:
                raise _oserror(f"make {NETNS_DIR} shared")
            # Not a mount point yet: bind it onto itself first, then share it.
            if _libc.mount(target, target, b"none", MS_BIND | MS_REC, None) != 0:
                raise _oserror(f"bind {NETNS_DIR}")
            if _libc.mount(b"none", target, None, MS_SHARED | MS_REC, None) != 0:
                raise _oserror(f"make {NETNS_DIR} shared")
        _dir_ready = True


def exists(name: str) -> bool:
    """True if ``/run/netns/NAME`` is a live namespace mount (not just a stale empty file)."""
    try:
        return _is_nsfs(path(name))
    except FileNotFoundError:
        return False


def _is_nsfs(p: str) -> bool:
    st = os.stat(p)
    # An nsfs inode lives on a different device than the tmpfs file it is mounted on.
    return st.st_dev != os.stat(os.path.dirname(p)).st_dev


def inode(name: str) -> int:
    """The namespace's inode number (identity: stable while it lives, unique among live ones)."""
    try:
        return os.stat(path(name)).st_ino
    except FileNotFoundError:
        raise NotFound(f"network namespace {name!r} does not exist") from None


def _record_path(name: str) -> str:
    return os.path.join(RECORD_DIR, name + ".json")


def owned(name: str) -> bool:
    """True if podnet created the namespace now mounted under ``name``."""
    return owner(name) is not None


def owner(name: str) -> str | None:
    """The ``owner`` podnet recorded when it created the namespace now mounted under ``name``
    (None: not podnet's). Lets a caller tell its own namespace from another podnet user's of
    the same name (another cluster, another test run)."""
    try:
        with open(_record_path(name)) as f:
            rec = json.load(f)
        if exists(name) and rec.get("inode") == inode(name):
            return str(rec.get("owner", ""))
    except (FileNotFoundError, ValueError, NotFound):
        pass
    return None


def create(name: str, *, owner: str = "podnet") -> int:
    """Create namespace ``name`` with ``lo`` up; return its inode. Raises AlreadyExists.

    Runs in the calling thread: unshare(CLONE_NEWNET) affects only this thread, and the thread
    is switched back before returning, whatever happens. Claiming the name and mounting on it
    happen under a lock shared by every podnet process, so of several creating one name at
    once exactly one succeeds (a file another creator has just made is not a stale one).
    """
    p = path(name)
    _ensure_dir()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    mounted = False
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _oserror("unshare(CLONE_NEWNET)")
        try:
            with _names_locked():
                try:
                    os.close(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
                except FileExistsError:
                    if exists(name):
                        raise AlreadyExists(f"network namespace {name!r} already exists",
                                            hint=f"remove it first (podnet owns it: {owned(name)})") from None
                    # A stale file from an interrupted create or delete: reuse it.
                mounted = True  # from here on the file is ours to remove on failure
                if _libc.mount(b"/proc/thread-self/ns/net", p.encode(), b"none", MS_BIND, None) != 0:
                    raise _oserror(f"bind-mount namespace on {p}")
            _set_lo_up()
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - would be fatal
                raise _oserror("setns back to the original namespace")
    except BaseException:
        if mounted:
            with _names_locked():
                _unmount_and_unlink(p)
        raise
    finally:
        os.close(home)
    ino = os.stat(p).st_ino
    rec = {"name": name, "inode": ino, "owner": owner, "pid": os.getpid(), "created": time.time()}
    tmp = _record_path(name) + f".{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, _record_path(name))
    return ino


@contextmanager
def _names_locked() -> Iterator[None]:
    """Serialise claiming, mounting and unmounting names across processes and threads (an
    flock on one file: each call opens its own description, so threads exclude each other too)."""
    import fcntl

    fd = os.open(os.path.join(RECORD_DIR, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _set_lo_up() -> None:
    """Bring up ``lo`` in the current thread's namespace with one ioctl (no netlink socket)."""
    import fcntl
    import socket
    import struct

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def _unmount_and_unlink(p: str) -> None:
    if _libc.umount2(p.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        raise _oserror(f"unmount {p}")
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def remove(name: str, *, only_owned: bool = True) -> bool:
    """Delete a namespace podnet created; False if it was not there (idempotent).

    The kernel frees the namespace (and the veth peers in it) once the last process and
    mount let go, asynchronously. Raises PodnetError for a namespace podnet did not create
    unless ``only_owned=False``.
    """
    p = path(name)
    if not os.path.lexists(p):
        _drop_record(name)
        return False
    if exists(name) and only_owned and not owned(name):
        raise PodnetError(f"network namespace {name!r} was not created by podnet; refusing to remove it",
                          hint=f"remove it yourself with `ip netns del {name}` if it is really unused")
    _ensure_dir()
    with _names_locked():
        _unmount_and_unlink(p)
    _drop_record(name)
    return True


def remove_stale(name: str) -> bool:
    """Remove ``/run/netns/NAME`` if it is an empty file left by a create that was killed
    between claiming the name and mounting the namespace on it; True if one was removed.

    Such a file is no namespace (``exists`` is False and there is no record), so ``owner``
    cannot tell whose it is; the caller knows the name was its own. A live namespace mounted
    there is never touched: the check and the unlink hold the lock ``create`` claims under.
    """
    p = path(name)
    _ensure_dir()
    with _names_locked():
        if not os.path.lexists(p) or _is_nsfs(p):
            return False
        os.unlink(p)
    _drop_record(name)
    return True


def stale_files(prefixes: Sequence[str]) -> list[str]:
    """Names under /run/netns starting with one of ``prefixes`` that are left-over empty files,
    not namespaces (see ``remove_stale``); read under the creation lock, so a name being
    claimed at this moment is not reported."""
    if not prefixes:
        return []
    _ensure_dir()
    with _names_locked():
        try:
            names = [n for n in os.listdir(NETNS_DIR) if n.startswith(tuple(prefixes))]
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not _is_nsfs(os.path.join(NETNS_DIR, n)))


def _drop_record(name: str) -> None:
    try:
        os.unlink(_record_path(name))
    except FileNotFoundError:
        pass


def list_owned() -> list[str]:
    """Names of the live namespaces podnet created (for leak checks and crash recovery)."""
    try:
        names = [f[:-5] for f in os.listdir(RECORD_DIR) if f.endswith(".json")]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if owned(n))


def list_all() -> list[str]:
    """Names of every namespace mounted under /run/netns."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if exists(n))
    except FileNotFoundError:
        return []


def current_owned() -> str | None:
    """The name of the namespace the calling thread is in if podnet created it, else None
    (the machine's own namespace, or anyone else's)."""
    here = os.stat("/proc/thread-self/ns/net").st_ino
    try:
        records = [f[:-5] for f in os.listdir(RECORD_DIR) if f.endswith(".json")]
    except FileNotFoundError:
        return None
    for name in records:
        try:
            if exists(name) and inode(name) == here and owned(name):
                return name
        except (OSError, PodnetError):
            continue
    return None


@contextmanager
def enter(name_or_path: str) -> Iterator[None]:
    """Switch the calling thread into a namespace for the ``with`` block, then back.

    Accepts a name under /run/netns or any path to a netns file (``/proc/PID/ns/net``). Sockets
    opened inside stay bound to that namespace after the block ends, which is how podnet talks
    netlink to many namespaces from one process without forking.
    """
    target = name_or_path if name_or_path.startswith("/") else path(name_or_path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {name_or_path!r} does not exist") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise _oserror(f"enter network namespace {name_or_path}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - would be fatal
                raise _oserror("setns back to the original namespace")
    finally:
        os.close(fd)
        os.close(home)


def nsenter_argv(name_or_path: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside the namespace, switching only the network namespace."""
    target = name_or_path if name_or_path.startswith("/") else path(name_or_path)
    return ["nsenter", f"--net={target}", "--", *argv]


def run_in(name: str, argv: Sequence[str], *, check: bool = False, capture: bool = True,
           timeout: float | None = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command inside a namespace and wait for it (text mode; output captured by default)."""
    if not exists(name) and not name.startswith("/"):
        raise NotFound(f"network namespace {name!r} does not exist")
    if capture:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(nsenter_argv(name, argv), check=check, text=True, timeout=timeout, **kwargs)


def popen_in(name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a long-running process inside a namespace; the caller records and owns its PID."""
    if not exists(name) and not name.startswith("/"):
        raise NotFound(f"network namespace {name!r} does not exist")
    return subprocess.Popen(nsenter_argv(name, argv), **kwargs)


def wait_gone(name: str, timeout: float = 5.0) -> bool:
    """Wait until nothing is mounted at the name (removal of the mount is synchronous; the
    namespace's links disappear asynchronously afterwards)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.lexists(path(name)):
            return True
        time.sleep(0.01)
    return False


@contextmanager
def ipr_in(ns: str | None) -> Iterator[Any]:
    """A pyroute2 IPRoute socket bound to namespace ``ns`` (a name or a path; None: the caller's
    own). The socket keeps its namespace after the thread switches back, so it is opened inside."""
    from pyroute2 import IPRoute

    if ns is None:
        ipr = IPRoute()
    else:
        with enter(ns):
            ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()
