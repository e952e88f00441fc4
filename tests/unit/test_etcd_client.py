"""The etcd client's rules, against small HTTP servers that answer as an etcd gateway would in
the cases a healthy cluster cannot be made to show on demand: a member that accepts a write
and never answers, one whose watch goes back in time (etcd #15271), one that is down. The
real cluster's behaviour (leader kill, partitions) is in tests/faults/."""
from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from podnet.errors import OutcomeUnknown, PodnetError, Unavailable, WatchRewound
from podnet.store.config import StoreConfig, check_tls, load, parse_endpoints, save
from podnet.store.etcd import EtcdStore


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


Handler = Callable[[str, dict[str, Any]], "tuple[int, Any] | Iterator[dict[str, Any]]"]


class Gateway:
    """An HTTP server on loopback whose answers come from ``handle(path, body)``: a JSON
    answer, or an iterator of watch messages streamed as lines."""

    def __init__(self, handle: Handler) -> None:
        outer = self
        self.requests: list[str] = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                path = self.path.removeprefix("/v3/")
                outer.requests.append(path)
                answer = handle(path, body)
                if isinstance(answer, tuple):
                    status, data = answer
                    if status == 0:  # hang up without an answer
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    raw = json.dumps(data).encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for msg in answer:
                    line = json.dumps(msg).encode() + b"\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    made: list[Gateway] = []
    yield made
    for g in made:
        g.close()


def header(rev: int) -> dict[str, Any]:
    return {"header": {"revision": str(rev)}}


def kv(key: str, rev: int, value: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"key": b64(key), "value": b64(json.dumps(value or {})), "create_revision": str(rev),
            "mod_revision": str(rev), "version": "1"}


def closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_reads_fail_over_to_a_member_that_answers(gateways: list[Gateway]) -> None:
    good = Gateway(lambda path, body: (200, {**header(8), "kvs": [kv("/a", 5)]}))
    gateways.append(good)
    store = EtcdStore([closed_port(), good.url], request_timeout=2)
    rec = store.get("/a")
    assert rec is not None and rec.mod_revision == 4  # etcd's 5, shifted to the protocol's
    assert store.client.order()[0] == 1  # pinned to the member that answered
    store.close()


def test_nobody_answers_is_unavailable_naming_every_member_and_fast() -> None:
    urls = [closed_port(), closed_port()]
    store = EtcdStore(urls, request_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as info:
        store.get("/a")
    assert time.monotonic() - t0 < 2.5
    assert all(u in str(info.value) for u in urls) and "connection refused" in str(info.value)
    assert "keeps enforcing its last policy" in str(info.value)
    store.close()


def test_a_lost_write_answer_is_settled_by_reading_back(gateways: list[Gateway]) -> None:
    """The member takes the txn and hangs up; the read-back finds every compare still holding
    and every written key compared: it did not happen, so it is sent again — once."""
    state: dict[str, int] = {"txns": 0}

    def handle(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "kv/txn" and body["success"] and "request_put" in body["success"][0]:
            state["txns"] += 1
            if state["txns"] == 1:
                return 0, None
            return 200, {**header(9), "succeeded": True, "responses": [{"response_put": {}}]}
        if path == "kv/txn":  # the read-back: the key is still at its old revision
            return 200, {**header(8), "succeeded": True,
                         "responses": [{"response_range": {"kvs": [kv("/a", 5)]}}]}
        return 404, {}

    gw = Gateway(handle)
    gateways.append(gw)
    from podnet.store.api import Compare, Put

    store = EtcdStore([gw.url], request_timeout=2)
    assert store.txn([Compare("/a", 4)], [Put("/a", {"v": 2})]).succeeded
    assert state["txns"] == 2 and store.unknown_resolved == 1
    store.close()


def test_a_lost_write_answer_that_cannot_be_settled_is_unknown_never_a_guess(gateways: list[Gateway]) -> None:
    def handle(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "kv/txn" and body["success"] and "request_put" in body["success"][0]:
            return 0, None
        # someone else's write moved the key on: neither "did not happen" nor "ours"
        return 200, {**header(12), "succeeded": True,
                     "responses": [{"response_range": {"kvs": [kv("/a", 11, {"v": "other"})]}}]}

    gw = Gateway(handle)
    gateways.append(gw)
    from podnet.store.api import Compare, Put

    store = EtcdStore([gw.url], request_timeout=2)
    with pytest.raises(OutcomeUnknown, match="may or may not have happened"):
        store.txn([Compare("/a", 4)], [Put("/a", {"v": 2})])
    store.close()


def test_a_watch_that_goes_back_in_time_raises_rewound(gateways: list[Gateway]) -> None:
    """Member one streams revisions 3 and 4 and breaks; member two, behind, replays 3 again."""
    calls: dict[str, int] = {"watch": 0}

    def handle(path: str, body: dict[str, Any]) -> Any:
        if path != "watch":
            return 200, header(9)
        calls["watch"] += 1
        if calls["watch"] == 1:
            return iter([{"result": {**header(5), "created": True}},
                         {"result": {**header(5), "events": [{"kv": kv("/a", 4)}]}},
                         {"result": {**header(5), "events": [{"kv": kv("/b", 5)}]}}])
        return iter([{"result": {**header(5), "created": True}},
                     {"result": {**header(5), "events": [{"kv": kv("/a", 4)}]}}])

    one, two = Gateway(handle), Gateway(handle)
    gateways += [one, two]
    store = EtcdStore([one.url, two.url], request_timeout=2)
    seen = []
    with pytest.raises(WatchRewound, match="back in time"):
        for ev in store.watch("/", 3, timeout=None):
            seen.append(ev.revision)
    assert seen == [3, 4] and calls["watch"] == 2
    store.close()


def test_a_broken_watch_resumes_from_the_next_revision_on_another_member(gateways: list[Gateway]) -> None:
    starts: list[str] = []

    def handle(path: str, body: dict[str, Any]) -> Any:
        if path != "watch":
            return 200, header(9)
        starts.append(body["create_request"]["start_revision"])
        first = int(starts[-1])
        return iter([{"result": {**header(9), "created": True}},
                     {"result": {**header(9), "events": [{"kv": kv(f"/k{first}", first)}]}}])

    one, two = Gateway(handle), Gateway(handle)
    gateways += [one, two]
    store = EtcdStore([one.url, two.url], request_timeout=2)
    revisions = []
    for ev in store.watch("/", 2, timeout=None):
        revisions.append(ev.revision)
        if len(revisions) == 3:
            break
    assert revisions == [2, 3, 4]  # no gap, no repeat
    assert starts == ["3", "4", "5"] and store.watcher.resumes == 2
    store.close()


def test_endpoints_and_tls_files_are_checked(tmp_path: Any) -> None:
    assert parse_endpoints("etcd://10.0.0.1:2379,10.0.0.2:2379") == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert parse_endpoints("https://192.168.10.71:2379, https://127.0.0.1:2379") == (
        "https://192.168.10.71:2379", "https://127.0.0.1:2379")
    with pytest.raises(PodnetError, match="bad etcd endpoint 'ftp://x:1'"):
        parse_endpoints("ftp://x:1")
    with pytest.raises(PodnetError, match="expected https://host:port"):
        parse_endpoints("https://nohostport")
    assert check_tls(None, None, None) is None
    with pytest.raises(PodnetError, match="--etcd-key missing"):
        check_tls("/a", "/b", None)
    with pytest.raises(PodnetError, match="--etcd-ca /nope: cannot read"):
        check_tls("/nope", "/nope", "/nope")
    with pytest.raises(PodnetError, match="needs TLS files"):
        EtcdStore(["https://127.0.0.1:2379"])
    cfg = StoreConfig(("http://127.0.0.1:2379",))
    path = save(str(tmp_path), cfg)
    assert load(str(tmp_path)) == cfg and oct(__import__("os").stat(path).st_mode & 0o777) == "0o600"
    assert load(str(tmp_path / "elsewhere")) is None
