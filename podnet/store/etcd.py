"""EtcdStore: the Store protocol on an etcd v3 cluster (the distributed mode), via its JSON
gRPC gateway (``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/watch``, ``/v3/kv/compaction``).

The protocol was shaped after etcd, so this is a thin adapter. Two differences are bridged:
- etcd starts at revision 1 with an empty keyspace while the protocol starts at 0, so every
  revision is shifted by one on the way in and out (mod_revision 0 keeps meaning "absent");
- etcd does not say which compare of a failed txn failed, so the failure branch reads the
  compared keys and the adapter works it out.
Watch is a streaming POST read line by line (a compacted start revision comes back as a
cancelled watch carrying ``compact_revision``, turned into ``errors.Compacted``).
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import requests

from ..errors import Compacted, PodnetError
from . import codec
from .api import Compare, Delete, Event, Put, Record, TxnResult

TIMEOUT = 10.0


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _range_end(prefix: str) -> str:
    """etcd's prefix range end: the prefix with its last byte incremented (``\\0`` = all keys)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return _b64(b"\0")
    raw[-1] += 1
    return _b64(bytes(raw))


class EtcdStore:
    """Store over ``http://host:port`` of one etcd member (3.4+ gateway path ``/v3/``)."""

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.base = f"http://{host}:{port}/v3/"
        self._timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._closed = False
        self._watchers: set[requests.Response] = set()

    # -- plumbing ------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise PodnetError(f"etcd store {self.base} is closed")
        try:
            resp = self._session.post(self.base + path, data=json.dumps(body), timeout=self._timeout)
        except requests.RequestException as exc:
            raise PodnetError(f"etcd at {self.base} is unreachable: {exc}",
                              hint="check that etcd runs and the store URL's host:port") from exc
        if resp.status_code != 200:
            raise PodnetError(f"etcd {path} failed ({resp.status_code}): {resp.text.strip()}")
        answer: dict[str, Any] = resp.json()
        return answer

    @staticmethod
    def _record(kv: dict[str, Any]) -> Record:
        return Record(_unb64(kv["key"]).decode(), json.loads(_unb64(kv.get("value", ""))),
                      int(kv["create_revision"]) - 1, int(kv["mod_revision"]) - 1, int(kv.get("version", 0)))

    def _txn(self, compares: list[dict[str, Any]], success: list[dict[str, Any]],
             failure: list[dict[str, Any]]) -> dict[str, Any]:
        return self._post("kv/txn", {"compare": compares, "success": success, "failure": failure})

    @staticmethod
    def _mod_equals(key: str, mod_revision: int) -> dict[str, Any]:
        target = mod_revision + 1 if mod_revision > 0 else 0
        return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(target)}

    @staticmethod
    def _exists(key: str, present: bool) -> dict[str, Any]:
        return {"key": _b64(key), "target": "CREATE", "result": "GREATER" if present else "EQUAL",
                "create_revision": "0"}

    @staticmethod
    def _put_op(key: str, text: str) -> dict[str, Any]:
        return {"request_put": {"key": _b64(key), "value": _b64(text), "prev_kv": True}}

    @staticmethod
    def _delete_op(key: str) -> dict[str, Any]:
        return {"request_delete_range": {"key": _b64(key), "prev_kv": True}}

    @staticmethod
    def _get_op(key: str) -> dict[str, Any]:
        return {"request_range": {"key": _b64(key)}}

    @staticmethod
    def _revision(resp: dict[str, Any]) -> int:
        return int(resp["header"]["revision"]) - 1

    # -- reads ---------------------------------------------------------------------------------
    def revision(self) -> int:
        return self._revision(self._post("kv/range", {"key": _b64("\0"), "count_only": True}))

    def get(self, key: str) -> Record | None:
        resp = self._post("kv/range", {"key": _b64(codec.check_key(key))})
        kvs = resp.get("kvs") or []
        return self._record(kvs[0]) if kvs else None

    def list(self, prefix: str) -> tuple[list[Record], int]:
        resp = self._post("kv/range", {"key": _b64(prefix or "\0"), "range_end": _range_end(prefix)})
        return [self._record(kv) for kv in resp.get("kvs") or []], self._revision(resp)

    # -- writes --------------------------------------------------------------------------------
    def create(self, key: str, value: dict[str, Any]) -> Record:
        text = codec.encode(codec.check_key(key), value)
        resp = self._txn([self._exists(key, False)], [self._put_op(key, text)], [])
        if not resp.get("succeeded"):
            raise codec.already_exists(key)
        rev = self._revision(resp)
        return Record(key, json.loads(text), rev, rev, 1)

    def update(self, key: str, value: dict[str, Any], mod_revision: int | None = None) -> Record:
        text = codec.encode(codec.check_key(key), value)
        # The key must exist even with a mod_revision guard: mod_revision 0 holds for an absent key.
        guards = [self._exists(key, True)] + ([] if mod_revision is None else [self._mod_equals(key, mod_revision)])
        resp = self._txn(guards, [self._put_op(key, text)], [self._get_op(key)])
        if not resp.get("succeeded"):
            kvs = resp["responses"][0]["response_range"].get("kvs") or []
            if not kvs:
                raise codec.not_found(key)
            raise codec.stale(key, mod_revision or 0, int(kvs[0]["mod_revision"]) - 1)
        prev = resp["responses"][0]["response_put"]["prev_kv"]
        rev = self._revision(resp)
        return Record(key, json.loads(text), int(prev["create_revision"]) - 1, rev, int(prev["version"]) + 1)

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        codec.check_key(key)
        guards = [] if mod_revision is None else [self._mod_equals(key, mod_revision)]
        resp = self._txn(guards, [self._delete_op(key)], [self._get_op(key)])
        if not resp.get("succeeded"):
            kvs = resp["responses"][0]["response_range"].get("kvs") or []
            if not kvs:
                return False
            raise codec.stale(key, mod_revision or 0, int(kvs[0]["mod_revision"]) - 1)
        return int(resp["responses"][0]["response_delete_range"].get("deleted", 0)) > 0

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        codec.check_txn(compares, ops)
        success = [self._put_op(op.key, codec.encode(op.key, op.value)) if isinstance(op, Put)
                   else self._delete_op(op.key) for op in ops]
        resp = self._txn([self._mod_equals(c.key, c.mod_revision) for c in compares], success,
                         [self._get_op(c.key) for c in compares])
        rev = self._revision(resp)
        if resp.get("succeeded"):
            return TxnResult(True, rev)
        failed = []
        for cmp, out in zip(compares, resp["responses"]):
            kvs = out["response_range"].get("kvs") or []
            actual = int(kvs[0]["mod_revision"]) - 1 if kvs else 0
            if actual != cmp.mod_revision:
                failed.append(cmp.key)
        return TxnResult(False, rev, tuple(failed))

    def compact(self, revision: int) -> None:
        target = min(revision, self.revision() + 1) + 1
        try:
            self._post("kv/compaction", {"revision": str(target), "physical": True})
        except PodnetError as exc:
            if "compacted" not in str(exc):  # already compacted at or beyond: nothing to do
                raise

    # -- watch ---------------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int, timeout: float | None = None) -> Iterator[Event]:
        body = {"create_request": {"key": _b64(prefix or "\0"), "range_end": _range_end(prefix),
                                   "start_revision": str(max(start_revision, 1) + 1), "prev_kv": True}}
        try:
            resp = self._session.post(self.base + "watch", data=json.dumps(body), stream=True,
                                      timeout=(self._timeout, timeout))
        except requests.RequestException as exc:
            raise PodnetError(f"etcd at {self.base} is unreachable: {exc}") from exc
        with self._lock:
            self._watchers.add(resp)
        try:
            for line in resp.iter_lines(chunk_size=None):
                if not line.strip():
                    continue
                result = json.loads(line).get("result", {})
                if int(result.get("compact_revision", 0)):
                    raise Compacted(max(start_revision, 1), int(result["compact_revision"]) - 1)
                if result.get("canceled"):
                    return
                for ev in result.get("events") or ():
                    kv = ev["kv"]
                    key = _unb64(kv["key"]).decode()
                    rev = int(kv["mod_revision"]) - 1
                    if ev.get("type") == "DELETE":
                        prev = ev.get("prev_kv")
                        yield Event("DELETE", key, rev, None, json.loads(_unb64(prev["value"])) if prev else None, 0)
                    else:  # the gateway omits type for PUT (proto3 default)
                        yield Event("PUT", key, rev, json.loads(_unb64(kv.get("value", ""))), None, int(kv["version"]))
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if self._closed or "timed out" in str(exc) or "Read timed out" in repr(exc):
                return  # idle for ``timeout`` seconds, or closed
            raise PodnetError(f"etcd watch on {self.base} broke: {exc}", hint="watch again from the last revision") from exc
        finally:
            with self._lock:
                self._watchers.discard(resp)
            resp.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for resp in list(self._watchers):
                resp.close()
        self._session.close()
