#!/usr/bin/python3 -IS
"""``wget`` for pods, with busybox wget's flags, messages and exit codes.

Debian's busybox-static ``wget -T N`` crashes, and ``-T`` is what the busybox habits of
Kubernetes users rely on (``wget -T 5 -qO- http://web``). This one takes the same flags
(``-q``, ``-O FILE``/``-O -``, ``-T SEC``, ``-S``, ``--spider``, ``--header``, ``-U``,
``-Y``, ``-P DIR``, ``--post-data``, ``--no-check-certificate``; bundled like ``-qO-``),
resolves names through the pod's resolv.conf and /etc/hosts (the C library's resolver),
follows redirects, and exits 1 with busybox's message on any failure. Standard library only,
run with ``python3 -IS`` so that it starts quickly.
"""
from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys
from urllib.parse import urljoin, urlsplit

USAGE = "Usage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR] [-U AGENT] [-T SEC] URL..."
WITH_VALUE = {"O": "output", "o": "log", "T": "timeout", "U": "agent", "Y": "proxy", "P": "prefix"}
LONG = {"output-document": "output", "timeout": "timeout", "user-agent": "agent", "header": "header",
        "post-data": "post_data", "proxy": "proxy", "directory-prefix": "prefix", "output-file": "log"}
FLAGS = {"q": "quiet", "S": "server_response", "c": "continue", "s": "spider"}
LONG_FLAGS = {"quiet": "quiet", "spider": "spider", "server-response": "server_response",
              "no-check-certificate": "insecure", "continue": "continue"}
MAX_REDIRECTS = 20


class Failure(Exception):
    """What busybox prints after ``wget: `` before exiting 1."""


def parse(args: list[str]) -> tuple[dict[str, object], list[str]]:
    opts: dict[str, object] = {"header": [], "timeout": "900"}
    urls: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            urls += args[i + 1:]
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            if name in LONG_FLAGS:
                opts[LONG_FLAGS[name]] = True
            elif name in LONG:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise Failure(f"option '--{name}' requires an argument")
                    value = args[i]
                _set(opts, LONG[name], value)
            else:
                raise Failure(f"unrecognized option '--{name}'")
        elif word.startswith("-") and len(word) > 1:
            j = 1
            while j < len(word):
                letter = word[j]
                if letter in FLAGS:
                    opts[FLAGS[letter]] = True
                elif letter in WITH_VALUE:
                    value = word[j + 1:]
                    if not value:
                        i += 1
                        if i >= len(args):
                            raise Failure(f"option requires an argument -- '{letter}'")
                        value = args[i]
                    _set(opts, WITH_VALUE[letter], value)
                    break
                else:
                    raise Failure(f"invalid option -- '{letter}'")
                j += 1
        else:
            urls.append(word)
        i += 1
    return opts, urls


def _set(opts: dict[str, object], key: str, value: str) -> None:
    if key == "header":
        headers = opts["header"]
        assert isinstance(headers, list)
        headers.append(value)
    else:
        opts[key] = value


def _connect(scheme: str, host: str, port: int, timeout: float, insecure: bool) -> http.client.HTTPConnection:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise Failure(f"bad address '{host}'") from None
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # busybox wget does not check certificates either
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    address = str(infos[0][4][0])
    try:
        conn.sock = socket.create_connection((address, port), timeout=timeout)
        if scheme == "https":
            assert isinstance(conn, http.client.HTTPSConnection)
            conn.sock = conn._context.wrap_socket(conn.sock, server_hostname=host)  # type: ignore[attr-defined]
    except TimeoutError:
        raise Failure("download timed out") from None
    except OSError as exc:
        raise Failure(f"can't connect to remote host ({address}): {exc.strerror or exc}") from None
    return conn


def fetch(url: str, opts: dict[str, object], out_name: str | None) -> None:
    timeout = float(str(opts["timeout"]))
    quiet = bool(opts.get("quiet"))
    method = "POST" if opts.get("post_data") is not None else ("HEAD" if opts.get("spider") else "GET")
    for _ in range(MAX_REDIRECTS):
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise Failure(f"not an http or ftp url: {url}")
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not quiet:
            print(f"Connecting to {parts.netloc} ({host}:{port})", file=sys.stderr)
        conn = _connect(parts.scheme, host, port, timeout, bool(opts.get("insecure")))
        headers = {"Host": parts.netloc, "User-Agent": str(opts.get("agent", "Wget")), "Connection": "close"}
        for line in opts["header"]:  # type: ignore[attr-defined]
            name, _, value = str(line).partition(":")
            headers[name.strip()] = value.strip()
        body = str(opts["post_data"]).encode() if method == "POST" else None
        if body is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
        except TimeoutError:
            raise Failure("download timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            raise Failure(f"error getting response: {exc}") from None
        if opts.get("server_response"):
            print(f"  HTTP/1.1 {resp.status} {resp.reason}", file=sys.stderr)
            for name, value in resp.getheaders():
                print(f"  {name}: {value}", file=sys.stderr)
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            url = urljoin(url, resp.getheader("Location") or "")
            if resp.status == 303:
                method = "GET"
            conn.close()
            continue
        if resp.status >= 300:
            raise Failure(f"server returned error: HTTP/1.1 {resp.status} {resp.reason}")
        if opts.get("spider"):
            if not quiet:
                print("remote file exists", file=sys.stderr)
            return
        _save(resp, out_name or _default_name(parts.path, opts), quiet, timeout)
        return
    raise Failure("too many redirections")


def _default_name(path: str, opts: dict[str, object]) -> str:
    name = os.path.basename(path) or "index.html"
    prefix = opts.get("prefix")
    return os.path.join(str(prefix), name) if prefix else name


def _save(resp: http.client.HTTPResponse, name: str, quiet: bool, timeout: float) -> None:
    to_stdout = name == "-"
    if not quiet:
        print("writing to stdout" if to_stdout else f"saving to '{name}'", file=sys.stderr)
    try:
        out = sys.stdout.buffer if to_stdout else open(name, "wb")
    except OSError as exc:
        raise Failure(f"can't open '{name}': {exc.strerror}") from None
    try:
        while True:
            try:
                chunk = resp.read1(65536)
            except TimeoutError:
                raise Failure("download timed out") from None
            if not chunk:
                break
            out.write(chunk)
        out.flush()
    finally:
        if not to_stdout:
            out.close()
    if not quiet:
        print("written to stdout" if to_stdout else f"'{name}' saved", file=sys.stderr)


def main(argv: list[str]) -> int:
    try:
        opts, urls = parse(argv)
        if not urls:
            print(USAGE, file=sys.stderr)
            return 1
        out = opts.get("output")
        for url in urls:
            fetch(url, opts, str(out) if out is not None else None)
    except Failure as exc:
        print(f"wget: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
