"""What every loop records about its passes (``agent/runner.py`` records them): kube-proxy's
sync counters and Felix's resync state, in one shape for the four podnet processes."""
from __future__ import annotations

from .api import Telemetry

LOOP = ("loop",)


class LoopMetrics:
    """The series of one loop (label ``loop``: the name of its ``podnet`` command)."""

    def __init__(self, telemetry: Telemetry, loop: str) -> None:
        self.passes = telemetry.counter(
            "podnet_loop_passes_total", "Passes of the loop that completed.", LOOP).labels(loop)
        self.failures = telemetry.counter(
            "podnet_loop_failures_total",
            "Passes (or store watches) of the loop that failed; each is retried after a back-off.", LOOP).labels(loop)
        self.duration = telemetry.histogram(
            "podnet_loop_pass_duration_seconds", "Seconds one pass of the loop took, successful or not.",
            LOOP).labels(loop)
        wakeups = telemetry.counter(
            "podnet_loop_wakeups_total",
            "Why the loop started a pass: a change in the store it watches, or its resync timer.",
            ("loop", "reason"))
        self.woken_by_change, self.woken_by_resync = wakeups.labels(loop, "change"), wakeups.labels(loop, "resync")
        self.backoff = telemetry.gauge(
            "podnet_loop_backoff_seconds", "The wait before the next try after failed passes; 0 while passes succeed.",
            LOOP).labels(loop)
        self.last_success = telemetry.gauge(
            "podnet_loop_last_success_timestamp_seconds", "Unix time at which the last successful pass ended.",
            LOOP).labels(loop)
