"""EtcdStore: the Store protocol on an etcd v3 cluster (the distributed mode), via its JSON
gRPC gateway (``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/watch``, ``/v3/kv/compaction``).

The protocol was shaped after etcd, so this is a thin adapter. Two differences are bridged:
- etcd starts at revision 1 with an empty keyspace while the protocol starts at 0, so every
  revision is shifted by one on the way in and out (mod_revision 0 keeps meaning "absent");
- etcd does not say which compare of a failed txn failed, so the failure branch reads the
  compared keys and the adapter works it out.

The cluster side lives in ``etcd_client`` (members, TLS, failover, at-most-once writes) and
``etcd_watch`` (streams that resume on another member). A write whose answer was lost is
resolved here by reading back: if every compare still holds and every written key was
compared, it did not happen and is sent again; if every written key holds what it wrote at
one revision, it happened; otherwise ``OutcomeUnknown`` reaches the caller, never a guess.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import OutcomeUnknown, PodnetError
from . import codec
from .api import Compare, Delete, Event, Put, Record, TxnResult
from .config import TlsFiles
from .etcd_client import CONNECT_TIMEOUT, REQUEST_TIMEOUT, EtcdClient, GatewayError
from .etcd_watch import Watcher

#: sends of one write whose outcome stayed unknown and was found not to have happened
WRITE_ATTEMPTS = 3


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
    """Store over the client endpoints of one etcd cluster (3.4+ gateway path ``/v3/``)."""

    def __init__(self, endpoints: Sequence[str], tls: TlsFiles | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.client = EtcdClient(endpoints, tls, connect_timeout=connect_timeout, request_timeout=request_timeout)
        self.base = self.client.describe()
        self.watcher = Watcher(self.client, _range_end, _b64, self.revision)
        self.unknown_resolved = 0  # writes whose lost answer was settled by reading back

    # -- plumbing ------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.call(path, body)

    @staticmethod
    def _record(kv: dict[str, Any]) -> Record:
        return Record(_unb64(kv["key"]).decode(), json.loads(_unb64(kv.get("value", ""))),
                      int(kv["create_revision"]) - 1, int(kv["mod_revision"]) - 1, int(kv.get("version", 0)))

    def _txn(self, compares: list[dict[str, Any]], success: list[dict[str, Any]],
             failure: list[dict[str, Any]]) -> dict[str, Any]:
        """A write transaction, sent at most once unless a lost answer proved it did not happen."""
        body = {"compare": compares, "success": success, "failure": failure}
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self.client.call("kv/txn", body, write=True)
            except OutcomeUnknown as exc:
                settled = self._settle(compares, success)
                if settled is not None:
                    self.unknown_resolved += 1
                    return settled
                if attempt == WRITE_ATTEMPTS - 1:
                    raise exc
                self.unknown_resolved += 1
        raise AssertionError("unreachable")

    def _settle(self, compares: list[dict[str, Any]], success: list[dict[str, Any]]) -> dict[str, Any] | None:
        """After a lost answer: a success-shaped answer if the write happened, None if it
        certainly did not (send it again); raises ``OutcomeUnknown`` if it cannot tell."""
        keys = sorted({c["key"] for c in compares} | {_op_key(op) for op in success})
        read = self._post("kv/txn", {"compare": [], "success": [{"request_range": {"key": k}} for k in keys],
                                     "failure": []})
        current = {k: (r["response_range"].get("kvs") or [None])[0] for k, r in zip(keys, read["responses"])}
        if all(_holds(c, current[c["key"]]) for c in compares) and {_op_key(op) for op in success} <= {
                c["key"] for c in compares}:
            return None
        revisions = set()
        for op in success:
            kv = current[_op_key(op)]
            if "request_put" in op:
                if kv is None or kv.get("value", "") != op["request_put"]["value"]:
                    break
                revisions.add(kv["mod_revision"])
            elif kv is not None:
                break
        else:
            if len(revisions) <= 1:
                rev = revisions.pop() if revisions else read["header"]["revision"]
                return {"header": {"revision": rev}, "succeeded": True, "responses": [], "settled": True}
        raise OutcomeUnknown(f"a write to etcd ({self.base}) got no answer and the keys moved on since",
                             hint="it may or may not have happened; read the keys back")

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
        rev = self._revision(resp)
        if resp.get("settled"):
            return self.get(key) or Record(key, json.loads(text), rev, rev, 1)
        prev = resp["responses"][0]["response_put"]["prev_kv"]
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
        if resp.get("settled"):
            return True
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
        return self.watcher.watch(prefix, start_revision, timeout)

    def close(self) -> None:
        self.watcher.close()
        self.client.close()


def _op_key(op: dict[str, Any]) -> str:
    body = op.get("request_put") or op.get("request_delete_range") or op.get("request_range") or {}
    return str(body["key"])


def _holds(compare: dict[str, Any], kv: dict[str, Any] | None) -> bool:
    """Whether an etcd compare (MOD or CREATE, EQUAL or GREATER) holds for ``kv`` (None: absent)."""
    target = compare["target"]
    actual = int((kv or {}).get("mod_revision" if target == "MOD" else "create_revision", 0))
    want = int(compare["mod_revision" if target == "MOD" else "create_revision"])
    return actual == want if compare["result"] == "EQUAL" else actual > want


__all__ = ["EtcdStore", "GatewayError", "PodnetError"]
