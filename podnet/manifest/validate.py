"""Documents → typed resources, or every problem found in them.

Dispatch on apiVersion/kind (with "did you mean"), expand ``kind: List`` (and calicoctl's
``IPPoolList`` and friends), validate strictly through the model (as ``kubectl
--validate=strict`` and the API server would), then check what the model cannot see on its
own: metadata.name per kind, the namespace's name.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from podnet.errors import FieldProblem, Location
from podnet.model import KINDS, Resource, kind_for
from podnet.model import validation as v

from .positions import Positions
from .problems import ProblemBuilder, describe_value, did_you_mean, shorten
from .yamlsource import Document

Path = tuple[str | int, ...]
_LIST_FIELDS = {"apiVersion", "kind", "metadata", "items"}


@dataclass(frozen=True)
class Validated:
    """One object from a document, with its positions relative to the object itself."""

    obj: Resource
    source: Location
    positions: Mapping[Path, Location]


def _problem(doc: Document, base: Path, path: Path, message: str, hint: str | None = None,
             kind: str | None = None, name: str | None = None) -> FieldProblem:
    return FieldProblem(path, message, doc.locate(base + path), hint=hint, kind=kind, name=shown_name(name))


def shown_name(name: Any) -> str | None:
    """An object's name as messages print it: escaped if it holds a newline or other control
    character (``web\\n``), cut if very long; None if it is not a string."""
    if not isinstance(name, str):
        return None
    if not name.isprintable():
        name = name.encode("unicode_escape").decode("ascii")
    return shorten(name, 260)


def _is_list(data: dict[str, Any]) -> bool:
    kind = data.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and kind_for(str(data.get("apiVersion")), kind) is None \
        and ("items" in data or kind == "List")


def validate_document(doc: Document) -> tuple[list[Validated], list[FieldProblem]]:
    """The objects in one document (several for a List) and the problems found."""
    data = doc.data
    if data is None:
        return [], []  # an empty document ('---' with nothing after it) is allowed, as kubectl does
    if not isinstance(data, dict):
        return [], [_problem(doc, (), (), f"a manifest must be a mapping with apiVersion, kind and metadata, "
                             f"got {describe_value(data)}",
                             "is this prose or a comment without '#'? Each object starts with 'apiVersion:'")]
    if _is_list(data):
        return _validate_list(doc, data)
    return _validate_object(doc, (), data, doc.positions)


def _validate_list(doc: Document, data: dict[str, Any]) -> tuple[list[Validated], list[FieldProblem]]:
    problems = [_problem(doc, (), (key,), f"unknown field {key!r} in a {data['kind']}",
                         "a list holds only apiVersion, kind, metadata and items")
                for key in data if key not in _LIST_FIELDS]
    items = data.get("items") or []
    if not isinstance(items, list):
        return [], problems + [_problem(doc, (), ("items",), f"expected a list of objects, got {describe_value(items)}")]
    # Each item's positions, relative to the item, in one pass (per item it would be quadratic:
    # a 2,000-pod `kubectl get -o yaml` dump took seconds).
    per_item = _per_item(doc.positions)
    objects: list[Validated] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(_problem(doc, (), ("items", index), f"expected an object (a mapping), got {describe_value(item)}"))
            continue
        found, errs = _validate_object(doc, ("items", index), item, per_item.get(index, {}))
        objects += found
        problems += errs
    return objects, problems


def _per_item(positions: Mapping[Path, Location]) -> Mapping[int, Mapping[Path, Location]]:
    if isinstance(positions, Positions):
        return positions.below("items")
    per_item: dict[int, dict[Path, Location]] = {}
    for path, loc in positions.items():
        if len(path) >= 2 and path[0] == "items" and isinstance(path[1], int):
            per_item.setdefault(path[1], {})[path[2:]] = loc
    return per_item


def _resolve_kind(doc: Document, base: Path, data: dict[str, Any]) -> tuple[type[Resource] | None, list[FieldProblem]]:
    api_version, kind = data.get("apiVersion"), data.get("kind")
    problems = []
    if not isinstance(kind, str) or not kind:
        problems.append(_problem(doc, base, ("kind",), "required field is missing" if kind is None else
                                 f"expected a kind such as NetworkPolicy, got {describe_value(kind)}",
                                 "every object needs 'kind:' (e.g. kind: Pod)"))
    if not isinstance(api_version, str) or not api_version:
        problems.append(_problem(doc, base, ("apiVersion",), "required field is missing" if api_version is None else
                                 f"expected an API version such as v1, got {describe_value(api_version)}",
                                 _api_hint(kind)))
    if problems:
        return None, problems
    assert isinstance(kind, str) and isinstance(api_version, str)
    cls = kind_for(api_version, kind)
    if cls is not None:
        return cls, []
    serving = sorted(k.API_VERSION for k in KINDS if k.KIND == kind)
    if serving:
        near = did_you_mean(api_version, serving) or serving[0]
        return None, [_problem(doc, base, ("apiVersion",), f"apiVersion {api_version!r} does not serve kind {kind!r}",
                               f"use apiVersion: {near}")]
    versions = sorted({k.API_VERSION for k in KINDS})
    if api_version not in versions:
        known_kinds = [k.KIND for k in KINDS]
        near_kind = did_you_mean(kind, known_kinds)
        if near_kind:
            return None, [_problem(doc, base, ("kind",), f"unknown kind {kind!r}", f"did you mean {near_kind!r}?")]
        near_version = did_you_mean(api_version, versions)
        return None, [_problem(doc, base, ("apiVersion",), f"unknown apiVersion {api_version!r}",
                               f"did you mean {near_version!r}?" if near_version else f"podnet serves {', '.join(versions)}")]
    here = sorted(k.KIND for k in KINDS if k.API_VERSION == api_version)
    near_here = did_you_mean(kind, here) or did_you_mean(kind, [k.KIND for k in KINDS])
    hint = f"did you mean {near_here!r}?" if near_here else f"{api_version} serves {', '.join(here)}"
    return None, [_problem(doc, base, ("kind",), f"unknown kind {kind!r} for apiVersion {api_version}", hint)]


def _api_hint(kind: Any) -> str:
    served = sorted({k.API_VERSION for k in KINDS if k.KIND == kind})
    return f"for kind {kind} write apiVersion: {served[0]}" if served else "every object needs 'apiVersion:' (e.g. apiVersion: v1)"


def _name_problems(cls: type[Resource], doc: Document, base: Path, data: dict[str, Any]) -> list[FieldProblem]:
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return []  # the model reports a missing or malformed metadata
    problems = []
    name = meta.get("name")
    where = ("metadata", "name")
    if name in (None, ""):
        if meta.get("generateName"):
            problems.append(_problem(doc, base, where, "required field is missing",
                                     "apply needs a fixed name: generateName is not supported here",
                                     kind=cls.KIND))
        else:
            problems.append(_problem(doc, base, where, "required field is missing",
                                     f"every {cls.KIND} needs a name: add 'name: ...' under metadata:", kind=cls.KIND))
    elif isinstance(name, str):
        try:
            v.check_object_name(cls.NAME_RULE, name)
        except ValueError as exc:
            problems.append(_problem(doc, base, where, f"invalid {cls.KIND} name: {exc}", kind=cls.KIND, name=name))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and namespace and cls.NAMESPACED:
        try:
            v.check_dns1123_label(namespace)
        except ValueError as exc:
            problems.append(_problem(doc, base, ("metadata", "namespace"), f"invalid namespace name: {exc}",
                                     kind=cls.KIND, name=name if isinstance(name, str) else None))
    return problems


def _validate_object(doc: Document, base: Path, data: dict[str, Any],
                     positions: Mapping[Path, Location]) -> tuple[list[Validated], list[FieldProblem]]:
    """One object at ``base`` in ``doc``; ``positions`` are its fields' locations relative to it."""
    cls, problems = _resolve_kind(doc, base, data)
    if cls is None:
        return [], problems
    problems = _name_problems(cls, doc, base, data)
    meta = data.get("metadata")
    builder = ProblemBuilder(cls, doc, base, data, cls.KIND, shown_name(meta.get("name") if isinstance(meta, dict) else None))
    try:
        obj = cls.model_validate(data, strict=True)
    except pydantic.ValidationError as exc:
        return [], problems + builder.from_errors(exc.errors())
    if problems:
        return [], problems
    if not cls.NAMESPACED and obj.metadata.namespace:
        obj = obj.with_meta(namespace=None)  # the API server ignores it for cluster-scoped kinds
    return [Validated(obj, doc.locate(base), positions)], []
