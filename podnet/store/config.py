"""Which store a state directory uses: ``<state-dir>/store.json`` names an etcd cluster (its
endpoints and the client's TLS files); without it the state directory holds the embedded
SQLite store. Every podnet process opens its store through its state directory, so one file
switches a node (or the CLI) to the distributed mode.

Endpoints are given as Calico gives ``etcd_endpoints``: ``https://192.168.10.71:2379,…``;
``etcd://a:2379,b:2379`` is short for plain ``http://`` endpoints; ``unix://`` and
``unixs://`` name a member's local socket. As in Calico, the CA, certificate and key come
together or not at all.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import PodnetError

STORE_FILE = "store.json"
SCHEMES = ("http", "https", "unix", "unixs")


@dataclass(frozen=True)
class TlsFiles:
    """Where a client's CA bundle, certificate and key are (the seeds' etcd_ca/cert/key)."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class StoreConfig:
    """An etcd cluster: its client endpoints, and the TLS identity to present (None: plain)."""

    endpoints: tuple[str, ...]
    tls: TlsFiles | None = None

    def to_dict(self) -> dict[str, object]:
        tls = None if self.tls is None else {"ca": self.tls.ca, "cert": self.tls.cert, "key": self.tls.key}
        return {"endpoints": list(self.endpoints), "tls": tls}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> StoreConfig:
        raw_tls = data.get("tls")
        tls = TlsFiles(**raw_tls) if isinstance(raw_tls, dict) else None
        raw_endpoints = data.get("endpoints")
        if not isinstance(raw_endpoints, list):
            raise PodnetError("store configuration without endpoints")
        return cls(tuple(str(e) for e in raw_endpoints), tls)


def parse_endpoints(text: str) -> tuple[str, ...]:
    """``etcd://h1:2379,h2:2379`` or a comma-separated list of endpoint URLs, checked."""
    text = text.strip()
    if text.startswith("etcd://"):
        pairs = text[len("etcd://"):].split(",")
        bad = [hp for hp in pairs if not _host_port(hp)]
        if bad:
            raise PodnetError(f"bad store URL {text!r}: expected etcd://host:port[,host:port…]",
                              hint="or https://host:port,… with --etcd-ca, --etcd-cert and --etcd-key")
        text = ",".join("http://" + hp for hp in pairs)
    out = []
    for item in (t.strip() for t in text.split(",")):
        parts = urlsplit(item)
        if parts.scheme.startswith("http") and not _host_port(parts.netloc):
            raise PodnetError(f"bad etcd endpoint {item!r}: expected {parts.scheme}://host:port")
        if parts.scheme not in SCHEMES:
            raise PodnetError(f"bad etcd endpoint {item!r}",
                              hint="write https://host:port (or etcd://host:port,host:port for plain http)")
        if parts.scheme.startswith("unix") and not parts.path:
            raise PodnetError(f"bad etcd endpoint {item!r}: expected {parts.scheme}:///path/to/socket")
        out.append(item.rstrip("/"))
    if not out:
        raise PodnetError("no etcd endpoints given")
    return tuple(out)


def _host_port(text: str) -> bool:
    try:
        parts = urlsplit("http://" + text)
        return bool(parts.hostname and parts.port)
    except ValueError:  # a port out of range
        return False


def check_tls(ca: str | None, cert: str | None, key: str | None) -> TlsFiles | None:
    """The three files, each readable, or None when none is given (all or none, as Calico)."""
    given = {"--etcd-ca": ca, "--etcd-cert": cert, "--etcd-key": key}
    if not any(given.values()):
        return None
    missing = [flag for flag, path in given.items() if not path]
    if missing:
        raise PodnetError(f"{', '.join(missing)} missing: the CA, certificate and key go together",
                          hint="give all three files, or none for a plain-http etcd")
    for flag, path in given.items():
        assert path is not None
        if not os.access(path, os.R_OK):
            raise PodnetError(f"{flag} {path}: cannot read the file", hint="check the path and its permissions")
    assert ca and cert and key
    return TlsFiles(os.path.abspath(ca), os.path.abspath(cert), os.path.abspath(key))


def config_path(state_dir: str) -> str:
    return os.path.join(state_dir, STORE_FILE)


def load(state_dir: str) -> StoreConfig | None:
    """The state directory's etcd configuration, or None (it uses the embedded store)."""
    try:
        with open(config_path(state_dir)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PodnetError(f"cannot read {config_path(state_dir)}: {exc}",
                          hint="write it again with `podnet node install`") from exc
    return StoreConfig.from_dict(data)


def save(state_dir: str, config: StoreConfig) -> str:
    """Write ``store.json`` (0600: it names the client key) atomically; returns its path."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = config_path(state_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config.to_dict(), f, indent=1)
    os.replace(tmp, path)
    return path
