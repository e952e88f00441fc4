"""The pods' wget behaves as busybox wget does (flags, messages, exit codes), and -T bounds a
request to a server that never answers — run as pods run it, against a loopback server."""
from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from podnet.workloads.images import PYTHON, WGET_SCRIPT


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        if self.path == "/missing":
            return self._reply(404, b"no")
        if self.path == "/moved":
            return self._reply(302, b"", {"Location": "/page.txt"})
        if self.path == "/headers":
            return self._reply(200, f"{self.headers.get('X-Probe')} {self.headers.get('User-Agent')}".encode())
        self._reply(200, b"hello\n", {"X-Served-By": "test"})

    do_HEAD = do_GET


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]  # /slow's client left
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def wget(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-IS", WGET_SCRIPT, *args], capture_output=True, text=True, timeout=20, cwd=cwd)


def test_quiet_to_stdout_bundled_flags(server: str) -> None:
    r = wget("-qO-", f"{server}/")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    r = wget("-q", "-O", "-", "-U", "agent/1", "--header", "X-Probe: 42", f"{server}/headers")
    assert r.stdout == "42 agent/1"


def test_saves_to_file_follows_redirects_and_reports(server: str, tmp_path: Path) -> None:
    r = wget(f"{server}/moved", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "page.txt").read_text() == "hello\n"
    assert f"Connecting to {server[7:]}" in r.stderr and "'page.txt' saved" in r.stderr
    r = wget("-O", str(tmp_path / "out"), f"{server}/")
    assert r.returncode == 0 and (tmp_path / "out").read_text() == "hello\n"


def test_errors_exit_1_with_busybox_messages(server: str) -> None:
    r = wget("-q", "-O-", f"{server}/missing")
    assert r.returncode == 1 and r.stderr == "wget: server returned error: HTTP/1.1 404 Not Found\n"
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as closed:
        dead = closed.server_address[1]
    r = wget("-qO-", f"http://127.0.0.1:{dead}/")
    assert r.returncode == 1 and r.stderr == "wget: can't connect to remote host (127.0.0.1): Connection refused\n"
    assert wget().returncode == 1 and wget("-Z", f"{server}/").returncode == 1


def test_spider_and_server_response(server: str) -> None:
    r = wget("--spider", "-S", f"{server}/")
    assert r.returncode == 0 and r.stdout == "" and "  HTTP/1.1 200 OK" in r.stderr and "X-Served-By: test" in r.stderr
    assert wget("--spider", "-q", f"{server}/missing").returncode == 1


def test_timeout_bounds_a_silent_server(server: str) -> None:
    t0 = time.monotonic()
    r = wget("-T", "1", "-qO-", f"{server}/slow")
    took = time.monotonic() - t0
    assert r.returncode == 1 and r.stderr == "wget: download timed out\n" and took < 2.5, (r.stderr, took)
    t0 = time.monotonic()
    assert wget("-qT1", "-O-", f"{server}/slow").returncode == 1 and time.monotonic() - t0 < 2.5
