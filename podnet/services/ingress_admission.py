"""The API server's DefaultIngressClass admission: a new Ingress that names no class (neither
``spec.ingressClassName`` nor the deprecated ``kubernetes.io/ingress.class`` annotation) gets
the default IngressClass's name, the class annotated
``ingressclass.kubernetes.io/is-default-class: "true"``; with several defaults the most
recently created wins (equal times: the lower name), with none the field stays empty. Updates
are left as written. Pure, with the admission protocol of ``services/admission.py``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CLASSES = "/registry/ingressclasses/"
READS = (CLASSES,)
DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True)
class Change:
    key: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    values: tuple[dict[str, Any] | None, ...]
    puts: Mapping[str, dict[str, Any]]
    deletes: tuple[str, ...]


def default_class(current: Mapping[str, dict[str, Any]]) -> str | None:
    defaults = [v for k, v in current.items() if k.startswith(CLASSES)
                and (v.get("metadata", {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"]
    if not defaults:
        return None
    newest = max(defaults, key=lambda v: (str(v["metadata"].get("creationTimestamp", "")),
                                          [-ord(c) for c in v["metadata"]["name"]]))
    return str(newest["metadata"]["name"])


def admit(changes: Sequence[Change], current: Mapping[str, dict[str, Any]]) -> Outcome:
    chosen = default_class(current)
    values: list[dict[str, Any] | None] = []
    for change in changes:
        new = change.new
        annotations = ((new or {}).get("metadata") or {}).get("annotations") or {}
        if (new is None or change.old is not None or chosen is None
                or (new.get("spec") or {}).get("ingressClassName") or LEGACY_ANNOTATION in annotations):
            values.append(None)
            continue
        values.append({**new, "spec": {**new.get("spec", {}), "ingressClassName": chosen}})
    return Outcome(tuple(values), {}, ())
