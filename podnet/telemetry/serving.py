"""A process's metrics endpoint: the port of each podnet process, and ``open_metrics``, which
composition roots open before their loop and close after it.

Each process serves on its own port inside its node's network namespace (Felix's 9091, Calico
kube-controllers' 9094); a node's processes share the namespace, so they need distinct ports.
A new process takes the next free one here.
"""
from __future__ import annotations

import errno
from typing import Any

from podnet.errors import PodnetError

from .api import NULL, Telemetry

#: the default metrics port of each process (its ``podnet`` command)
PORTS = {"agent": 9091, "policy-loop": 9092, "routing-loop": 9093, "controllers": 9094, "proxy": 9095,
         "flow-logger": 9096}
DEFAULT_HOST = "0.0.0.0"


class Metrics:
    """A process's telemetry and, when it serves them, the HTTP server to close at the end."""

    def __init__(self, telemetry: Telemetry, server: Any = None) -> None:
        self.telemetry = telemetry
        self._server = server

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def open_metrics(port: int, host: str = DEFAULT_HOST) -> Metrics:
    """Telemetry served on ``host:port`` until ``close``; port 0: metrics off (``NULL``:
    recording costs nothing and nothing listens)."""
    if not port:
        return Metrics(NULL)
    from .prom import PromTelemetry, serve

    telemetry = PromTelemetry()
    try:
        return Metrics(telemetry, serve(telemetry, port, host))
    except OSError as exc:
        hint = ("another process serves on this port in this network namespace: choose another --metrics-port, "
                "or 0 to serve none") if exc.errno == errno.EADDRINUSE else "check --metrics-host"
        raise PodnetError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}", hint=hint) from None


def metrics_args(command: str) -> list[str]:
    """The flags that make ``podnet <command>`` serve on its port (what ``podnet up`` passes)."""
    return ["--metrics-port", str(PORTS[command])]
