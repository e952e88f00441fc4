"""What a manager records after it applied desired state to the kernel: how long it took
(kube-proxy's and Felix's apply histograms), failures, read-backs and the drift they found."""
from __future__ import annotations

from .api import Telemetry

TABLE = ("table",)


class DataplaneMetrics:
    """The series of one dataplane target (label ``table``: ``inet podnet``, ``routing``, …)."""

    def __init__(self, telemetry: Telemetry, table: str) -> None:
        self.table = table
        self._apply = telemetry.histogram(
            "podnet_dataplane_apply_duration_seconds",
            "Seconds one apply to the kernel took (plan and commit), by path: full (rendered, diffed against "
            "the model or the kernel) or incremental (one change planned on the live table).", ("table", "path"))
        self.failures = telemetry.counter(
            "podnet_dataplane_apply_failures_total",
            "Applies the kernel refused or that failed; the old state stays and the next pass retries.",
            TABLE).labels(table)
        self.resyncs = telemetry.counter(
            "podnet_dataplane_resyncs_total",
            "Applies that read the kernel's state back instead of trusting the model of the last commit.",
            TABLE).labels(table)
        self.drift = telemetry.counter(
            "podnet_dataplane_drift_repairs_total",
            "Passes without any store change that still had to change the kernel: someone else changed it, "
            "and podnet put it back.", TABLE).labels(table)
        self.revision = telemetry.gauge(
            "podnet_dataplane_synced_revision",
            "The store revision the kernel's state was last brought up to.", TABLE).labels(table)

    def applied(self, path: str, seconds: float) -> None:
        self._apply.labels(self.table, path).observe(seconds)
