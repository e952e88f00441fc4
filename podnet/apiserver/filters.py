"""``labelSelector`` and ``fieldSelector`` of list and watch requests (pure).

Field selectors take ``path=value``, ``path==value`` and ``path!=value`` terms joined by
commas, where path is any dotted field of the object (``metadata.name``, ``spec.nodeName``,
``status.phase`` …); a missing field compares as the empty string.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podnet.model.selectors import LabelSelector, parse_label_selector_string


class BadSelector(ValueError):
    """The selector does not parse (the API server answers 400)."""


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Filter:
    labels: LabelSelector | None = None
    fields: tuple[tuple[str, str, bool], ...] = ()  # (path, value, equal)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.labels is not None and not self.labels.matches(meta.get("labels") or {}):
            return False
        return all((_field(obj, path) == value) == equal for path, value, equal in self.fields)


def parse_filter(label_selector: str | None, field_selector: str | None) -> Filter:
    labels = None
    if label_selector:
        try:
            labels = parse_label_selector_string(label_selector)
        except ValueError as exc:
            raise BadSelector(f"unable to parse requirement: {exc}") from None
    fields = []
    for term in (field_selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in term:
                path, _, value = term.partition(op)
                fields.append((path.strip(), value.strip(), equal))
                break
        else:
            raise BadSelector(f"invalid selector: '{term}'; can't understand '{term}'")
    return Filter(labels, tuple(fields))
