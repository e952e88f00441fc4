"""What a test left behind on the machine: namespaces, their records, processes.

Several test runs (other checkouts, CI) share one machine, so a leak check must never look at
another run's objects, let alone remove them. Everything here is attributed before it is
looked at:

- namespaces and their records under ``/run/podnet/netns`` by name: only names under a prefix
  this process handed out (``Prefixes``) count;
- processes by an environment variable this process sets (inherited by everything a test
  starts, daemons included) or by a working directory under the run's own temporary directory
  (containers, which get an environment of their own).

A check takes a ``Footprint`` before and after a test; what is new afterwards leaked. The
report names each leaked namespace's podnet links and nftables tables, which usually tell which
part of podnet forgot its cleanup.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from podnet.kernel import netns
from podnet.workloads.records import proc_start_time

OWNER_ENV = "PODNET_TEST_RUN"
#: links podnet creates: Calico-style pod veths, VXLAN and IPIP devices
POD_LINK_PREFIXES = ("cali", "flannel.", "vxlan.calico", "tunl")


@dataclass
class Prefixes:
    """Namespace-name prefixes this process handed out; the leak check looks only under them."""

    issued: list[str] = field(default_factory=list)

    def new(self, sep: str = "-") -> str:
        """A fresh ``pt-xxxxxx`` prefix (random: other runs on the machine use the same scheme)."""
        prefix = f"pt-{secrets.token_hex(3)}{sep}"
        self.issued.append(prefix)
        return prefix

    def owns(self, name: str) -> bool:
        return name.startswith(tuple(self.issued))


@dataclass(frozen=True)
class Process:
    pid: int
    start_time: int  # with the PID, identifies the process (PIDs are reused)
    argv: str


@dataclass(frozen=True)
class Footprint:
    namespaces: frozenset[str]
    records: frozenset[str]  # file names under netns.RECORD_DIR
    processes: frozenset[Process]


@dataclass(frozen=True)
class Leaks:
    namespaces: tuple[str, ...]
    records: tuple[str, ...]
    processes: tuple[Process, ...]

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.records or self.processes)

    def describe(self) -> str:
        lines = []
        for name in self.namespaces:
            lines.append(f"network namespace {name}: links {_pod_links(name)}, nft tables {_nft_tables(name)}")
        lines += [f"namespace record {netns.RECORD_DIR}/{r}" for r in self.records]
        lines += [f"process {p.pid}: {p.argv}" for p in self.processes]
        return "\n".join(lines)


def kernel_unavailable() -> str | None:
    """Why tests that create network namespaces cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root: it creates network namespaces (run `make test-kernel` as root)"
    try:
        res = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace: {exc}"
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.decode(errors='replace').strip()}"
    return None


def tag_processes(run_id: str) -> None:
    """Mark this process's environment so every process started from now on is attributable."""
    os.environ[OWNER_ENV] = run_id


def footprint(prefixes: Prefixes, run_dirs: Sequence[str]) -> Footprint:
    """This run's namespaces, records and processes as they are now (the caller's own PID
    excluded)."""
    names = frozenset(n for n in netns.list_all() if prefixes.owns(n))
    try:
        records = frozenset(f for f in os.listdir(netns.RECORD_DIR) if prefixes.owns(f))
    except FileNotFoundError:
        records = frozenset()
    return Footprint(names, records, frozenset(_processes(os.environ.get(OWNER_ENV, ""), run_dirs)))


def leaked(before: Footprint, after: Footprint) -> Leaks:
    """What is new in ``after``. A new process whose parent (or grandparent …) was already
    running before is that process's (a module-scoped cluster's agent starting a pod's
    containers), not the leak of whatever ran in between."""
    older = {p.pid for p in before.processes}
    new = [p for p in after.processes - before.processes if not _descends_from(p.pid, older)]
    return Leaks(tuple(sorted(after.namespaces - before.namespaces)),
                 tuple(sorted(after.records - before.records)),
                 tuple(sorted(new, key=lambda p: p.pid)))


def remove(leaks: Leaks) -> None:
    """Remove what leaked (all of it this run's own, by attribution): processes first, so none
    of them re-creates what is removed after."""
    for p in leaks.processes:
        if proc_start_time(p.pid) == p.start_time:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for name in leaks.namespaces:
        netns.remove(name, only_owned=False)  # the test's own, even if made with `ip netns add`
    for record in leaks.records:
        try:
            os.unlink(os.path.join(netns.RECORD_DIR, record))
        except FileNotFoundError:
            pass


def _processes(run_id: str, run_dirs: Iterable[str]) -> Iterable[Process]:
    if not run_id:
        return
    marker = f"{OWNER_ENV}={run_id}".encode()
    dirs = tuple(os.path.join(d, "") for d in run_dirs)
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                ours = marker in f.read().split(b"\0")
            if not ours and dirs:
                ours = os.path.join(os.readlink(f"/proc/{pid}/cwd"), "").startswith(dirs)
            if not ours:
                continue
            start = proc_start_time(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile
        if start is not None:  # a zombie has exited already: its parent just has not reaped it
            yield Process(pid, start, argv)


def _descends_from(pid: int, ancestors: set[int]) -> bool:
    parent = _parent(pid)
    for _ in range(64):  # a chain this deep is not one a test makes
        if parent is None or parent <= 1:
            return False
        if parent in ancestors:
            return True
        parent = _parent(parent)
    return False


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _pod_links(ns: str) -> list[str]:
    out = netns.run_in(ns, ["ip", "-j", "link", "show"]).stdout
    try:
        names = [str(link["ifname"]) for link in json.loads(out or "[]")]
    except ValueError:
        return []
    return [n for n in names if n.startswith(POD_LINK_PREFIXES)]


def _nft_tables(ns: str) -> list[str]:
    out = netns.run_in(ns, ["nft", "list", "tables"]).stdout
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.startswith("table ")]
