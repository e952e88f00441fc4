"""Read manifests from files, directories and stdin; return every object or every error.

Errors are collected across all inputs and raised once as ``errors.ValidationError``, so a
user fixes a whole batch in one round, and nothing is applied from a batch that has any.
"""
from __future__ import annotations

import json
import os
import sys
from typing import IO, Mapping, NamedTuple, Sequence

from podnet.errors import FieldProblem, Location, ValidationError
from podnet.model import Resource

from .validate import validate_document
from .yamlsource import Document, locate, parse_documents

Path = tuple[str | int, ...]
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"
#: Annotation that records where an applied object came from, so explanations can cite it.
SOURCE_ANNOTATION = "podnet.io/source"


class Loaded(NamedTuple):
    """One validated object, where its document starts, and where each of its fields is."""

    obj: Resource
    source: Location
    positions: Mapping[Path, Location]

    def locate(self, path: Path) -> Location:
        """The location of a field path (or its nearest ancestor present in the text)."""
        return locate(self.positions, path, self.source)


def _json_fallback(text: str, filename: str) -> list[Document] | None:
    """A .json file PyYAML could not read (e.g. tab-indented): parse it as JSON, document-level
    positions only."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return [Document(data=data, source=Location(filename, 1, 1), positions={(): Location(filename, 1, 1)})]


def _parse(text: str, filename: str) -> tuple[list[Loaded], list[FieldProblem]]:
    docs, problems = parse_documents(text, filename)
    if problems and filename.endswith(".json"):
        fallback = _json_fallback(text, filename)
        if fallback is not None:
            docs, problems = fallback, []
    loaded: list[Loaded] = []
    for doc in docs:
        problems.extend(doc.problems)
        objects, errs = validate_document(doc)
        problems.extend(errs)
        loaded.extend(Loaded(o.obj, o.source, o.positions) for o in objects)
    problems.sort(key=lambda p: (p.location.line, p.location.column) if p.location else (0, 0))
    return loaded, problems


def load_text(text: str, filename: str = STDIN_NAME) -> list[Loaded]:
    """Every object in ``text``; raises ValidationError listing every problem found."""
    loaded, problems = _parse(text, filename)
    if problems:
        raise ValidationError(problems)
    return loaded


def _expand(path: str, recursive: bool) -> tuple[list[str], list[FieldProblem]]:
    if path == "-":
        return [path], []
    if os.path.isdir(path):
        found: list[str] = []
        if recursive:
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.endswith(MANIFEST_SUFFIXES)]
        else:
            found = [os.path.join(path, f) for f in sorted(os.listdir(path))
                     if f.endswith(MANIFEST_SUFFIXES) and os.path.isfile(os.path.join(path, f))]
        return found, []
    if os.path.exists(path):
        return [path], []
    return [], [FieldProblem((), f"the path {path!r} does not exist", Location(path, 1, 1),
                             hint="check the file name; use '-' to read from standard input")]


def _read(path: str, stdin: IO[str] | None) -> tuple[str | None, FieldProblem | None]:
    if path == "-":
        return (stdin or sys.stdin).read(), None
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        return None, FieldProblem((), f"cannot read: {exc.strerror}", Location(path, 1, 1))
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, FieldProblem((), "not UTF-8 text (is this a binary file?)", Location(path, line, 1))


def load_paths(paths: Sequence[str], recursive: bool = False, stdin: IO[str] | None = None) -> list[Loaded]:
    """Every object in the given files, directories ('-R': and below) and '-' (stdin), in order.

    Raises ``errors.ValidationError`` with every problem in every input if there is any.
    """
    loaded: list[Loaded] = []
    problems: list[FieldProblem] = []
    for path in paths:
        files, errs = _expand(path, recursive)
        problems += errs
        for name in files:
            text, err = _read(name, stdin)
            if err is not None:
                problems.append(err)
                continue
            assert text is not None
            found, errs = _parse(text, STDIN_NAME if name == "-" else name)
            loaded += found
            problems += errs
    if problems:
        raise ValidationError(problems)
    return loaded


def with_source(item: Loaded) -> Resource:
    """The object with its origin (``file:line``) in annotation ``podnet.io/source``."""
    annotations = dict(item.obj.metadata.annotations)
    annotations[SOURCE_ANNOTATION] = f"{item.source.file}:{item.source.line}"
    return item.obj.with_meta(annotations=annotations)
