"""Prometheus' text format (0.0.4) written directly, for families with many series.

``prometheus_client`` builds a sample object per series and escapes and validates every label
on every scrape; with a series per rule that is most of what a scrape costs. The series of a
rule family keep their labels from one scrape to the next and only their values change, so
``SeriesText`` renders each series' name and labels once and reuses the text while the series
exists. Output is byte-for-byte what the format specifies: ``# HELP``, ``# TYPE``, then one
``name{label="value",...} number`` line per series.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from .api import Kind, check_name


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(float(value))


class SeriesText:
    """The text of one family, with each series' ``name{labels} `` kept between scrapes."""

    def __init__(self, name: str, kind: Kind, documentation: str, labels: Sequence[str]) -> None:
        if kind == "histogram":
            raise ValueError("histograms are written by prometheus_client")
        check_name(kind, name, labels)
        self.name = name
        self.labels = tuple(labels)
        self.header = f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} {kind}\n"
        self._prefix: dict[tuple[str, ...], str] = {}

    def _series(self, values: tuple[str, ...]) -> str:
        prefix = self._prefix.get(values)
        if prefix is None:
            if len(values) != len(self.labels):
                raise ValueError(f"{self.name} has labels {self.labels}, got {values}")
            inner = ",".join(f'{k}="{_escape_value(v)}"' for k, v in zip(self.labels, values))
            prefix = self._prefix[values] = f"{self.name}{{{inner}}} " if inner else f"{self.name} "
        return prefix

    def render(self, samples: Iterable[tuple[tuple[str, ...], float]]) -> str:
        """The family with these series; series not among them are forgotten."""
        lines, kept = [self.header], {}
        for values, value in samples:
            prefix = self._series(values)
            kept[values] = prefix
            lines.append(prefix + _number(value) + "\n")
        self._prefix = kept
        return "".join(lines)
