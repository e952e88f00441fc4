#!/usr/bin/python3 -IS
"""podnet-cni: the CNI plugin executable a container runtime runs (stdlib only, on purpose).

It starts in a few milliseconds under ``python3 -IS`` because it imports nothing but the
standard library: it forwards its environment, stdin and network namespace (as a file
descriptor, over SCM_RIGHTS) to the node agent's unix socket, and prints the agent's answer.
When no agent listens (a plain host, a test, a bench) it runs the same handler in-process,
importing podnet from the paths ``podnet install-cni`` wrote into FALLBACK_PATH below.
"""
import json
import os
import socket
import struct
import sys
import time

FALLBACK_PATH: list = []  # filled in by `podnet install-cni`
SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
FORWARD = ("CNI_", "PODNET_")


def _fail(code: int, msg: str, version: str = "1.1.0") -> int:
    sys.stdout.write(json.dumps({"cniVersion": version, "code": code, "msg": msg}))
    return 1


def _socket_path(conf: dict) -> str:
    if isinstance(conf.get("agentSocket"), str):
        return conf["agentSocket"]
    node = conf.get("nodeName")
    state = conf.get("stateDir", "/var/lib/podnet")
    return f"{state}/nodes/{node}/cni.sock" if isinstance(node, str) and isinstance(state, str) else ""


def via_agent(path: str, env: dict, data: bytes) -> "tuple[int, str] | None":
    """Ask the agent; None if no agent listens at ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    for attempt in range(200):
        try:
            s.connect(path)
            break
        except BlockingIOError:  # the agent's accept queue is full: wait our turn
            time.sleep(0.005)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, PermissionError):
            s.close()
            return None
    with s:
        body = json.dumps({"env": env, "stdin": data.decode("utf-8", "replace")}).encode()
        ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            socket.send_fds(s, [struct.pack("!I", len(body)) + body], [ns])
        finally:
            os.close(ns)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = json.loads(b"".join(chunks) or b"{}")
    return int(reply.get("code", 1)), reply.get("stdout", "")


def in_process(env: dict, data: bytes) -> "tuple[int, str]":
    sys.path[:0] = [p for p in FALLBACK_PATH if p not in sys.path]
    from podnet.cni.inprocess import run  # noqa: imported only on the slow path
    return run(env, data)


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARD)}
    data = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    if env.get("CNI_COMMAND") == "VERSION":
        try:
            version = json.loads(data or b"{}").get("cniVersion") or "1.1.0"
        except (ValueError, AttributeError):
            version = "1.1.0"
        sys.stdout.write(json.dumps({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}))
        return 0
    try:
        conf = json.loads(data or b"")
    except ValueError as exc:
        return _fail(6, f"network configuration on stdin is not valid JSON: {exc}")
    if not isinstance(conf, dict):
        return _fail(6, "network configuration must be a JSON object")
    answer = None
    if not env.get("PODNET_CNI_INPROCESS"):
        path = _socket_path(conf)
        answer = via_agent(path, env, data) if path else None
    if answer is None:
        answer = in_process(env, data)
    code, out = answer
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # never leave a runtime without the spec's error JSON
        sys.exit(_fail(100, f"podnet-cni failed: {type(exc).__name__}: {exc}"))
