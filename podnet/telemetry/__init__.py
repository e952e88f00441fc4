"""Prometheus metrics of podnet's long-running processes.

A process builds its metrics on a ``Telemetry``: ``NULL`` (the default everywhere, so library
code and tests record into no-ops) or, when its ``--metrics-port`` is set, a ``PromTelemetry``
(``telemetry.prom``) served over HTTP. Managers and the loop runner record what their passes
did; state that is cheap to read when asked (the kernel's rule counters, BGP sessions, the
store's counts) is read by custom collectors at scrape time. Importing this package does no
I/O and loads no third-party module: ``prometheus_client`` is imported only by a process that
serves metrics.

The package sits above the kernel layer and below the managers, so planners and appliers
cannot record metrics: they return statistics, and the managers record them.
"""
from __future__ import annotations

from .api import NULL, Counter, Family, Gauge, Histogram, Telemetry

__all__ = ["NULL", "Counter", "Family", "Gauge", "Histogram", "Telemetry"]
