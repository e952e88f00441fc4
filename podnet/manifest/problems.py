"""pydantic's validation errors → located FieldProblems a person can act on.

pydantic says ``int_type at spec.ingress.0.ports.0.port.int``; a person needs
``file.yaml:14:7: spec.ingress[0].ports[0].port: expected a port number or name, got 80.5``.
This module trims pydantic's internal path segments (union members), merges the per-member
errors of one field, words each error type plainly, and adds "did you mean" and fix hints.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from podnet.errors import FieldProblem, format_field_path

from .schema_walk import annotation_at, fields_by_alias, model_at, where_field_lives
from .yamlsource import Document

Path = tuple[str | int, ...]

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (indented 'key: value' lines)",
    "model_type": "a mapping (indented 'key: value' lines)",
    "model_attributes_type": "a mapping (indented 'key: value' lines)",
    "list_type": "a list ('- item' lines, or [a, b])",
    "none_required": "nothing (null)",
}
_KEY_VALUE = re.compile(r"^([A-Za-z_][\w./-]*):(\S.*)$")
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:\[(\d+)\])?: (.+)$", re.S)


def shorten(text: str, limit: int = 60) -> str:
    """A long value cut to ``limit`` characters for a message (a 5,000-digit number, say)."""
    return text if len(text) <= limit else f"{text[:limit - 20]}…{text[-10:]} ({len(text):,} characters)"


def describe_value(value: Any) -> str:
    """How a YAML value reads to a person: ``string '80'``, ``boolean true``, ``nothing (null)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {shorten(value)!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _trim(data: Any, loc: Path) -> Path:
    """Keep the part of pydantic's ``loc`` that names fields of the document.

    Segments past a scalar (union member names like 'int'/'str') are dropped; a key absent
    from a mapping (a missing field) is kept and ends the path.
    """
    out: list[str | int] = []
    current = data
    for segment in loc:
        if isinstance(current, dict):
            out.append(segment)
            if segment not in current:
                break
            current = current[segment]
        elif isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current):
            out.append(segment)
            current = current[segment]
        else:
            break
    return tuple(out)


def _value_at(data: Any, path: Path) -> tuple[bool, Any]:
    current = data
    for segment in path:
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current):
            current = current[segment]
        else:
            return False, None
    return True, current


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to a misspelt word (case-insensitive first), or None."""
    options = list(choices)
    for choice in options:
        if choice.lower() == word.lower():
            return choice
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in options}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return close[0] if close else None


class ProblemBuilder:
    """Builds FieldProblems for one object of kind ``cls`` located in ``doc`` under ``base``."""

    def __init__(self, cls: type[BaseModel], doc: Document, base: Path, data: dict[str, Any],
                 kind: str | None, name: str | None) -> None:
        self.cls, self.doc, self.base, self.data = cls, doc, base, data
        self.kind, self.name = kind, name

    def problem(self, path: Path, message: str, hint: str | None = None) -> FieldProblem:
        return FieldProblem(path, message, self.doc.locate(self.base + path), hint=hint, kind=self.kind, name=self.name)

    def from_errors(self, errors: list[ErrorDetails]) -> list[FieldProblem]:
        grouped: dict[Path, list[ErrorDetails]] = {}
        for error in errors:
            grouped.setdefault(_trim(self.data, tuple(error["loc"])), []).append(error)
        problems = []
        for path, errs in grouped.items():
            if len(errs) > 1 and all(e["type"] in _EXPECTED for e in errs):
                problems.append(self._type_problem(path, errs))
            else:
                problems.extend(self._one(path, e) for e in errs)
        return self._lost_indentation(problems)

    def _lost_indentation(self, problems: list[FieldProblem]) -> list[FieldProblem]:
        """One problem for a document whose lines lost their indentation (seeds/003), instead of
        one per line with the same hint: top-level fields that belong under metadata: or spec:,
        and a metadata: or spec: with nothing under it."""
        homes: dict[str, str] = {}
        for problem in problems:
            if len(problem.path) == 1 and problem.message.startswith("unknown field"):
                lives = where_field_lives(self.cls, str(problem.path[0]))
                if lives:
                    homes[str(problem.path[0])] = lives[0].rsplit(".", 1)[0].replace("[]", "")
        if not homes:
            return problems
        region = [p for p in problems if len(p.path) == 1 and (
            p.message.startswith("unknown field") or (p.message.startswith("expected a mapping")
                                                      and p.message.endswith("got nothing (null)")))]
        lines = sorted(p.location.line for p in region if p.location)
        by_home: dict[str, list[str]] = {}
        for name, home in homes.items():
            by_home.setdefault(home, []).append(name)
        where = "; ".join(f"{', '.join(names)} belong{'s' if len(names) == 1 else ''} under {home}:"
                          for home, names in by_home.items())
        stray = [str(p.path[0]) for p in region if p.message.startswith("unknown field") and str(p.path[0]) not in homes]
        if stray:
            where += f"; {', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not a {getattr(self.cls, 'KIND', self.kind)} field"
        first = min(region, key=lambda p: (p.location.line, p.location.column) if p.location else (0, 0))
        span = f"line {lines[0]} seems to have lost its" if lines[0] == lines[-1] else \
            f"lines {lines[0]}-{lines[-1]} seem to have lost their"
        merged = FieldProblem((), f"{span} indentation: {where}",
                              first.location, hint="indent the fields under metadata: and spec: by two spaces per "
                              "level, as the manifest had them before it was copied", kind=self.kind, name=self.name)
        return [merged] + [p for p in problems if p not in region]

    # -- one error ---------------------------------------------------------------------------
    def _one(self, path: Path, error: ErrorDetails) -> FieldProblem:
        kind = error["type"]
        if kind == "missing":
            return self._missing(path)
        if kind == "extra_forbidden":
            return self._unknown_field(path)
        if kind in _EXPECTED:
            return self._type_problem(path, [error])
        if kind == "literal_error":
            return self._literal(path, error)
        if kind in ("value_error", "assertion_error"):
            return self._value_error(path, error)
        return self.problem(path, error["msg"])

    def _missing(self, path: Path) -> FieldProblem:
        parent = path[:-1]
        present, value = _value_at(self.data, parent)
        hint = None
        if present and isinstance(value, dict) and isinstance(path[-1], str):
            near = did_you_mean(path[-1], [k for k in value if isinstance(k, str)])
            if near and near != path[-1]:
                hint = f"is {near!r} a misspelling of {path[-1]!r}?"
        return self.problem(path, "required field is missing", hint)

    def _unknown_field(self, path: Path) -> FieldProblem:
        name = str(path[-1])
        model = model_at(self.cls, path[:-1])
        known = sorted(fields_by_alias(model)) if model else []
        near = did_you_mean(name, known)
        if near:
            return self.problem(path, f"unknown field {name!r}", f"did you mean {near!r}?")
        homes = [p for p in where_field_lives(self.cls, name) if p != format_field_path(path)]
        if homes and len(path) == 1:
            return self.problem(path, f"unknown field {name!r} at the top level",
                                f"{name!r} belongs under {homes[0].rsplit('.', 1)[0]}: — the lines below "
                                "'metadata:' or 'spec:' seem to have lost their indentation")
        if homes:
            where = " or ".join(homes[:3])
            return self.problem(path, f"unknown field {name!r}", f"a field {name!r} exists at {where}: indent it there")
        listing = ", ".join(known) if known else "none"
        return self.problem(path, f"unknown field {name!r}", f"known fields here: {listing}")

    def _type_problem(self, path: Path, errors: list[ErrorDetails]) -> FieldProblem:
        wanted = []
        for error in errors:
            text = _EXPECTED.get(error["type"], error["msg"])
            if text not in wanted:
                wanted.append(text)
        value = errors[0].get("input")
        expected = " or ".join(wanted)
        if set(wanted) == {"an integer", "a string"} and path and str(path[-1]).lower().endswith("port"):
            expected = "a port number (1-65535) or a port name"
        hint = self._type_hint(path, wanted, value)
        return self.problem(path, f"expected {expected}, got {describe_value(value)}", hint)

    def _type_hint(self, path: Path, wanted: list[str], value: Any) -> str | None:
        key = path[-1] if path and isinstance(path[-1], str) else "value"
        if "a string" in wanted and isinstance(value, (bool, int, float)) and value is not None:
            written = self.doc.text(self.base + path)
            if written is None:
                written = str(value).lower() if isinstance(value, bool) else str(value)
            what = describe_value(value)
            what = what if isinstance(value, bool) else f"the {what.split()[0]} {value}"
            quoted = written.replace("\\", "\\\\").replace('"', '\\"')
            return f"quote it: {key}: \"{quoted}\"; unquoted, YAML reads {written} as {what}"
        if isinstance(value, str):
            m = _KEY_VALUE.match(value.strip())
            if m and any(w.startswith("a mapping") for w in wanted):
                return (f"{shorten(value)!r} has no space after ':', so YAML reads it as one string: "
                        f"write '{m.group(1)}: {shorten(m.group(2))}'")
            if "an integer" in wanted and value.strip().lstrip("-").isdigit() and len(value) < 20:
                return f"remove the quotes: {key}: {value.strip()}"
            if "true or false" in wanted and value.lower() in ("true", "false"):
                return f"remove the quotes: {key}: {value.lower()}"
        if value is None and any(w.startswith("a mapping") or w.startswith("a list") for w in wanted):
            loc = self.doc.positions.get(self.base + path)
            where = f" (line {loc.line})" if loc else ""
            return (f"nothing is indented under '{key}:'{where}: indent its fields two spaces deeper "
                    f"than '{key}:' (or write {key}: {{}} if it is meant to be empty)")
        return None

    def _literal(self, path: Path, error: ErrorDetails) -> FieldProblem:
        value = error.get("input")
        expected = str((error.get("ctx") or {}).get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        near = did_you_mean(str(value), choices) if isinstance(value, str) else None
        hint = f"did you mean {near!r}?" if near else None
        return self.problem(path, f"unsupported value {describe_value(value)}: must be one of {', '.join(choices) or expected}", hint)

    def _value_error(self, path: Path, error: ErrorDetails) -> FieldProblem:
        message = error["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        # "ports[1]: name: ..." from a model validator names a field below where it was raised.
        while (m := _PREFIX.match(message)) and annotation_at(self.cls, path + (m.group(1),)) is not None:
            field, index, message = m.group(1), m.group(2), m.group(3)
            path = path + (field,) + ((int(index),) if index is not None else ())
        return self.problem(path, message)
