"""The HTTP side of ``podnet apiserver``: GET only, Kubernetes-shaped.

- ``GET .../{resource}`` → ``{kind: <Kind>List, metadata: {resourceVersion}, items}`` (the
  whole list: ``limit`` is ignored, which the API allows a server to do);
- ``GET .../{resource}/{name}`` → the object, ``resourceVersion`` = its store revision;
- ``?watch=1`` → a stream of ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}``
  lines from ``resourceVersion`` on (from now, after one ADDED per object, without it or with
  ``0`` or ``sendInitialEvents=true``); a history that is gone is an ``ERROR`` event with a
  410 ``Expired`` Status, as the API server sends it. Objects that move into or out of a
  selector are ADDED or DELETED. ``allowWatchBookmarks`` gets a BOOKMARK after every quiet
  ``bookmark_interval``; ``timeoutSeconds`` ends the stream.
- Anything but GET is 405: the API is read-only.

Every request is authenticated (``auth``) and authorized (``rbac``) first: 401 without a
valid identity, 403 with the API server's message when RBAC does not allow it.
"""
from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from podnet.errors import Compacted
from podnet.model.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from podnet.pki import ClusterCA, InvalidToken
from podnet.store.api import Event, Record, Store
from podnet.store.resources import decode, key_for, prefix_for

from . import resources as r
from .auth import ANONYMOUS, authenticate
from .filters import BadSelector, Filter, parse_filter
from .rbac import Policy, User, allowed, path_allowed

log = logging.getLogger("podnet.apiserver")
VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-podnet", "platform": "linux/amd64"}
WATCH_ROUND = 1.0  # seconds a quiet watch waits before it checks its client, deadline and bookmarks
DEFAULT_WATCH_TIMEOUT = 1800  # the API server's --min-request-timeout


@dataclass
class ApiContext:
    """What every request reads: the store, the cluster's CA and this server's address."""

    kv: Store
    ca: ClusterCA
    address: str
    stop: threading.Event
    bookmark_interval: float = 10.0

    def policy(self) -> Policy:
        def of(cls: Any) -> list[Any]:
            return [decode(rec, cls) for rec in self.kv.list(prefix_for(cls))[0]]
        return Policy(of(Role), of(ClusterRole), of(RoleBinding), of(ClusterRoleBinding))

    def pod_uid(self, namespace: str, name: str) -> str | None:
        from podnet.model import Pod
        rec = self.kv.get(key_for(Pod, name, namespace))
        return None if rec is None else rec.value.get("metadata", {}).get("uid")


def _object(api: r.ApiResource, rec: Record) -> dict[str, Any]:
    value = dict(rec.value)
    value["metadata"] = {**value.get("metadata", {}), "resourceVersion": str(rec.mod_revision)}
    value.setdefault("apiVersion", api.cls.API_VERSION)
    value.setdefault("kind", api.cls.KIND)
    return value


def _deleted(api: r.ApiResource, ev: Event) -> dict[str, Any]:
    value = dict(ev.prev_value or {})
    value["metadata"] = {**value.get("metadata", {}), "resourceVersion": str(ev.revision)}
    value.setdefault("apiVersion", api.cls.API_VERSION)
    value.setdefault("kind", api.cls.KIND)
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "podnet-apiserver"
    ctx: ApiContext  # set on the subclass the server makes

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # ---- replies -------------------------------------------------------------------------

    def _send(self, code: int, body: dict[str, Any] | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, body: dict[str, Any]) -> None:
        self._send(int(body["code"]), body)

    def _unauthorized(self) -> None:
        self._status(r.status(401, "Unauthorized", "Unauthorized"))

    # ---- entry points ----------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            user = authenticate(self.headers.get("Authorization"), self.ctx.ca, self.ctx.pod_uid, time.time())
        except InvalidToken as exc:
            log.info("refused a token from %s: %s", self.client_address[0], exc)
            return self._unauthorized()
        req = r.parse(url.path, "GET", query)
        if req is None:
            return self._non_resource(user, url.path.rstrip("/") or "/")
        policy = self.ctx.policy()
        if not allowed(policy, user, req):
            return self._unauthorized() if user is ANONYMOUS else self._status(r.forbidden(req, user.name))
        api = req.api
        if api is None or (req.namespace and not api.cls.NAMESPACED and req.resource != "namespaces") \
                or req.subresource not in ("", "status"):
            return self._status(r.status(404, "NotFound", "the server could not find the requested resource"))
        try:
            selector = parse_filter(query.get("labelSelector"), query.get("fieldSelector"))
        except BadSelector as exc:
            return self._status(r.status(400, "BadRequest", str(exc)))
        if req.verb == "get":
            return self._get(api, req)
        if req.verb == "list":
            return self._list(api, req, selector)
        return self._watch(api, req, selector, query)

    def _refuse_write(self) -> None:
        try:
            authenticate(self.headers.get("Authorization"), self.ctx.ca, self.ctx.pod_uid, time.time())
        except InvalidToken:
            return self._unauthorized()
        self._status(r.status(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource (this API server is read-only)"))

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_write

    # ---- non-resource paths ------------------------------------------------------------------

    def _non_resource(self, user: User, path: str) -> None:
        if not path_allowed(self.ctx.policy(), user, "get", path):
            if user is ANONYMOUS:
                return self._unauthorized()
            return self._status(r.status(403, "Forbidden", f'forbidden: User "{user.name}" cannot get path "{path}"'))
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, "ok")
        if path == "/version":
            return self._send(200, VERSION)
        if path == "/api":
            return self._send(200, r.api_versions(self.ctx.address))
        if path == "/apis":
            return self._send(200, r.api_group_list())
        parts = path.strip("/").split("/")
        found = None
        if len(parts) == 2 and parts[0] == "api":
            found = r.api_resource_list("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            found = r.api_resource_list(parts[1], parts[2])
        if found is None:
            return self._status(r.status(404, "NotFound", "the server could not find the requested resource"))
        self._send(200, found)

    # ---- reads ---------------------------------------------------------------------------------

    def _prefix(self, api: r.ApiResource, req: r.Request) -> str:
        return prefix_for(api.cls, req.namespace if api.cls.NAMESPACED else None)

    def _get(self, api: r.ApiResource, req: r.Request) -> None:
        rec = self.ctx.kv.get(key_for(api.cls, req.name, req.namespace or None))
        if rec is None:
            return self._status(r.not_found(req))
        self._send(200, _object(api, rec))

    def _list(self, api: r.ApiResource, req: r.Request, selector: Filter) -> None:
        records, revision = self.ctx.kv.list(self._prefix(api, req))
        items = []
        for rec in records:
            obj = _object(api, rec)
            if selector.matches(obj):
                del obj["apiVersion"], obj["kind"]  # items of a typed list carry no type, as the API's
                items.append(obj)
        self._send(200, {"kind": f"{api.cls.KIND}List", "apiVersion": api.cls.API_VERSION,
                         "metadata": {"resourceVersion": str(revision)}, "items": items})

    # ---- watch ---------------------------------------------------------------------------------

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        """A watch client sends nothing after its request: anything readable is its close."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _watch(self, api: r.ApiResource, req: r.Request, selector: Filter, query: dict[str, str]) -> None:
        if req.name:
            selector = Filter(selector.labels, (*selector.fields, ("metadata.name", req.name, True)))
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        bookmarks = query.get("allowWatchBookmarks") in r.TRUE
        rv = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") in r.TRUE or rv in ("", "0")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        prefix = self._prefix(api, req)
        records, revision = self.ctx.kv.list(prefix)
        inside = {rec.key for rec in records if selector.matches(_object(api, rec))}
        try:
            if initial:
                for rec in records:
                    if rec.key in inside:
                        self._chunk({"type": "ADDED", "object": _object(api, rec)})
                if query.get("sendInitialEvents") in r.TRUE:
                    self._chunk({"type": "BOOKMARK", "object": self._bookmark(api, revision, initial_end=True)})
                last = revision
            else:
                try:
                    last = int(rv)
                except ValueError:
                    self._chunk({"type": "ERROR", "object": r.status(400, "BadRequest", f"invalid resourceVersion {rv!r}")})
                    return self._end_chunks()
            self._stream(api, prefix, selector, inside, last, time.monotonic() + timeout, bookmarks)
            self._end_chunks()
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _bookmark(self, api: r.ApiResource, revision: int, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": api.cls.KIND, "apiVersion": api.cls.API_VERSION, "metadata": meta}

    def _stream(self, api: r.ApiResource, prefix: str, selector: Filter, inside: set[str], last: int,
                deadline: float, bookmarks: bool) -> None:
        quiet_since = time.monotonic()
        while not self.ctx.stop.is_set() and time.monotonic() < deadline:
            try:
                for ev in self._events(prefix, last + 1):
                    last = ev.revision
                    out = self._translate(api, ev, selector, inside)
                    if out is not None:
                        self._chunk(out)
                    quiet_since = time.monotonic()
                    if time.monotonic() >= deadline or self.ctx.stop.is_set():
                        return
            except Compacted as exc:
                message = f"too old resource version: {last} ({exc.compacted})"
                self._chunk({"type": "ERROR", "object": r.status(410, "Expired", message)})
                return
            if self._client_gone():
                return
            if bookmarks and time.monotonic() - quiet_since >= self.ctx.bookmark_interval:
                self._chunk({"type": "BOOKMARK", "object": self._bookmark(api, last)})
                quiet_since = time.monotonic()

    def _events(self, prefix: str, start: int) -> Iterator[Event]:
        return self.ctx.kv.watch(prefix, start, timeout=WATCH_ROUND)

    @staticmethod
    def _translate(api: r.ApiResource, ev: Event, selector: Filter, inside: set[str]) -> dict[str, Any] | None:
        """One store event as a watch event for this selector (None: not the watcher's)."""
        if ev.type == "DELETE":
            if ev.key not in inside:
                return None
            inside.discard(ev.key)
            return {"type": "DELETED", "object": _deleted(api, ev)}
        assert ev.value is not None
        obj = _object(api, Record(ev.key, ev.value, 0, ev.revision, ev.version))
        was, now = ev.key in inside and ev.version != 1, selector.matches(obj)
        if now:
            inside.add(ev.key)
            return {"type": "MODIFIED" if was else "ADDED", "object": obj}
        if was:
            inside.discard(ev.key)
            return {"type": "DELETED", "object": obj}
        return None


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ctx: ApiContext, tls: ssl.SSLContext | None) -> None:
        handler = type("BoundHandler", (Handler,), {"ctx": ctx})
        self.tls = tls
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("request from %s failed", client_address[0], exc_info=log.isEnabledFor(logging.DEBUG))

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        if self.tls is not None:  # the handshake happens in the request's thread, not here
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
