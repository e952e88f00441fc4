"""Questions about the model's shape, asked by field path: which fields exist here, and where
does a field of this name live? Used to say "did you mean" and "this belongs under spec"."""
from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel

Path = tuple[str | int, ...]


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _step(annotation: Any, segment: str | int) -> Any | None:
    """The annotation one path segment further down, or None if the segment leads nowhere."""
    for candidate in _unwrap(annotation):
        origin = typing.get_origin(candidate)
        if isinstance(segment, int) and origin in (list, tuple):
            return typing.get_args(candidate)[0]
        if isinstance(segment, str):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                field = fields_by_alias(candidate).get(segment)
                if field is not None:
                    return field
            elif origin is dict:
                return typing.get_args(candidate)[1]
    return None


@cache
def fields_by_alias(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields as manifests spell them (camelCase alias) → annotation."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def model_at(root: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The model class that validates the value at ``path`` (None if not a model)."""
    annotation: Any = root
    for segment in path:
        annotation = _step(annotation, segment)
        if annotation is None:
            return None
    return _model_of(annotation)


def annotation_at(root: type[BaseModel], path: Path) -> Any | None:
    annotation: Any = root
    for segment in path:
        annotation = _step(annotation, segment)
        if annotation is None:
            return None
    return annotation


def where_field_lives(root: type[BaseModel], name: str, max_depth: int = 6) -> list[str]:
    """Field paths (``spec.ingress[].ports``) under ``root`` where a field called ``name`` exists."""
    found: list[str] = []

    def walk(model: type[BaseModel], prefix: str, depth: int, seen: frozenset[type]) -> None:
        if depth > max_depth or model in seen:
            return
        for alias, annotation in fields_by_alias(model).items():
            here = f"{prefix}.{alias}" if prefix else alias
            if alias == name:
                found.append(here)
            for candidate in _unwrap(annotation):
                inner, suffix = candidate, ""
                if typing.get_origin(candidate) in (list, tuple):
                    inner, suffix = typing.get_args(candidate)[0], "[]"
                sub = _model_of(inner)
                if sub is not None:
                    walk(sub, here + suffix, depth + 1, seen | {model})

    walk(root, "", 0, frozenset())
    return found
