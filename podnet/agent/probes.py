"""Running one probe or lifecycle hook, as the kubelet's probers do: ``exec`` inside the
container (its sandbox's namespaces and capabilities, the container's environment), ``httpGet``,
``tcpSocket`` and ``grpc`` (grpc.health.v1) from the node toward the pod's address, ``sleep``
for hooks. Each returns success and the message the kubelet would put in its event.
"""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from podnet.kernel import netns
from podnet.model.probes import ExecAction, GRPCAction, Handler, HTTPGetAction, SleepAction, TCPSocketAction
from podnet.workloads.sandbox import Privileges, enter_argv

USER_AGENT = "kube-probe/1.31"
MAX_REDIRECTS = 10
MAX_OUTPUT = 10 * 1024


@dataclass(frozen=True)
class Target:
    """Where a container's probes and hooks go."""

    pod_ip: str
    netns: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports
    sandbox_pid: int = 0  # the container's sandbox (its init), where exec actions run; 0: none
    privileges: Privileges | None = None  # the container's, which exec actions get too


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str = ""


def run(handler: Handler, target: Target, timeout: float) -> Result:
    """Run ``handler`` against ``target`` within ``timeout`` seconds."""
    try:
        if isinstance(handler, ExecAction):
            return _exec(handler, target, timeout)
        if isinstance(handler, HTTPGetAction):
            return _http(handler, target, timeout)
        if isinstance(handler, TCPSocketAction):
            return _tcp(handler, target, timeout)
        if isinstance(handler, GRPCAction):
            return _grpc(handler, target, timeout)
        if isinstance(handler, SleepAction):
            time.sleep(min(handler.seconds, timeout))
            return Result(True)
    except _PortNotFound as exc:
        return Result(False, str(exc))
    return Result(False, f"unknown handler {type(handler).__name__}")


class _PortNotFound(Exception):
    pass


def _port(port: int | str, target: Target) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port not in target.ports:
        raise _PortNotFound(f"couldn't find port: {port} in container")
    return target.ports[port]


def _exec(action: ExecAction, target: Target, timeout: float) -> Result:
    command = " ".join(action.command)
    try:
        argv = (enter_argv(target.sandbox_pid, target.privileges or Privileges(), action.command)
                if target.sandbox_pid else netns.nsenter_argv(target.netns, action.command))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(target.env),
                                cwd=target.cwd if os.path.isdir(target.cwd) else "/", start_new_session=True)
    except OSError as exc:
        return Result(False, f"failed to exec {command!r}: {exc}")
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return Result(False, f"command {command!r} timed out")
    text = out[:MAX_OUTPUT].decode(errors="replace")
    return Result(proc.returncode == 0, text)


def _http(action: HTTPGetAction, target: Target, timeout: float) -> Result:
    host = action.host or target.pod_ip
    port = _port(action.port, target)
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    scheme = action.scheme.lower()
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.http_headers or []:
        headers[h.name.title() if h.name.lower() in ("host", "user-agent", "accept") else h.name] = h.value
    url = f"{scheme}://{host}:{port}{path}"
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        try:
            code, location = _http_get(scheme, host, port, path, headers, deadline)
        except TimeoutError:
            return Result(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                                 "awaiting headers)")
        except ConnectionRefusedError:
            return Result(False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused')
        except (OSError, ValueError) as exc:
            return Result(False, f'Get "{url}": {exc}')
        if 300 <= code < 400 and location:
            nxt = urlsplit(location)
            if nxt.hostname not in (None, host):  # another host: the redirect itself is the answer
                return Result(True, "Probe terminated redirects")
            path = (nxt.path or "/") + (f"?{nxt.query}" if nxt.query else "")
            continue
        if 200 <= code < 400:
            return Result(True)
        return Result(False, f"HTTP probe failed with statuscode: {code}")
    return Result(False, f'Get "{url}": stopped after {MAX_REDIRECTS} redirects')


def _http_get(scheme: str, host: str, port: int, path: str, headers: Mapping[str, str],
              deadline: float) -> tuple[int, str]:
    """One GET: the status code and Location header."""
    sock = socket.create_connection((host, port), timeout=max(0.001, deadline - time.monotonic()))
    try:
        if scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # as the kubelet: no verification
            sock = ctx.wrap_socket(sock, server_hostname=host)
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall((request + "Connection: close\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data and len(data) < MAX_OUTPUT:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = head[0].split(" ")
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed HTTP response {head[0]!r}")
    location = next((line.split(":", 1)[1].strip() for line in head[1:] if line.lower().startswith("location:")), "")
    return int(parts[1]), location


def _tcp(action: TCPSocketAction, target: Target, timeout: float) -> Result:
    host = action.host or target.pod_ip
    port = _port(action.port, target)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        return Result(False, f"dial tcp {host}:{port}: i/o timeout")
    except ConnectionRefusedError:
        return Result(False, f"dial tcp {host}:{port}: connect: connection refused")
    except OSError as exc:
        return Result(False, f"dial tcp {host}:{port}: {exc.strerror or exc}")
    return Result(True)


def _grpc(action: GRPCAction, target: Target, timeout: float) -> Result:
    """grpc.health.v1 Check, worded as the kubelet's gRPC prober words its results."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    addr = f"{target.pod_ip}:{action.port}"
    channel = grpc.insecure_channel(addr)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return Result(False, f'timeout: failed to connect service "{addr}" within {timeout:g}s')
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=action.service or ""), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return Result(False, "error: this server does not implement the grpc health protocol "
                                     f"(grpc.health.v1.Health): {exc.details()}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Result(False, f"timeout: health rpc did not complete within {timeout:g}s")
            return Result(False, f"error: health rpc probe failed: {code.name}: {exc.details()}")
        if resp.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            return Result(False, f"service unhealthy (responseCode: {name})")
        return Result(True)
    finally:
        channel.close()
