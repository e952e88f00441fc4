"""What recording code sees: metric families made by a ``Telemetry``, and the no-op ``NULL``.

Names follow Prometheus' conventions and are checked when a metric is made (with ``NULL`` too,
so a badly named metric fails the unit tests): the ``podnet_`` prefix, base units, counters
ending in ``_total``, histograms of durations in ``_seconds``. Asking twice for the same name
returns the same family, so any module can add a metric in one line::

    SYNCS = telemetry.histogram("podnet_proxy_sync_duration_seconds", "Seconds a sync took.", ("table",))
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

#: from a millisecond to ten seconds: a policy update is fast, a full resync of a large table slow
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "podnet_"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_UNITS = ("_seconds", "_bytes")

Kind = Literal["counter", "gauge", "histogram"]


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Gauge(Protocol):
    def set(self, value: float) -> None: ...

    def inc(self, amount: float = 1) -> None: ...


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


M = TypeVar("M", covariant=True)


class Family(Protocol[M]):
    """A metric with label names: ``labels(*values)`` is the series to record into (with no
    label names, ``labels()`` is the metric itself)."""

    def labels(self, *values: str) -> M: ...


class Collector(Protocol):
    """Yields metric families (``prometheus_client.core``'s) when scraped."""

    def collect(self) -> Iterable[Any]: ...


@runtime_checkable
class TextCollector(Protocol):
    """Writes its families in the text format when scraped (``telemetry.text``), as text or
    already encoded (``telemetry.snapshot``: encoded once per read)."""

    def expose(self) -> str | bytes: ...


def check_name(kind: Kind, name: str, labels: Sequence[str] = ()) -> None:
    """Refuse a name Prometheus' conventions (and ``promtool check metrics``) would reject."""
    problems = []
    if not name.startswith(PREFIX) or not _NAME.match(name):
        problems.append(f"must start with {PREFIX!r} and use only [a-z0-9_]")
    if kind == "counter" and not name.endswith("_total"):
        problems.append("a counter's name ends in _total")
    if kind != "counter" and name.endswith("_total"):
        problems.append("only counters end in _total")
    if kind == "histogram" and not name.endswith(_UNITS):
        problems.append("a histogram is of a base unit: ends in _seconds or _bytes")
    if any(u in name for u in ("_milliseconds", "_ms_", "_microseconds", "_kilobytes")):
        problems.append("use base units (seconds, bytes)")
    for label in labels:
        if not _NAME.match(label) or label.startswith("__") or label in ("le", "quantile"):
            problems.append(f"label {label!r} is not a usable label name")
    if problems:
        raise ValueError(f"metric {name!r}: " + "; ".join(problems))


class Telemetry:
    """Makes the metric families of one process. This base records nothing (``NULL``); the
    Prometheus one is ``telemetry.prom.PromTelemetry``."""

    enabled = False

    def __init__(self) -> None:
        self._families: dict[str, tuple[Kind, tuple[str, ...], Any]] = {}

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Family[Counter]:
        family: Family[Counter] = self._family("counter", name, documentation, labels, ())
        return family

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Family[Gauge]:
        family: Family[Gauge] = self._family("gauge", name, documentation, labels, ())
        return family

    def histogram(self, name: str, documentation: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = DURATION_BUCKETS) -> Family[Histogram]:
        family: Family[Histogram] = self._family("histogram", name, documentation, labels, buckets)
        return family

    def register(self, collector: Collector | TextCollector) -> None:
        """Add a collector read at scrape time (nothing reads it here)."""

    def _family(self, kind: Kind, name: str, documentation: str, labels: Sequence[str],
                buckets: Sequence[float]) -> Any:
        known = self._families.get(name)
        if known is not None:
            if known[:2] != (kind, tuple(labels)):
                raise ValueError(f"metric {name!r} exists as a {known[0]} with labels {known[1]}")
            return known[2]
        check_name(kind, name, labels)
        if not documentation.strip():
            raise ValueError(f"metric {name!r} needs a help text")
        family = self._make(kind, name, documentation, tuple(labels), tuple(buckets))
        self._families[name] = (kind, tuple(labels), family)
        return family

    def _make(self, kind: Kind, name: str, documentation: str, labels: tuple[str, ...],
              buckets: tuple[float, ...]) -> Any:
        return _NOOP

    def names(self) -> list[str]:
        """The names of the families made so far (for the docs check)."""
        return sorted(self._families)


class _Noop:
    """Every series of ``NULL``: accepts everything, keeps nothing."""

    def labels(self, *values: str) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_NOOP = _Noop()
#: records nothing; what library code and tests use unless a process serves metrics
NULL = Telemetry()
