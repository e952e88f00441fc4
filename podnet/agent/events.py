"""Writing v1 Events as Kubernetes components do: one object per distinct (object, reason,
message), its ``count`` and ``lastTimestamp`` bumped on repeats. A repeat is written at most
every ``repeat_interval`` seconds (``flush`` writes the rest), so a probe failing every second
does not rewrite the store every second."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podnet.errors import PodnetError
from podnet.model import Event, Resource

log = logging.getLogger("podnet.events")
FORGET_AFTER = 3600.0


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Seen:
    name: str
    namespace: str
    data: dict[str, Any]
    count: int
    written_count: int
    written_at: float
    last: float


class EventRecorder:
    def __init__(self, store: Any, component: str, host: str | None = None,
                 clock: Callable[[], float] = time.time, repeat_interval: float = 10.0) -> None:
        self.store, self.component, self.host = store, component, host
        self.clock, self.repeat_interval = clock, repeat_interval
        self._seen: dict[tuple[str, ...], _Seen] = {}
        self._lock = threading.Lock()

    def record(self, obj: Resource, type_: str, reason: str, message: str, field_path: str | None = None) -> None:
        now = self.clock()
        ns = obj.metadata.namespace or "default"
        key = (ns, obj.kind, obj.metadata.name, obj.metadata.uid or "", field_path or "", type_, reason, message)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                seen.count += 1
                seen.last = now
                if now - seen.written_at < self.repeat_interval:
                    return
            else:
                ref = {"kind": obj.kind, "namespace": ns, "name": obj.metadata.name, "uid": obj.metadata.uid,
                       "apiVersion": obj.api_version}
                if field_path:
                    ref["fieldPath"] = field_path
                source = {"component": self.component, **({"host": self.host} if self.host else {})}
                name = f"{obj.metadata.name}.{int(now * 1e9):x}"
                data = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
                        "involvedObject": {k: v for k, v in ref.items() if v}, "reason": reason,
                        "message": message, "source": source, "type": type_, "firstTimestamp": _stamp(now),
                        "reportingComponent": self.component, "reportingInstance": self.host or ""}
                seen = self._seen[key] = _Seen(name, ns, data, 1, 0, 0.0, now)
        self._write(key, seen)

    def flush(self) -> None:
        """Write the repeats not written yet whose interval has passed; forget old events."""
        now = self.clock()
        with self._lock:
            for key, seen in list(self._seen.items()):
                if now - seen.last > FORGET_AFTER:
                    del self._seen[key]
            pending = [(k, s) for k, s in self._seen.items()
                       if s.count != s.written_count and now - s.written_at >= self.repeat_interval]
        for key, seen in pending:
            self._write(key, seen)

    def _write(self, key: tuple[str, ...], seen: _Seen) -> None:
        with self._lock:
            data = {**seen.data, "count": seen.count, "lastTimestamp": _stamp(seen.last)}
            first = seen.written_count == 0
            seen.written_count, seen.written_at = seen.count, self.clock()
        try:
            event = Event.model_validate(data)
            if first:
                self.store.create(event)
            else:
                self.store.update(event, check_version=False)
        except PodnetError as exc:  # the object's namespace is going, or the event was removed
            log.debug("event %s/%s not written: %s", seen.namespace, seen.name, exc)
            if not first:
                with self._lock:
                    self._seen.pop(key, None)
