#!/usr/bin/python3 -IS
"""podnet-cni: the CNI plugin executable a container runtime runs.

Start-up time is the whole game here, so this file imports only built-in C modules (``posix``,
``_socket``, ``sys``): not even ``json`` (it drags in ``re`` and ``enum``) or ``socket``; the
start-up figures are in docs/cni.md. It forwards its environment, stdin
and network namespace (a file descriptor, SCM_RIGHTS) to the node agent's unix socket and
prints the agent's answer. When no agent listens (a plain host, a test, a bench) it runs the
same handler in-process, importing podnet from FALLBACK_PATH (written by ``podnet install-cni``).

Wire format (agent side: ``podnet.cni.server``): request = 4-byte big-endian length, then
``KEY=VALUE\\0`` for each forwarded variable, an empty entry, and stdin; answer = 4-byte exit
code, then stdout.
"""
import _socket
import posix
import sys

FALLBACK_PATH: "list[str]" = []  # filled in by `podnet install-cni`
AGENT_SOCKET = ""  # filled in by `podnet install-cni`; the conflist's agentSocket wins
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
FORWARD = (b"CNI_", b"PODNET_")


def _string_field(data: bytes, name: bytes) -> "str | None":
    """A top-level-looking string field, found without a JSON parser; None when absent or
    escaped (then the agent's real parser decides)."""
    i = data.find(b'"' + name + b'"')
    if i < 0:
        return None
    j = data.find(b'"', data.find(b":", i + len(name) + 2) + 1)
    k = data.find(b'"', j + 1)
    if j < 0 or k < 0 or b"\\" in data[j + 1:k]:
        return None
    return data[j + 1:k].decode()


def via_agent(path: str, env: "list[bytes]", data: bytes) -> "tuple[int, bytes] | None":
    """Ask the agent; None if no agent listens at ``path``."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        for _ in range(400):
            try:
                s.connect(path)
                break
            except BlockingIOError:  # the agent's accept queue is full: wait our turn
                posix.sched_yield()
                __import__("time").sleep(0.005)
        else:
            return None
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, PermissionError):
        s.close()
        return None
    body = b"\0".join(env) + b"\0\0" + data
    ns = posix.open("/proc/thread-self/ns/net", posix.O_RDONLY)
    try:
        s.sendmsg([len(body).to_bytes(4, "big") + body],
                  [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, ns.to_bytes(4, sys.byteorder))])
    finally:
        posix.close(ns)
    chunks = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    s.close()
    reply = b"".join(chunks)
    if len(reply) < 4:
        return 1, b'{"cniVersion": "1.1.0", "code": 5, "msg": "the podnet agent closed the connection"}'
    return int.from_bytes(reply[:4], "big", signed=True), reply[4:]


def in_process(data: bytes) -> "tuple[int, bytes]":
    sys.path[:0] = [p for p in FALLBACK_PATH if p not in sys.path]
    import os

    from podnet.cni.inprocess import run  # imported only on the slow path
    code, out = run({k: v for k, v in os.environ.items() if k.startswith(("CNI_", "PODNET_"))}, data)
    return code, out.encode()


def main() -> int:
    """Exit code; stdout is written. On the fast paths the process ends here (``posix._exit``
    after a flush): interpreter finalisation would only add time and there is nothing to clean up."""
    environ = posix.environ
    data = b""
    while True:
        chunk = posix.read(0, 65536)
        if not chunk:
            break
        data += chunk
    if environ.get(b"CNI_COMMAND") == b"VERSION":
        version = _string_field(data, b"cniVersion") or "1.1.0"
        versions = ", ".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
        sys.stdout.write(f'{{"cniVersion": "{version}", "supportedVersions": [{versions}]}}')
        _exit_now(0)
    answer = None
    if not environ.get(b"PODNET_CNI_INPROCESS"):
        path = _string_field(data, b"agentSocket") or AGENT_SOCKET
        if path:
            env = [k + b"=" + v for k, v in environ.items() if k.startswith(FORWARD)]
            answer = via_agent(path, env, data)
    if answer is not None:
        sys.stdout.buffer.write(answer[1])
        _exit_now(answer[0])
    code, out = in_process(data)  # a normal exit here: the store connection closes cleanly
    sys.stdout.buffer.write(out)
    return code


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    posix._exit(code)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # never leave a runtime without the spec's error JSON
        msg = f"podnet-cni failed: {type(exc).__name__}: {exc}".replace("\\", "/").replace('"', "'")
        sys.stdout.write(f'{{"cniVersion": "1.1.0", "code": 100, "msg": "{msg}"}}')
        sys.exit(1)
