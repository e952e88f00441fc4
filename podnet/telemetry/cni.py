"""What the agent's CNI socket records per request (the kubelet's and Calico's CNI plugin
durations): how long each command took and which failed, with the CNI error code."""
from __future__ import annotations

from .api import Telemetry

#: the commands of the CNI spec; anything else is counted as "other" (labels stay bounded)
COMMANDS = frozenset({"ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"})


class CniMetrics:
    def __init__(self, telemetry: Telemetry) -> None:
        self._duration = telemetry.histogram(
            "podnet_cni_request_duration_seconds",
            "Seconds the agent took to answer one CNI request, by command (ADD, DEL, CHECK, ...).", ("command",))
        self._errors = telemetry.counter(
            "podnet_cni_request_errors_total",
            "CNI requests answered with an error, by command and CNI error code (the spec's codes: 7 invalid "
            "config, 11 try again later, ...; 999 for a request the agent could not read).", ("command", "code"))
        self.in_flight = telemetry.gauge("podnet_cni_requests_in_flight",
                                         "CNI requests being handled right now.").labels()

    def answered(self, command: str, seconds: float, error_code: int | None) -> None:
        command = command if command in COMMANDS else "other"
        self._duration.labels(command).observe(seconds)
        if error_code is not None:
            self._errors.labels(command, str(error_code)).inc()
