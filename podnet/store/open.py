"""Opening a store: from a state directory (the embedded default) or a URL.

Imports of backends are lazy so that a short-lived process (the CNI plugin) loads only what it
uses.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import PodnetError
from .api import Store

if TYPE_CHECKING:
    from .resources import ResourceStore

DEFAULT_STATE_DIR = "/var/lib/podnet"
STATE_DIR_ENV = "PODNET_STATE_DIR"
DB_NAME = "store.db"


def default_state_dir() -> str:
    """``$PODNET_STATE_DIR`` if set, else ``/var/lib/podnet``."""
    return os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR


def state_dir_url(state_dir: str) -> str:
    return "sqlite://" + os.path.abspath(os.path.join(state_dir, DB_NAME))


def open_backend(url: str) -> Store:
    """The raw key-value Store for ``sqlite:///abs/path.db``, ``memory://`` or ``etcd://host:port``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path
        if parts.netloc or not path:
            raise PodnetError(f"bad store URL {url!r}: expected sqlite:///absolute/path/store.db")
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        import sqlite3

        from .sqlite import SqliteStore
        try:
            return SqliteStore(path)
        except sqlite3.DatabaseError as exc:
            raise damaged_store(path, exc) from None
    if parts.scheme == "memory":
        from .memory import MemoryStore
        return MemoryStore()
    if parts.scheme == "etcd":
        if not parts.hostname or not parts.port:
            raise PodnetError(f"bad store URL {url!r}: expected etcd://host:port")
        from .etcd import EtcdStore
        return EtcdStore(parts.hostname, parts.port)
    raise PodnetError(
        f"unknown store URL {url!r}",
        hint="use sqlite:///path/store.db, memory:// or etcd://host:port",
    )


def damaged_store(path: str, exc: Exception) -> PodnetError:
    """A store file SQLite cannot read (not a database, or damaged), said plainly."""
    return PodnetError(f"the store {path} cannot be read: {exc}" if path else f"the store cannot be read: {exc}",
                       hint="it is not a podnet store or it is damaged: move it aside (then `podnet up` or "
                            "`podnet apply` starts a new one), or restore it from a copy")


def open_store_url(url: str, bootstrap: bool = True) -> ResourceStore:
    """A ResourceStore over the backend ``url`` names; ``bootstrap`` makes sure the namespaces
    ``default`` and ``kube-system`` exist (reads two keys; writes only the first time)."""
    from .resources import ResourceStore

    store = ResourceStore(open_backend(url))
    if bootstrap:
        store.bootstrap()
    return store


def open_store(state_dir: str | None = None, bootstrap: bool = True, create: bool = True) -> ResourceStore:
    """The embedded store at ``<state_dir>/store.db`` (directory created 0700); ``state_dir``
    None means ``default_state_dir()``. ``create=False`` (read-only commands) refuses a state
    directory without a store instead of creating an empty one at a mistyped path."""
    state_dir = state_dir or default_state_dir()
    if not create and not os.path.exists(os.path.join(state_dir, DB_NAME)):
        raise PodnetError(f"no cluster at {state_dir} (no {DB_NAME} there)",
                          hint=f"check --state-dir (or {STATE_DIR_ENV}); `podnet up` starts a cluster, "
                               "`podnet apply` creates the store")
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise PodnetError(
            f"cannot create state directory {state_dir}: {exc.strerror}",
            hint=f"run as root, or choose another with --state-dir / {STATE_DIR_ENV}",
        ) from exc
    return open_store_url(state_dir_url(state_dir), bootstrap=bootstrap)
