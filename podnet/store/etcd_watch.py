"""Watch streams on an etcd cluster that survive the loss of a member.

A watch is one long HTTP response from ``/v3/watch``; a reader thread turns its lines into
messages, so waiting for the next event is a queue wait with a timeout, never a socket read
that a timeout could cut in half. Streams are kept between calls: a loop that watches from
the revision after the last one it saw continues the same stream instead of opening a new one
(a TLS handshake) every quarter second.

When a stream breaks (its member died, or lost its leader: the watch asks for one, as
Flannel does), it is opened again on the next member from the revision after the last one
received, which etcd guarantees to replay without gaps. Revisions must only increase; etcd
3.4 before 3.4.25 could send a resumed watch back in time after a partition (#15271), so a
revision already passed raises ``WatchRewound`` — a ``Compacted``, so every consumer relists.
"""
from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import Compacted, PodnetError, Unavailable, WatchRewound
from .api import Event
from .etcd_client import EtcdClient, _Connection, _reason

MAX_IDLE_STREAMS = 4
_BROKEN = object()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def decode_event(ev: dict[str, Any]) -> Event:
    """A gateway event as the protocol's Event (revisions shifted to start at 0)."""
    kv = ev["kv"]
    key = _unb64(kv["key"]).decode()
    rev = int(kv["mod_revision"]) - 1
    if ev.get("type") == "DELETE":
        prev = ev.get("prev_kv")
        return Event("DELETE", key, rev, None, json.loads(_unb64(prev["value"])) if prev else None, 0)
    # the gateway omits type for PUT (proto3 default)
    return Event("PUT", key, rev, json.loads(_unb64(kv.get("value", ""))), None, int(kv["version"]))


class Stream:
    """One open ``/v3/watch`` response and what it delivered so far."""

    def __init__(self, client: EtcdClient, index: int, conn: _Connection, prefix: str, start: int) -> None:
        self.client = client
        self.index = index
        self.conn = conn
        self.prefix = prefix
        self.received = start - 1  # the last revision whose events are all in ``pending`` or delivered
        self.delivered = start - 1
        self.current: int | None = None  # the store's revision when the stream was created
        self.pending: deque[Event] = deque()
        self.messages: queue.Queue[Any] = queue.Queue()
        self.broken: str | None = None
        self.reader = threading.Thread(target=self._read, name="etcd-watch", daemon=True)

    def _read(self) -> None:
        resp = None
        try:
            resp = self.conn.getresponse()
            if resp.status != 200:
                self.messages.put((_BROKEN, f"HTTP {resp.status}: {resp.read()[:200]!r}"))
                return
            while True:
                line = resp.readline()
                if not line:
                    self.messages.put((_BROKEN, "the member closed the stream"))
                    return
                if line.strip():
                    self.messages.put(json.loads(line))
        except Exception as exc:  # a broken connection, a bad line: the stream is over either way
            self.messages.put((_BROKEN, _reason(exc)))

    def close(self) -> None:
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message, None after ``timeout`` idle seconds; a broken stream raises
        ``_StreamBroken``."""
        try:
            msg = self.messages.get(timeout=max(timeout, 0.0)) if timeout > 0 else self.messages.get_nowait()
        except queue.Empty:
            return None
        if isinstance(msg, tuple) and msg and msg[0] is _BROKEN:
            self.broken = str(msg[1])
            raise _StreamBroken(self.broken)
        result: dict[str, Any] = msg.get("result", {}) if isinstance(msg, dict) else {}
        if msg.get("error") if isinstance(msg, dict) else False:
            self.broken = str(msg["error"])
            raise _StreamBroken(self.broken)
        return result


class _StreamBroken(Exception):
    pass


class Watcher:
    """``watch(prefix, start, timeout)`` of the Store protocol over an ``EtcdClient``."""

    def __init__(self, client: EtcdClient, range_end: Callable[[str], str], b64: Callable[[str], str],
                 revision: Callable[[], int]) -> None:
        self.client = client
        self._range_end = range_end
        self._b64 = b64
        self._revision = revision
        self._idle: list[Stream] = []
        self._lock = threading.Lock()
        self.resumes = 0  # streams opened again after a member failed (for tests and benchmarks)

    def _take(self, prefix: str, start: int) -> Stream | None:
        with self._lock:
            for s in self._idle:
                if s.prefix == prefix and s.delivered < start and s.broken is None:
                    self._idle.remove(s)
                    return s
        return None

    def _give_back(self, stream: Stream) -> None:
        if stream.broken is not None or self.client.closed:
            stream.close()
            return
        with self._lock:
            self._idle.append(stream)
            while len(self._idle) > MAX_IDLE_STREAMS:
                self._idle.pop(0).close()

    def _open(self, prefix: str, start: int, deadline: float) -> Stream:
        body = json.dumps({"create_request": {"key": self._b64(prefix or "\0"), "range_end": self._range_end(prefix),
                                              "start_revision": str(max(start, 0) + 1), "prev_kv": True}}).encode()
        failures: dict[str, str] = {}
        while True:
            for index in self.client.order():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    conn = self.client.open(index, left)
                    conn.request("POST", "/v3/watch", body, {"Content-Type": "application/json",
                                                             "Grpc-Metadata-Hasleader": "true"})
                    assert conn.sock is not None
                    conn.sock.settimeout(None)  # idle streams are normal; keepalive finds dead peers
                except OSError as exc:
                    failures[self.client.endpoints[index].url] = _reason(exc)
                    continue
                stream = Stream(self.client, index, conn, prefix, start)
                stream.reader.start()
                try:
                    first = stream.next_message(left)
                except _StreamBroken as exc:
                    failures[self.client.endpoints[index].url] = str(exc)
                    stream.close()
                    continue
                if first is None:
                    failures[self.client.endpoints[index].url] = "no answer to the watch"
                    stream.close()
                    continue
                try:
                    self._check_cancel(first, start)
                except Compacted:
                    stream.close()
                    raise
                if first.get("created") or "header" in first:
                    stream.current = int(first.get("header", {}).get("revision", 1)) - 1
                self._take_events(stream, first)
                self.client.pin(index)
                return stream
            if time.monotonic() >= deadline:
                raise Unavailable(self.client.describe(), failures, self.client.request_timeout)
            time.sleep(0.05)

    @staticmethod
    def _check_cancel(result: dict[str, Any], start: int) -> None:
        if int(result.get("compact_revision", 0)):
            raise Compacted(max(start, 0), int(result["compact_revision"]) - 1)
        if result.get("canceled"):
            raise _StreamBroken(str(result.get("cancel_reason") or "the watch was cancelled"))

    @staticmethod
    def _take_events(stream: Stream, result: dict[str, Any]) -> None:
        events = [decode_event(raw) for raw in result.get("events") or ()]
        if events and events[0].revision <= stream.received:
            raise WatchRewound(stream.received + 1, events[0].revision)
        for ev in events:
            if ev.revision < stream.received:
                raise WatchRewound(stream.received, ev.revision)
            stream.pending.append(ev)
            stream.received = ev.revision

    def watch(self, prefix: str, start: int, timeout: float | None) -> Iterator[Event]:
        """Every event under ``prefix`` from ``start`` on; returns after ``timeout`` seconds
        without one, but only once it caught up with the revision the store had when asked."""
        stream = self._take(prefix, start)
        target: int | None = None
        if stream is None:
            stream = self._open(prefix, start, time.monotonic() + self.client.request_timeout)
            target = stream.current
        elif timeout is not None and timeout <= 0:
            target = self._revision()
        try:
            stream.delivered = max(stream.delivered, start - 1)
            while True:
                while stream.pending:
                    ev = stream.pending.popleft()
                    if ev.revision < start:  # the caller already has these (it listed later)
                        continue
                    if ev.revision < stream.delivered:
                        raise WatchRewound(stream.delivered, ev.revision)
                    stream.delivered = ev.revision
                    yield ev
                caught_up = target is None or stream.received >= target
                wait = (timeout if timeout is not None else 3600.0) if caught_up else self.client.request_timeout
                try:
                    result = stream.next_message(wait)
                    if result is None:
                        if caught_up:
                            return
                        raise _StreamBroken("no events while catching up")
                    self._check_cancel(result, stream.received + 1)
                    self._take_events(stream, result)
                except _StreamBroken as exc:
                    stream = self._resume(stream, str(exc))
                    continue
                except Compacted:
                    stream.broken = "compacted"
                    raise
                if not result.get("events") and "header" in result and target is not None:
                    target = min(target, int(result["header"].get("revision", 1)) - 1)
        finally:
            self._give_back(stream)

    def _resume(self, broken: Stream, why: str) -> Stream:
        """The same watch on another member, from the revision after the last one received."""
        broken.broken = broken.broken or why
        broken.close()
        self.client.pin((broken.index + 1) % len(self.client.endpoints))
        fresh = self._open(broken.prefix, broken.received + 1, time.monotonic() + self.client.request_timeout)
        fresh.pending.extendleft(reversed(broken.pending))
        fresh.delivered = broken.delivered
        self.resumes += 1
        return fresh

    def close(self) -> None:
        with self._lock:
            streams, self._idle = self._idle, []
        for s in streams:
            s.close()


__all__ = ["PodnetError", "Stream", "Watcher", "decode_event"]
