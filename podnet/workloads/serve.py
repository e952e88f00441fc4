#!/usr/bin/python3 -IS
"""The built-in workloads (stdlib only, so quick to start and small; docs/cni.md has the figures).

``serve --name POD [--http] PROTO:PORT...`` answers on every port: TCP with an HTTP response
whose body is the pod's name (what an nginx pod's test page is used for: who answered), UDP
with a datagram carrying the name, SCTP with the name then close. ``connect HOST:PORT
--protocol tcp|udp|sctp --timeout 1s`` is agnhost's prober: exit 0 when connected, else it
prints TIMEOUT, REFUSED or OTHER: … and exits 1.
"""
import argparse
import socket
import sys
import threading
import time


def _http_reply(name: str) -> bytes:
    body = (name + "\n").encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


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
                conn.sendall(_http_reply(name))
                _log(f'{peer[0]} "{line}" 200')
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


def serve(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="serve")
    ap.add_argument("--name", required=True)
    ap.add_argument("--http", action="store_true")
    ap.add_argument("ports", nargs="+")
    a = ap.parse_args(argv)
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
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "connect"):
        sys.stderr.write("usage: serve.py serve|connect ...\n")
        return 2
    return serve(sys.argv[2:]) if sys.argv[1] == "serve" else connect(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
