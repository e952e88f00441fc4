"""The health-check node ports of ``externalTrafficPolicy: Local`` Services, as kube-proxy
serves them.

A load balancer in front of the nodes asks each node's ``healthCheckNodePort`` whether to send
it traffic: 200 while the node has a ready endpoint of the Service (and the proxy is healthy),
503 otherwise, with a JSON body naming the Service and the count, and the count again in
``X-Load-Balancing-Endpoint-Weight``. Terminating endpoints still serve traffic but are not
counted, so a load balancer drains a node whose pods are shutting down. Any path answers.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from podnet.kernel import netns as _netns

log = logging.getLogger("podnet.proxy")


@dataclass(frozen=True)
class HealthCheck:
    """What one health-check port reports."""

    namespace: str
    name: str
    local_endpoints: int


def health_body(check: HealthCheck, healthy: bool) -> tuple[int, bytes]:
    """The status code and body kube-proxy answers with (its JSON, indented by tabs)."""
    body = (f'{{\n\t"service": {{\n\t\t"namespace": {json.dumps(check.namespace)},\n'
            f'\t\t"name": {json.dumps(check.name)}\n\t}},\n'
            f'\t"localEndpoints": {check.local_endpoints},\n'
            f'\t"serviceProxyHealthy": {"true" if healthy else "false"}\n}}')
    return (200 if check.local_endpoints and healthy else 503), body.encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    check: HealthCheck
    healthy: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        code, body = health_body(srv.check, srv.healthy)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Load-Balancing-Endpoint-Weight", str(srv.check.local_endpoints))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        return None


class HealthServers:
    """One HTTP server per health-check port, inside ``netns_name`` (None: this namespace)."""

    def __init__(self, netns_name: str | None = None, address: str = "0.0.0.0") -> None:
        self.netns = netns_name
        self.address = address
        self._servers: dict[int, _Server] = {}

    @property
    def ports(self) -> list[int]:
        return sorted(self._servers)

    def sync(self, checks: Mapping[int, HealthCheck], healthy: bool = True) -> list[str]:
        """Serve exactly ``checks`` (port → what it reports); returns the problems (a port
        another process holds), which the next sync retries."""
        problems = []
        for port in [p for p in self._servers if p not in checks]:
            self._close(port)
        for port, check in checks.items():
            srv = self._servers.get(port)
            if srv is None:
                try:
                    srv = self._open(port)
                except OSError as exc:
                    problems.append(f"health check port {port} of {check.namespace}/{check.name}: {exc}")
                    continue
            srv.check, srv.healthy = check, healthy
        return problems

    def _open(self, port: int) -> _Server:
        with _netns.enter(self.netns) if self.netns else nullcontext():
            srv = _Server((self.address, port), _Handler)
        srv.check, srv.healthy = HealthCheck("", "", 0), False
        threading.Thread(target=srv.serve_forever, name=f"health-{port}", daemon=True).start()
        self._servers[port] = srv
        log.info("health check port %d open", port)
        return srv

    def _close(self, port: int) -> None:
        srv = self._servers.pop(port)
        srv.shutdown()
        srv.server_close()

    def close(self) -> None:
        for port in list(self._servers):
            self._close(port)
