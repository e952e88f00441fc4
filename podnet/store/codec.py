"""What every backend shares: value encoding, the checks a request must pass, and the errors
a request can end in.

Backends store values as compact JSON text, so a value read back is always a fresh copy (no
aliasing between callers) and the memory backend rejects exactly what SQLite and etcd would,
in the same words.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, overload

from ..errors import AlreadyExists, Conflict, NotFound, PodnetError
from .api import Compare, Delete, Put

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(key: str, value: dict[str, Any]) -> str:
    """A value as stored: compact JSON. Non-JSON values are a caller bug, reported with the key."""
    if not isinstance(value, dict):
        raise PodnetError(f"store value for {key!r} must be a JSON object, got {type(value).__name__}")
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise PodnetError(f"store value for {key!r} is not JSON-serialisable: {exc}") from exc


@overload
def decode(text: str) -> dict[str, Any]: ...


@overload
def decode(text: str | None) -> dict[str, Any] | None: ...


def decode(text: str | None) -> dict[str, Any] | None:
    """A stored value back (None stays None: a deleted key's absent value)."""
    if text is None:
        return None
    value: dict[str, Any] = json.loads(text)
    return value


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise PodnetError(f"store key must be a non-empty string, got {key!r}")
    return key


def check_txn(compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> None:
    """Reject what etcd rejects: an op that is not Put/Delete, or two ops on one key."""
    for cmp in compares:
        check_key(cmp.key)
        if cmp.mod_revision < 0:
            raise PodnetError(f"compare on {cmp.key!r}: mod_revision must be ≥ 0, got {cmp.mod_revision}")
    seen: set[str] = set()
    for op in ops:
        if not isinstance(op, (Put, Delete)):
            raise PodnetError(f"transaction op must be Put or Delete, got {type(op).__name__}")
        check_key(op.key)
        if op.key in seen:
            raise PodnetError(
                f"transaction touches key {op.key!r} twice",
                hint="merge the operations on one key into one Put or Delete",
            )
        seen.add(op.key)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).

    Used as ``prefix <= key < prefix_end`` so a prefix scan is an index range scan.
    """
    if not prefix:
        return None
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:
        return prefix_end(prefix[:-1])
    nxt = ord(last) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; skip past them
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)


def already_exists(key: str) -> AlreadyExists:
    return AlreadyExists(f"key {key!r} already exists", hint="update it instead, or delete it first")


def not_found(key: str) -> NotFound:
    return NotFound(f"key {key!r} not found", hint="create it first")


def stale(key: str, expected: int, actual: int) -> Conflict:
    """A write guarded on ``expected`` found the key at ``actual``."""
    return Conflict(
        f"key {key!r} was modified (at revision {actual}) since revision {expected}",
        hint="read it again and retry the change",
    )
