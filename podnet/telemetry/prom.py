"""Telemetry that Prometheus can scrape: ``prometheus_client`` metrics on a registry of the
process's own, with the library's process, platform and garbage-collector collectors, served
over HTTP by ``serve``.

Series of a family made here are plain ``prometheus_client`` children: fine for a few label
values. A custom collector read at scrape time either yields ``*MetricFamily`` objects (a few
series) or, for families with many series (one per nft rule), writes its text itself
(``expose()``, see ``telemetry.text``), which costs a fraction of either. The endpoint always
answers in the text format 0.0.4 (which every Prometheus reads), gzip-compressed when asked.
"""
from __future__ import annotations

import gzip
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector as PromCollector

from .api import Collector, Kind, Telemetry, TextCollector


class PromTelemetry(Telemetry):
    """The metrics of one process on a private ``CollectorRegistry``."""

    enabled = True

    def __init__(self, *, runtime: bool = True) -> None:
        super().__init__()
        # No `_created` series: they double the series of every counter for a value nothing reads.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._text: list[TextCollector] = []
        if runtime:  # process_* (CPU, memory, fds), python_info, python_gc_*: read when scraped
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def _make(self, kind: Kind, name: str, documentation: str, labels: tuple[str, ...],
              buckets: tuple[float, ...]) -> Any:
        metric: Any
        if kind == "counter":
            metric = prometheus_client.Counter(name, documentation, labels, registry=self.registry)
        elif kind == "gauge":
            metric = prometheus_client.Gauge(name, documentation, labels, registry=self.registry)
        else:
            metric = prometheus_client.Histogram(name, documentation, labels, registry=self.registry,
                                                 buckets=buckets)
        return metric if labels else _Unlabelled(metric)

    def register(self, collector: Collector | TextCollector) -> None:
        if isinstance(collector, TextCollector):
            self._text.append(collector)
        else:
            self.registry.register(_Adapter(collector))

    def exposition(self) -> bytes:
        """The text a scrape returns (Prometheus' text format 0.0.4)."""
        parts = [prometheus_client.generate_latest(self.registry)]
        for collector in self._text:
            text = collector.expose()
            parts.append(text.encode() if isinstance(text, str) else text)
        return b"".join(parts)


class _Unlabelled:
    """A family without label names: ``labels()`` is the metric itself."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def labels(self, *values: str) -> Any:
        if values:
            raise ValueError(f"{self.metric._name} has no labels")
        return self.metric


class _Adapter(PromCollector):
    """A ``Collector`` of ours as the registry's abstract type."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Any]:
        yield from self.collector.collect()

    def describe(self) -> Iterator[Any]:
        """The families without samples, so registering reads nothing (no birdc, no store)."""
        describe = getattr(self.collector, "describe", None)
        yield from (describe() if describe is not None else self.collector.collect())


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        if urllib.parse.urlsplit(self.path).path not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served here")
            return
        try:
            body = self.server.telemetry.exposition()
        except Exception as exc:  # a collector failed: the scrape fails, and says why
            self.send_error(500, f"collecting metrics failed: {type(exc).__name__}: {exc}")
            return
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body, compresslevel=1)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scraper gave up (its timeout): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the process's log


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], telemetry: PromTelemetry) -> None:
        self.telemetry = telemetry
        super().__init__(address, _Handler)


class MetricsServer:
    """The HTTP endpoint (``/metrics``) of one process, served by a thread; ``close`` stops it."""

    def __init__(self, telemetry: PromTelemetry, port: int, host: str = "0.0.0.0") -> None:
        self.server = _Server((host, port), telemetry)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def serve(telemetry: PromTelemetry, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve ``telemetry`` on ``host:port`` in this process's network namespace (port 0: any
    free port, see ``MetricsServer.port``)."""
    return MetricsServer(telemetry, port, host)


__all__ = ["MetricsServer", "PromTelemetry", "serve"]
