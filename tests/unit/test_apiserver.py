"""The read-only API server, run for real on loopback over TLS with a memory store, read with the
client pods use (podnet.apiclient): authentication, RBAC, lists, objects, selectors, watches
(ADDED/MODIFIED/DELETED, selector moves, bookmarks, 410 after compaction) and the informer."""
from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podnet.apiclient import ApiClient, ApiError, Expired, Informer, WatchEvent, resource_path
from podnet.apiserver.endpoints import endpoint_objects
from podnet.apiserver.server import ApiContext, ApiHTTPServer, tls_context
from podnet.model import Pod
from podnet.model.registry import kind_for
from podnet.pki import ClusterCA, issue_server_cert, mint_token, new_cluster_ca
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

CA = new_cluster_ca()

READER = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:reader"}
rules: [{apiGroups: [""], resources: [pods, services], verbs: [get, list, watch]}]
"""

READ_ALL = READER + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:reader"}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"""


@dataclass
class Api:
    store: ResourceStore
    port: int
    ca_file: str
    stop: threading.Event

    def client(self, token: str | None, ca: str | None = None) -> ApiClient:
        return ApiClient("127.0.0.1", self.port, token, ca or self.ca_file, timeout=5)

    def token(self, namespace: str, pod: str, account: str = "default", ca: ClusterCA = CA) -> str:
        obj = self.store.get(Pod, pod, namespace)
        assert obj is not None
        return mint_token(ca, namespace, account, pod, obj.metadata.uid or "", time.time())

    def apply(self, text: str) -> None:
        import yaml
        objs = []
        for doc in yaml.safe_load_all(text):
            cls = kind_for(doc["apiVersion"], doc["kind"])
            assert cls is not None
            objs.append(cls.model_validate(doc))
        self.store.apply(objs)

    def pod(self, namespace: str, name: str, labels: dict[str, str] | None = None) -> None:
        self.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        self.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))

    def raw(self, method: str, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5,
                                           context=ssl.create_default_context(cafile=self.ca_file))
        try:
            conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        return resp.status, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = ResourceStore(MemoryStore())
    cert, key = issue_server_cert(CA, "kube-apiserver", ["127.0.0.1"], ["localhost"])
    (tmp_path / "tls.crt").write_text(cert)
    (tmp_path / "tls.key").write_text(key)
    (tmp_path / "ca.crt").write_text(CA.cert_pem)
    stop = threading.Event()
    ctx = ApiContext(store.kv, CA, "127.0.0.1:0", stop, bookmark_interval=0.3)
    server = ApiHTTPServer(("127.0.0.1", 0), ctx, tls_context(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    api = Api(store, server.server_address[1], str(tmp_path / "ca.crt"), stop)
    api.pod("default", "client", {"app": "client"})
    try:
        yield api
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_authentication_401_and_public_paths(api: Api) -> None:
    assert api.raw("GET", "/healthz") == (200, {"text": "ok"})
    code, body = api.raw("GET", "/api/v1/pods")
    assert code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    assert api.raw("GET", "/api/v1/pods", token="not.a.token")[0] == 401
    other = new_cluster_ca()  # a token another cluster signed
    assert api.raw("GET", "/api", token=api.token("default", "client", ca=other))[0] == 401
    token = api.token("default", "client")
    assert api.raw("GET", "/api", token)[1]["versions"] == ["v1"]
    groups = {g["name"] for g in api.raw("GET", "/apis", token)[1]["groups"]}
    assert {"discovery.k8s.io", "networking.k8s.io", "rbac.authorization.k8s.io", "apps"} <= groups
    resources = {r["name"]: r for r in api.raw("GET", "/api/v1", token)[1]["resources"]}
    assert resources["pods"]["namespaced"] and not resources["namespaces"]["namespaced"]
    assert resources["secrets"]["verbs"] == ["get", "list", "watch"]
    api.store.delete(Pod, "client", "default", grace_period_seconds=0)  # tokens are bound to their pod
    assert api.raw("GET", "/api", token)[0] == 401


def test_rbac_403_with_the_api_servers_message_then_allowed(api: Api) -> None:
    token = api.token("default", "client")
    code, body = api.raw("GET", "/api/v1/namespaces/default/pods", token)
    assert code == 403 and body["reason"] == "Forbidden" and body["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" '
        'in API group "" in the namespace "default"')
    assert api.raw("GET", "/api/v1/nodes/n1", token)[1]["message"] == (
        'nodes "n1" is forbidden: User "system:serviceaccount:default:default" cannot get resource "nodes" '
        'in API group "" at the cluster scope')
    api.apply(READER + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:reader"}
subjects: [{kind: ServiceAccount, name: default}]
""")
    client = api.client(token)
    items, version = client.list(resource_path("pods", "default"))
    assert [p["metadata"]["name"] for p in items] == ["client"] and int(version) > 0
    assert "kind" not in items[0] and items[0]["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as cluster_wide:  # a RoleBinding grants its namespace only
        client.list(resource_path("pods"))
    assert cluster_wide.value.code == 403
    obj = client.get(resource_path("pods", "default") + "/client")
    assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1"
    code, body = api.raw("GET", "/api/v1/namespaces/default/pods/nope", token)
    assert code == 404 and body["message"] == 'pods "nope" not found'
    assert api.raw("DELETE", "/api/v1/namespaces/default/pods/client", token)[1]["code"] == 405
    assert api.raw("GET", "/api/v1/namespaces/default/secrets", token)[0] == 403


def test_selectors_filter_lists(api: Api) -> None:
    api.pod("default", "web-1", {"app": "web", "tier": "front"})
    api.pod("default", "web-2", {"app": "web"})
    api.apply(READER + """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:reader"}
subjects: [{kind: Group, name: "system:serviceaccounts:default"}]
""")
    client = api.client(api.token("default", "client"))
    names = [p["metadata"]["name"] for p in client.list(resource_path("pods"), label_selector="app=web,tier!=front")[0]]
    assert names == ["web-2"]
    assert [p["metadata"]["name"] for p in client.list(resource_path("pods"), field_selector="metadata.name=web-1")[0]] \
        == ["web-1"]
    assert api.raw("GET", "/api/v1/pods?labelSelector=a+in+(", api.token("default", "client"))[0] == 400


def _collect(events: Iterator[WatchEvent], n: int) -> list[tuple[str, str]]:
    out = []
    for ev in events:
        out.append((ev.type, ev.object["metadata"].get("name", "")))
        if len(out) == n:
            break
    return out


def test_watch_streams_changes_selector_moves_bookmarks_and_410(api: Api) -> None:
    api.apply(READ_ALL)
    client = api.client(api.token("default", "client"))
    _, version = client.list(resource_path("pods"))
    events = client.watch(resource_path("pods"), version, label_selector="app=web", timeout_seconds=10)

    def changes() -> None:
        time.sleep(0.2)
        api.pod("default", "web-1", {"app": "web"})
        api.pod("default", "other", {"app": "db"})
        api.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web-1", "namespace": "default", "labels": {"app": "web", "v": "2"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        api.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "other", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))  # moves into the selector
        api.apply(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "web-1", "namespace": "default", "labels": {"app": "gone"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))  # moves out
        api.store.delete(Pod, "other", "default", grace_period_seconds=0)

    threading.Thread(target=changes, daemon=True).start()
    assert _collect(events, 5) == [("ADDED", "web-1"), ("MODIFIED", "web-1"), ("ADDED", "other"),
                                   ("DELETED", "web-1"), ("DELETED", "other")]
    # quiet: a bookmark carries the last revision
    now = api.store.revision()
    bookmark = next(client.watch(resource_path("pods"), str(now), timeout_seconds=5))
    assert bookmark.type == "BOOKMARK" and bookmark.resource_version == str(now)
    # without a resourceVersion: the current objects first
    first = _collect(client.watch(resource_path("pods", "default"), "", timeout_seconds=5, bookmarks=False), 1)
    assert first == [("ADDED", "client")]
    api.store.kv.compact(api.store.revision())
    with pytest.raises(Expired):
        list(client.watch(resource_path("pods"), version, timeout_seconds=5))


def test_informer_follows_and_relists_after_410(api: Api) -> None:
    api.apply(READ_ALL)
    seen: list[str] = []
    informer = Informer(api.client(api.token("default", "client")), resource_path("pods"), watch_timeout=1,
                        on_change=lambda ev: seen.append(ev.type if ev else "RELIST"))
    stop = threading.Event()
    thread = informer.start(stop)

    def has(name: str) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if f"default/{name}" in informer.objects:
                return True
            time.sleep(0.02)
        return False
    try:
        assert informer.synced.wait(5)
        api.pod("default", "web-1")
        assert has("web-1") and seen == ["RELIST", "ADDED"]
    finally:
        stop.set()
        thread.join(timeout=5)
    # away while the history it would resume from is compacted: it resumes, gets 410, lists again
    api.pod("default", "web-2")
    api.pod("default", "web-3")
    api.store.kv.compact(api.store.revision())
    stop = threading.Event()
    thread = informer.start(stop)
    try:
        assert has("web-3") and seen[2:] == ["RELIST"]
    finally:
        stop.set()
        thread.join(timeout=5)


def test_tls_is_verified_and_kubernetes_endpoints_shape(api: Api, tmp_path: Path) -> None:
    wrong = tmp_path / "other-ca.crt"
    wrong.write_text(new_cluster_ca().cert_pem)
    with pytest.raises(ssl.SSLError):
        api.client(None, str(wrong)).get("/healthz")
    ep, eps = (o.to_dict() for o in endpoint_objects("192.168.10.71", 6443))
    assert ep["subsets"] == [{"addresses": [{"ip": "192.168.10.71"}], "ports": [{"port": 6443, "name": "https",
                                                                               "protocol": "TCP"}]}]
    assert eps["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"} and eps["addressType"] == "IPv4"
