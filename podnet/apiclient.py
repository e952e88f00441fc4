"""A small typed client of the Kubernetes API for programs that run in pods (the cluster DNS,
the ingress controller): list, get, watch, and an informer that keeps a local copy of one
resource up to date, as client-go's reflector does (list, then watch from the list's
resourceVersion with bookmarks, resume a broken watch from the last version seen, list again
when the server says 410 Gone).

In a pod, ``ApiClient.in_cluster()`` finds the API server as client-go's rest.InClusterConfig
does: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` and the ServiceAccount files
under /var/run/secrets/kubernetes.io/serviceaccount. Standard library only.
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
Object = dict[str, Any]


class ApiError(Exception):
    """An error answer: its HTTP code and the Status body's reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


class Expired(ApiError):
    """410 Gone: the resourceVersion asked for is no longer in the server's history."""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Object

    @property
    def resource_version(self) -> str:
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


def resource_path(resource: str, namespace: str | None = None, group_version: str = "v1") -> str:
    """``/api/v1/pods``, ``/api/v1/namespaces/ns/services``, ``/apis/discovery.k8s.io/v1/endpointslices``."""
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"


def _raise_for(code: int, body: bytes) -> None:
    try:
        status = json.loads(body)
    except ValueError:
        status = {}
    reason, message = str(status.get("reason", "")), str(status.get("message", body[:200].decode(errors="replace")))
    raise (Expired if code == 410 else ApiError)(code, reason, message)


class ApiClient:
    """One API server, one bearer token; a connection per request (watches hold theirs)."""

    def __init__(self, host: str, port: int, token: str | None = None, ca_file: str | None = None,
                 timeout: float = 30.0) -> None:
        self.host, self.port, self.token, self.timeout = host, port, token, timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    @classmethod
    def in_cluster(cls, directory: str = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] = os.environ) -> ApiClient:
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ApiError(0, "NotInCluster", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
        with open(os.path.join(directory, "token")) as f:
            token = f.read().strip()
        return cls(host, int(port), token, os.path.join(directory, "ca.crt"))

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "podnet-apiclient"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Object:
        """GET ``path`` (an object, a list, a discovery document); raises ApiError."""
        conn = self._connection(self.timeout)
        try:
            conn.request("GET", path + (f"?{urlencode(params)}" if params else ""), headers=self._headers())
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            _raise_for(resp.status, body)
        result: Object = json.loads(body)
        return result

    def list(self, path: str, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[Object], str]:
        """The items of a collection and the list's resourceVersion."""
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        result = self.get(path, params)
        return list(result.get("items") or []), str(result.get("metadata", {}).get("resourceVersion", ""))

    def watch(self, path: str, resource_version: str, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int = 300,
              bookmarks: bool = True) -> Iterator[WatchEvent]:
        """The events after ``resource_version`` until the server ends the stream; an ERROR
        event raises (Expired for 410)."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds)}
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        params.update({k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v})
        conn = self._connection(timeout_seconds + self.timeout)
        try:
            conn.request("GET", f"{path}?{urlencode(params)}", headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                _raise_for(resp.status, resp.read())
            for line in iter(resp.readline, b""):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code", 500))
                    raise (Expired if code == 410 else ApiError)(code, str(status.get("reason", "")),
                                                                 str(status.get("message", "")))
                yield WatchEvent(str(event["type"]), event["object"])
        finally:
            conn.close()


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


@dataclass
class Informer:
    """A local copy of one collection, kept current by list + watch; ``on_change`` is called
    (from the informer's thread) after every change with the event, or None after a relist."""

    client: ApiClient
    path: str
    label_selector: str | None = None
    field_selector: str | None = None
    on_change: Callable[[WatchEvent | None], None] | None = None
    retry_delay: float = 1.0
    watch_timeout: int = 300
    objects: dict[str, Object] = field(default_factory=dict)
    resource_version: str = ""
    synced: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def items(self) -> list[Object]:
        with self.lock:
            return list(self.objects.values())

    def relist(self) -> None:
        items, version = self.client.list(self.path, self.label_selector, self.field_selector)
        with self.lock:
            self.objects = {object_key(obj): obj for obj in items}
            self.resource_version = version
        self.synced.set()
        if self.on_change is not None:
            self.on_change(None)

    def apply(self, event: WatchEvent) -> None:
        with self.lock:
            if event.type == "DELETED":
                self.objects.pop(object_key(event.object), None)
            elif event.type in ("ADDED", "MODIFIED"):
                self.objects[object_key(event.object)] = event.object
            self.resource_version = event.resource_version or self.resource_version
        if event.type != "BOOKMARK" and self.on_change is not None:
            self.on_change(event)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: list (unless it has listed before: then it resumes from its
        resourceVersion), watch and resume; list again on 410; keep what it knows (and
        retry) while the server cannot be reached."""
        need_list = not self.synced.is_set()
        while not stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                for event in self.client.watch(self.path, self.resource_version, self.label_selector,
                                               self.field_selector, self.watch_timeout):
                    self.apply(event)
                    if stop.is_set():
                        return
            except Expired:
                need_list = True
            except (ApiError, OSError, ValueError, http.client.HTTPException):
                stop.wait(self.retry_delay)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=f"informer {self.path}", daemon=True)
        thread.start()
        return thread


def wait_synced(informers: list[Informer], timeout: float) -> bool:
    """True once every informer has listed (client-go's WaitForCacheSync)."""
    deadline = time.monotonic() + timeout
    return all(inf.synced.wait(max(0.0, deadline - time.monotonic())) for inf in informers)
