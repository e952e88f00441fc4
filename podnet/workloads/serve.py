#!/usr/bin/python3 -IS
"""The built-in workloads (stdlib only, so quick to start and small; docs/cni.md has the figures).

``serve --name POD [--http] [--delay-shutdown S] PROTO:PORT...`` answers on every port: TCP
with an HTTP response whose body is the pod's name (what an nginx pod's test page is used for:
who answered), UDP with a datagram carrying the name, SCTP with the name then close. HTTP
paths as agnhost's netexec has them: ``/healthz`` (200), ``/readyz`` (200, 503 once SIGTERM
arrived), ``/hostname``, ``/echo?msg=``, ``/clientip``. On SIGTERM it keeps serving for
``--delay-shutdown`` seconds, then exits 0. ``liveness`` is agnhost's: ``/healthz`` on 8080
answers 200 for 10 s, then 500. ``pause`` sleeps until SIGTERM (plus the delay).
``connect HOST:PORT --protocol tcp|udp|sctp --timeout 1s`` is agnhost's prober: exit 0 when
connected, else it prints TIMEOUT, REFUSED or OTHER: … and exits 1.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

STARTED = time.monotonic()
TERMINATING = threading.Event()
LIVENESS_SECONDS = 10.0
_MODE = {"liveness": False}


def _http_reply(body_text: str, code: int = 200, reason: str = "OK") -> bytes:
    body = (body_text + "\n").encode()
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nConnection: close\r\n".encode()
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _answer(line: str, name: str, peer: tuple[str, int]) -> tuple[int, str, str]:
    """(status code, reason, body) for an HTTP request line."""
    parts = line.split(" ")
    url = urlsplit(parts[1] if len(parts) > 1 else "/")
    path = url.path
    if path == "/healthz":
        if _MODE["liveness"] and time.monotonic() - STARTED > LIVENESS_SECONDS:
            return 500, "Internal Server Error", f"error: {time.monotonic() - STARTED:.1f}"
        return 200, "OK", "ok"
    if path == "/readyz":
        return (503, "Service Unavailable", "terminating") if TERMINATING.is_set() else (200, "OK", "ok")
    if path == "/echo":
        return 200, "OK", parse_qs(url.query).get("msg", [""])[0]
    if path == "/clientip":
        return 200, "OK", f"{peer[0]}:{peer[1]}"
    return 200, "OK", name


def _log(msg: str) -> None:
    sys.stdout.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + msg + "\n")
    sys.stdout.flush()


def _tcp_conn(conn: socket.socket, peer: tuple[str, int], name: str, proto: str) -> None:
    with conn:
        conn.settimeout(5)
        try:
            if proto == "tcp":
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                code, reason, body = _answer(line, name, peer)
                conn.sendall(_http_reply(body, code, reason))
                _log(f'{peer[0]} "{line}" {code}')
            else:
                conn.sendall((name + "\n").encode())
                _log(f"{peer[0]} sctp connect")
        except OSError:
            pass


def _serve_stream(port: int, proto: str, name: str) -> None:
    ipproto = socket.IPPROTO_SCTP if proto == "sctp" else socket.IPPROTO_TCP
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, ipproto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=_tcp_conn, args=(conn, peer, name, proto), daemon=True).start()


def _serve_udp(port: int, name: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        _data, peer = s.recvfrom(65535)
        s.sendto((name + "\n").encode(), peer)
        _log(f"{peer[0]} udp")


def sctp_supported() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


def _on_sigterm(delay: float) -> None:
    """SIGTERM: answer /readyz with 503 and keep serving ``delay`` seconds, then exit 0."""
    def exit_later() -> None:
        time.sleep(delay)
        os._exit(0)

    def handler(*_: object) -> None:
        TERMINATING.set()
        _log(f"SIGTERM: exiting in {delay:g} s")
        threading.Thread(target=exit_later, daemon=True).start()

    signal.signal(signal.SIGTERM, handler)


def serve(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="serve")
    ap.add_argument("--name", required=True)
    ap.add_argument("--http", action="store_true")
    ap.add_argument("--delay-shutdown", type=float, default=0.0)
    ap.add_argument("--liveness", action="store_true", help="/healthz fails after 10 s (agnhost liveness)")
    ap.add_argument("ports", nargs="+")
    a = ap.parse_args(argv)
    _MODE["liveness"] = a.liveness
    _on_sigterm(a.delay_shutdown)
    threads = []
    for spec in a.ports:
        proto, _, port = spec.partition(":")
        if proto == "sctp" and not sctp_supported():
            _log(f"sctp:{port} not served: this kernel has no SCTP support")
            continue
        target = _serve_udp if proto == "udp" else _serve_stream
        args = (int(port), a.name) if proto == "udp" else (int(port), proto, a.name)
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        threads.append(t)
    _log(f"{a.name} serving {' '.join(a.ports)}")
    while all(t.is_alive() for t in threads):  # none at all (nothing servable): stay up, idle
        time.sleep(1)
    return 1  # a listener died (port in use?): exit so the pod restarts it


def pause(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="pause")
    ap.add_argument("--delay-shutdown", type=float, default=0.0)
    a = ap.parse_args(argv)
    _on_sigterm(a.delay_shutdown)
    _log("Paused")
    while True:
        time.sleep(3600)


def _seconds(text: str) -> float:
    text = text.strip()
    for suffix, mul in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * mul
    return float(text)


def connect(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="connect")
    ap.add_argument("target")
    ap.add_argument("--protocol", default="tcp", choices=["tcp", "udp", "sctp"])
    ap.add_argument("--timeout", default="1s")
    a = ap.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    timeout = _seconds(a.timeout)
    try:
        if a.protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(b"hello\n", (host, int(port)))
                s.recvfrom(65535)
        else:
            proto = socket.IPPROTO_SCTP if a.protocol == "sctp" else socket.IPPROTO_TCP
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto) as s:
                s.settimeout(timeout)
                s.connect((host, int(port)))
    except TimeoutError:
        print("TIMEOUT")
        return 1
    except ConnectionRefusedError:
        print("REFUSED")
        return 1
    except OSError as exc:
        print(f"OTHER: {exc}")
        return 1
    return 0


def main() -> int:
    commands = {"serve": serve, "connect": connect, "pause": pause}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.stderr.write("usage: serve.py serve|connect|pause ...\n")
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
