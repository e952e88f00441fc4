"""The Store protocol: a revisioned key-value store with transactions and watch.

Shaped like etcd v3 so the etcd backend is a thin adapter: one global revision that every
write bumps; each key remembers the revision that created it and last modified it; a watch
replays every change after a revision, in order, with no gaps, or raises ``Compacted``.
Values are JSON-able dicts (the resource's manifest form).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Record:
    key: str
    value: dict[str, Any]
    create_revision: int
    mod_revision: int
    version: int = 1  # number of writes to this key since it was created


EventType = Literal["PUT", "DELETE"]


@dataclass(frozen=True)
class Event:
    type: EventType
    key: str
    revision: int
    value: dict[str, Any] | None  # the new value (PUT) or None (DELETE)
    prev_value: dict[str, Any] | None = None  # the deleted value (DELETE); None for PUT
    version: int = 0  # the key's version after a PUT (1 = it was created here); 0 for DELETE


@dataclass(frozen=True)
class Compare:
    """A transaction guard on one key's mod_revision (0 = the key must not exist)."""

    key: str
    mod_revision: int


@dataclass(frozen=True)
class Put:
    key: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    key: str


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int  # the store's revision after the transaction (unchanged when it failed)
    failed_keys: tuple[str, ...] = field(default=())  # compares that did not hold


class Store(Protocol):
    """What every backend implements; ``tests/unit/test_store_contract.py`` holds it to this."""

    def revision(self) -> int:
        """The current global revision (0 for an empty, never-written store)."""

    def get(self, key: str) -> Record | None: ...

    def list(self, prefix: str) -> tuple[list[Record], int]:
        """Records under ``prefix`` sorted by key, and the revision they were read at."""

    def create(self, key: str, value: dict[str, Any]) -> Record:
        """Raises ``errors.AlreadyExists`` if the key exists."""

    def update(self, key: str, value: dict[str, Any], mod_revision: int | None = None) -> Record:
        """Replace a value; with ``mod_revision`` only if it still matches (else ``errors.Conflict``).
        Raises ``errors.NotFound`` if the key does not exist."""

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        """Remove a key; False if it was absent. ``errors.Conflict`` on a stale mod_revision."""

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        """All compares hold → apply every op atomically at one new revision; else nothing."""

    def watch(self, prefix: str, start_revision: int, timeout: float | None = None) -> Iterator[Event]:
        """Every event under ``prefix`` with revision ≥ ``start_revision``, in order, blocking for
        new ones; stops after ``timeout`` seconds without events (None = forever).
        Raises ``errors.Compacted`` if that history is gone."""

    def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (current values stay)."""

    def close(self) -> None: ...
