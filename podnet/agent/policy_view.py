"""A store snapshot kept current by watch events, for the policy loop.

``ResourceStore.snapshot()`` reads and decodes every object: fine once, too slow on every pass
of a loop that must enforce a policy write within tens of milliseconds in a cluster of
thousands of objects. ``LiveView`` lists once, then applies only the watch events since its
revision (decoding just the changed objects) and hands out a ``Snapshot`` of the same shape.
If the history it needs was compacted, it falls back to a fresh full snapshot.
"""
from __future__ import annotations

from typing import Any

from podnet.errors import Compacted
from podnet.store.api import Record
from podnet.store.resources import Snapshot, decode, kind_of_key


class LiveView:
    """``refresh()`` → the store's state as a Snapshot, at the cost of the changes since the last."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.revision = -1
        self._objects: dict[str, Any] = {}  # key → decoded Resource
        self._raw: dict[str, dict[str, Any]] = {}
        self._snapshot: Snapshot | None = None
        self._loaded = False
        self.full_reads = 0
        #: the keys of non-resource records (IPAM, config) the last ``poll`` saw change
        self.raw_changes: set[str] = set()

    def _full(self) -> None:
        records, revision = self.store.kv.list("")
        self._objects.clear()
        self._raw.clear()
        for record in records:
            cls = kind_of_key(record.key)
            if cls is None:
                self._raw[record.key] = record.value
            else:
                self._objects[record.key] = decode(record, cls)
        self.revision = revision
        self.full_reads += 1
        self._loaded = True
        self._snapshot = None

    def poll(self) -> list[tuple[str, Any, Any]] | None:
        """Apply what changed since the last call: (key, old object, new object) per changed
        resource in store order (None for absent), or None when everything was read again."""
        if not self._loaded:
            self._full()
            return None
        changes: dict[str, tuple[Any, Any]] = {}
        self.raw_changes = set()
        seen_event = False
        try:
            for ev in self.store.kv.watch("", self.revision + 1, timeout=0):
                seen_event = True
                self.revision = max(self.revision, ev.revision)
                cls = kind_of_key(ev.key)
                if cls is None:
                    self.raw_changes.add(ev.key)
                    if ev.type == "DELETE":
                        self._raw.pop(ev.key, None)
                    else:
                        self._raw[ev.key] = ev.value or {}
                    continue
                old = self._objects.get(ev.key)
                if ev.type == "DELETE":
                    self._objects.pop(ev.key, None)
                    new = None
                else:
                    new = self._objects[ev.key] = decode(Record(ev.key, ev.value or {}, 0, ev.revision, ev.version), cls)
                first = changes.pop(ev.key, (old, None))[0]  # keep the oldest "old", move to the end
                changes[ev.key] = (first, new)
        except Compacted:
            self._full()
            return None
        if not seen_event and self.store.kv.revision() > self.revision:
            self._full()  # a backend whose watch could not answer at once: read it all
            return None
        if seen_event:
            self._snapshot = None
        return [(k, old, new) for k, (old, new) in changes.items()]

    def raw(self, key: str) -> dict[str, Any] | None:
        """A non-resource record's current value (None: absent)."""
        return self._raw.get(key)

    def snapshot(self) -> Snapshot:
        """The current state as a Snapshot (built only when something changed)."""
        if not self._loaded:
            self._full()
        if self._snapshot is None:
            by_kind: dict[str, list[Any]] = {}
            for obj in self._objects.values():
                by_kind.setdefault(obj.KIND, []).append(obj)
            objects = {k: tuple(sorted(v, key=lambda o: (o.metadata.namespace or "", o.metadata.name)))
                       for k, v in by_kind.items()}
            self._snapshot = Snapshot(self.revision, objects, dict(self._raw))
        return self._snapshot
