"""One BIRD 2 daemon per node: start it inside the node's namespace, syntax-check every new
config (``bird -p -c``) before ``birdc configure`` (which keeps established sessions), read
``show protocols``, and stop it by the PID it recorded."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass

from podnet.errors import PodnetError

from . import netns as netns_mod

BIRD = "bird"
BIRDC = "birdc"


@dataclass(frozen=True)
class ProtocolStatus:
    name: str
    proto: str
    state: str  # up / start / down
    since: str
    info: str


class Bird:
    """The BIRD daemon of one node; files live in ``run_dir``. ``supervised``: BIRD is its own
    service (a systemd unit, ``podnet supervise``) that starts ``bird -f`` once its
    configuration exists; then this only writes and reloads the configuration."""

    def __init__(self, run_dir: str, netns: str | None = None, supervised: bool = False) -> None:
        self.run_dir = run_dir
        self.netns = netns
        self.supervised = supervised
        self.conf = os.path.join(run_dir, "bird.conf")
        self.ctl = os.path.join(run_dir, "bird.ctl")
        self.pidfile = os.path.join(run_dir, "bird.pid")
        self.log = os.path.join(run_dir, "bird.log")

    # -- process --------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The running daemon's PID, or None (a stale pid file is not a running daemon)."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "bird":
                    return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if self.ctl.encode() not in f.read():
                    return None
            return pid
        except (OSError, ValueError):
            return None

    def _argv(self, argv: list[str]) -> list[str]:
        return netns_mod.nsenter_argv(self.netns, argv) if self.netns else argv

    def check(self, text: str) -> None:
        """Raise PodnetError with BIRD's own message if ``text`` is not a valid config."""
        os.makedirs(self.run_dir, exist_ok=True)
        tmp = self.conf + ".check"
        with open(tmp, "w") as f:
            f.write(text)
        try:
            res = subprocess.run([BIRD, "-p", "-c", tmp], capture_output=True, text=True, timeout=10)
        finally:
            os.unlink(tmp)
        if res.returncode != 0:
            raise PodnetError(f"BIRD rejected the rendered configuration: {(res.stderr or res.stdout).strip()}",
                              hint="this is a podnet bug or a BGP resource BIRD cannot express; "
                                   "the previous configuration stays active")

    def apply(self, text: str) -> str:
        """Bring the daemon to ``text``: "started", "reconfigured" or "unchanged"."""
        running = self.pid() is not None
        try:
            with open(self.conf) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if running and current == text:
            return "unchanged"
        if self.supervised and not running and current == text:
            return "waiting for its supervisor to start it"
        self.write_config(text)
        if running:
            res = self.birdc("configure")
            if "Reconfigured" not in res and "Reconfiguration in progress" not in res:
                raise PodnetError(f"birdc configure failed: {res.strip()}")
            return "reconfigured"
        if self.supervised:
            return "waiting for its supervisor to start it"
        self.start()
        return "started"

    def write_config(self, text: str) -> None:
        """Check ``text`` with BIRD itself, then replace the configuration file atomically (a
        supervisor that starts BIRD once the file exists never sees half a file, or one BIRD
        refuses)."""
        self.check(text)
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf)

    def foreground_argv(self) -> list[str]:
        """BIRD in the foreground, as a supervisor runs it (``bird -f``)."""
        return [BIRD, "-f", "-c", self.conf, "-s", self.ctl, "-P", self.pidfile]

    def start(self) -> int:
        for stale in (self.ctl, self.pidfile):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        res = subprocess.run(self._argv([BIRD, "-c", self.conf, "-s", self.ctl, "-P", self.pidfile]),
                             capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise PodnetError(f"bird did not start: {(res.stderr or res.stdout).strip()}")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid and os.path.exists(self.ctl):
                return pid
            time.sleep(0.01)
        raise PodnetError(f"bird did not come up within 5 s (see {self.log})")

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM (BIRD withdraws its kernel routes), then SIGKILL. Idempotent."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        return True

    # -- control --------------------------------------------------------------------------
    def birdc(self, *command: str) -> str:
        res = subprocess.run([BIRDC, "-s", self.ctl, *command], capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise PodnetError(f"birdc {' '.join(command)} failed: {(res.stderr or res.stdout).strip()}",
                              hint=f"is bird running? its log is {self.log}")
        return res.stdout

    def protocols(self) -> list[ProtocolStatus]:
        return parse_protocols(self.birdc("show", "protocols"))


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemonised bird is reparented; its reaper may be slow)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


_ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")


def parse_protocols(text: str) -> list[ProtocolStatus]:
    """Rows of ``birdc show protocols`` (header and banner skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith(("BIRD ", "Name ")) or not line.strip():
            continue
        m = _ROW.match(line)
        if m:
            out.append(ProtocolStatus(name=m[1], proto=m[2], state=m[4], since=m[5], info=m[6].strip()))
    return out


PEER_TYPES = {"Mesh": "node-to-node mesh", "Node": "node specific", "Global": "global"}


@dataclass(frozen=True)
class PeerRow:
    """One row of ``podnet node status`` (calicoctl's table)."""

    address: str
    peer_type: str
    state: str
    since: str
    info: str


def peer_rows(protocols: list[ProtocolStatus]) -> list[PeerRow]:
    """BGP protocols named Mesh_/Node_/Global_<address> as calicoctl node status shows them."""
    rows = []
    for p in protocols:
        kind, _, addr = p.name.partition("_")
        if p.proto != "BGP" or kind not in PEER_TYPES:
            continue
        since = p.since.split(".")[0]
        rows.append(PeerRow(address=addr.replace("_", "."), peer_type=PEER_TYPES[kind], state=p.state,
                            since=since, info=p.info))
    return rows
