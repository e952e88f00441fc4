"""A lab etcd cluster: Debian's etcd-server members, each in a network namespace of its own on
the underlay (``podnet up --store etcd``) or on loopback (tests), with mutual TLS on client
and peer links, started and stopped by PID.

Members keep their data in memory (``/dev/shm``) when the machine has it: etcd fsyncs every
write, and on a lab machine busy with other work a disk stall of seconds makes members miss
elections. A killed member keeps its data (the page cache outlives the process); only a power
cut would lose it, which a lab does not survive anyway. Real hosts keep etcd on disk.

Each member also listens on a unix socket in its directory (``unixs://``), which is how
commands in the machine's own namespace reach the cluster without any route into the lab;
node processes use only the members' underlay addresses. Membership changes go through the
gateway's cluster API, as ``etcdctl member remove/add`` would.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from podnet.errors import PodnetError
from podnet.store.config import StoreConfig, TlsFiles
from podnet.store.etcd_client import EtcdClient

from . import processes
from .pki import CertificateAuthority, client_files

CLIENT_PORT = 2379
PEER_PORT = 2380
TOKEN = "podnet-lab"
#: podnet's apply is one transaction of every object it touches; history like the embedded store's
SERVER_FLAGS = ("--max-txn-ops", "100000", "--max-request-bytes", str(64 << 20),
                "--auto-compaction-mode", "revision", "--auto-compaction-retention", "10000")


def memory_data_root() -> str | None:
    """A fresh directory in ``/dev/shm`` for the members' data, or None (then on disk)."""
    if not os.path.isdir("/dev/shm"):
        return None
    return tempfile.mkdtemp(prefix="podnet-etcd-", dir="/dev/shm")


@dataclass(frozen=True)
class Member:
    name: str
    address: str  # where it listens for clients and peers
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    netns: str | None = None

    @property
    def client_url(self) -> str:
        return f"https://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:{self.peer_port}"


class EtcdCluster:
    """The members of one cluster and the files under ``directory`` (certificates, data,
    sockets, logs, and ``etcd.json`` recording the PIDs)."""

    def __init__(self, directory: str, members: Sequence[Member], *, heartbeat_ms: int = 100,
                 election_ms: int = 1000, data_root: str | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.data_root = data_root
        self.members = list(members)
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.pki = os.path.join(self.directory, "pki")
        self.client_tls = TlsFiles(os.path.join(self.pki, "client", "etcd-ca"),
                                   os.path.join(self.pki, "client", "etcd-cert"),
                                   os.path.join(self.pki, "client", "etcd-key"))

    # -- files -----------------------------------------------------------------------------
    def member_dir(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def data_dir(self, name: str) -> str:
        if self.data_root:
            return os.path.join(self.data_root, name)
        return os.path.join(self.member_dir(name), "data")

    def socket(self, name: str) -> str:
        """The member's unix socket (etcd names it after the URL's host:port, in its cwd)."""
        return os.path.join(self.member_dir(name), "local:2379")

    def log(self, name: str) -> str:
        return os.path.join(self.member_dir(name), "etcd.log")

    def _records_path(self) -> str:
        return os.path.join(self.directory, "etcd.json")

    def records(self) -> dict[str, processes.ProcessRecord]:
        try:
            with open(self._records_path()) as f:
                return {k: processes.ProcessRecord.from_dict(v) for k, v in json.load(f).items()}
        except FileNotFoundError:
            return {}

    def _record(self, name: str, rec: processes.ProcessRecord | None) -> None:
        recs = self.records()
        if rec is None:
            recs.pop(name, None)
        else:
            recs[name] = rec
        tmp = self._records_path() + ".tmp"
        with open(tmp, "w") as f:
            json.dump({k: v.to_dict() for k, v in recs.items()}, f, indent=1)
        os.replace(tmp, self._records_path())

    # -- what clients use ------------------------------------------------------------------
    def endpoints(self) -> tuple[str, ...]:
        """The members' underlay (or loopback) client URLs: what node processes use."""
        return tuple(m.client_url for m in self.members)

    def local_endpoints(self) -> tuple[str, ...]:
        """The members' unix sockets: what commands in this machine's own namespace use."""
        return tuple(f"unixs://{self.socket(m.name)}" for m in self.members)

    def config(self, local: bool = False) -> StoreConfig:
        return StoreConfig(self.local_endpoints() if local else self.endpoints(), self.client_tls)

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> None:
        """The CA, one certificate per member (its address, ``local`` and ``localhost``) and
        the client identity. Written once; ``start`` uses them."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        ca = CertificateAuthority()
        os.makedirs(self.pki, mode=0o700, exist_ok=True)
        ca.write_ca(os.path.join(self.pki, "ca.crt"))
        for m in self.members:
            ca.issue(self.pki, m.name, ips=[m.address, "127.0.0.1"], dns=["local", "localhost", m.name])
        client_files(os.path.join(self.pki, "client"), ca)

    def argv(self, m: Member, state: str = "new") -> list[str]:
        cluster = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        crt, key, ca = (os.path.join(self.pki, f"{m.name}.crt"), os.path.join(self.pki, f"{m.name}.key"),
                        os.path.join(self.pki, "ca.crt"))
        return ["etcd", "--name", m.name, "--data-dir", self.data_dir(m.name),
                "--listen-client-urls", f"{m.client_url},unixs://local:2379",
                "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", cluster, "--initial-cluster-token", TOKEN, "--initial-cluster-state", state,
                "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms),
                "--cert-file", crt, "--key-file", key, "--client-cert-auth", "--trusted-ca-file", ca,
                "--peer-cert-file", crt, "--peer-key-file", key, "--peer-client-cert-auth",
                "--peer-trusted-ca-file", ca, *SERVER_FLAGS]

    def start_member(self, m: Member, state: str = "new") -> processes.ProcessRecord:
        os.makedirs(self.member_dir(m.name), mode=0o700, exist_ok=True)
        try:  # a killed member leaves its socket file behind, and etcd will not bind over it
            os.unlink(self.socket(m.name))
        except FileNotFoundError:
            pass
        rec = processes.start(f"etcd/{m.name}", self.argv(m, state), self.log(m.name), m.netns,
                              cwd=self.member_dir(m.name))
        self._record(m.name, rec)
        return rec

    def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until the cluster takes a write."""
        for m in self.members:
            self.start_member(m)
        self.wait_healthy(timeout)

    def alive(self, name: str) -> bool:
        rec = self.records().get(name)
        return rec is not None and processes.alive(rec)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a member (SIGKILL: a crash; SIGSTOP/SIGCONT: a pause)."""
        rec = self.records().get(name)
        if rec is None or not processes.alive(rec):
            raise PodnetError(f"etcd member {name} is not running")
        os.kill(rec.pid, sig)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 5
            while processes.alive(rec) and time.monotonic() < deadline:
                os.waitpid(rec.pid, os.WNOHANG) if _is_child(rec.pid) else None
                time.sleep(0.01)

    def stop(self) -> list[str]:
        """Stop every member (SIGTERM, then SIGKILL: a 3.4 member whose peers are gone may
        campaign for seconds before it exits). Returns the names that were running."""
        recs = self.records()
        stopped = processes.stop_all(list(recs.values()), timeout=5.0)
        return [r.name for r in stopped]

    def destroy(self) -> None:
        self.stop()
        self.remove_data()
        shutil.rmtree(self.directory, ignore_errors=True)

    def remove_data(self) -> None:
        if self.data_root:
            shutil.rmtree(self.data_root, ignore_errors=True)

    # -- cluster API -----------------------------------------------------------------------
    def _client(self, endpoints: Sequence[str], timeout: float = 2.0) -> EtcdClient:
        return EtcdClient(endpoints, self.client_tls, connect_timeout=min(1.0, timeout), request_timeout=timeout)

    def member_status(self, m: Member, timeout: float = 1.0) -> dict[str, Any] | None:
        """``/v3/maintenance/status`` of one member (through its local socket), None if down."""
        client = self._client([f"unixs://{self.socket(m.name)}"], timeout)
        try:
            return client.call("maintenance/status", {})
        except PodnetError:
            return None
        finally:
            client.close()

    def leader(self, timeout: float = 10.0) -> Member:
        """The member that is leader now (waits for an election, up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.members:
                if not self.alive(m.name):
                    continue
                st = self.member_status(m)
                if st and st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                    return m
            if time.monotonic() > deadline:
                raise PodnetError(f"etcd cluster in {self.directory} has no leader after {timeout:.0f} s")
            time.sleep(0.05)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until a write through the members' sockets succeeds (a leader exists and a quorum
        answers); a member that exited meanwhile fails at once with its log."""
        deadline = time.monotonic() + timeout
        client = self._client(self.local_endpoints(), timeout=1.0)
        try:
            while True:
                dead = [m.name for m in self.members if m.name in self.records() and not self.alive(m.name)]
                if dead:
                    raise PodnetError(f"etcd member {', '.join(dead)} exited during start-up",
                                      hint=f"see {self.log(dead[0])}")
                try:
                    client.call("kv/put", {"key": "L3BvZG5ldC9oZWFsdGg=", "value": "e30="}, write=True)
                    return
                except PodnetError:
                    if time.monotonic() > deadline:
                        raise PodnetError(f"etcd cluster did not become healthy in {timeout:.0f} s",
                                          hint=f"see the logs in {self.directory}/*/etcd.log") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def etcdctl(self, via: str, *args: str, timeout: float = 30.0) -> str:
        """Run ``etcdctl`` against member ``via`` through its local socket; its stdout."""
        tls = ["--cacert", self.client_tls.ca, "--cert", self.client_tls.cert, "--key", self.client_tls.key]
        res = subprocess.run(["etcdctl", "--endpoints", "unixs://local:2379", "--command-timeout", f"{timeout:.0f}s",
                              *tls, *args], capture_output=True, text=True, timeout=timeout + 5,
                             cwd=self.member_dir(via))
        if res.returncode != 0:
            raise PodnetError(f"etcdctl {' '.join(args)} via {via} failed: {res.stderr.strip()}")
        return res.stdout

    def member_ids(self, via: str) -> dict[str, int]:
        listed = json.loads(self.etcdctl(via, "member", "list", "-w", "json"))
        return {str(m.get("name") or ""): int(m["ID"]) for m in listed.get("members", [])}

    def replace_member(self, name: str, timeout: float = 30.0) -> None:
        """A member whose data directory is lost comes back empty: stop it, remove it from the
        cluster, add it again, and start it to join the existing cluster (etcd's runtime
        reconfiguration guide). The others keep serving throughout."""
        m = next(x for x in self.members if x.name == name)
        rec = self.records().get(name)
        if rec is not None:
            processes.stop_all([rec], timeout=5.0)
        shutil.rmtree(self.data_dir(name), ignore_errors=True)
        via = next(o.name for o in self.members if o.name != name and self.alive(o.name))
        ids = self.member_ids(via)
        if name in ids:
            self.etcdctl(via, "member", "remove", f"{ids[name]:x}")
        deadline = time.monotonic() + timeout
        while True:  # etcd refuses a change until its members have been connected for 5 s
            try:
                self.etcdctl(via, "member", "add", name, f"--peer-urls={m.peer_url}")
                break
            except PodnetError as exc:
                if "unhealthy cluster" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.start_member(m, state="existing")
        self.wait_healthy(timeout)

    def to_dict(self) -> dict[str, object]:
        return {"directory": self.directory, "members": [asdict(m) for m in self.members],
                "heartbeat_ms": self.heartbeat_ms, "election_ms": self.election_ms, "data_root": self.data_root}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> EtcdCluster:
        members = [Member(**m) for m in d["members"]]  # type: ignore[attr-defined]
        return cls(str(d["directory"]), members, heartbeat_ms=int(d.get("heartbeat_ms", 100)),  # type: ignore[call-overload]
                   election_ms=int(d.get("election_ms", 1000)),  # type: ignore[call-overload]
                   data_root=str(d["data_root"]) if d.get("data_root") else None)


def _is_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False
