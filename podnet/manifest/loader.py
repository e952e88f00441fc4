"""Read manifests from files, directories and stdin; return every object or every error.

Errors are collected across all inputs and raised once as ``errors.ValidationError``, so a
user fixes a whole batch in one round, and nothing is applied from a batch that has any.
"""
from __future__ import annotations

import functools
import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any, NamedTuple

from podnet.errors import FieldProblem, Location, ValidationError
from podnet.model import Resource

from . import limits
from .jsonsource import JSONSyntaxError, NotText, json_events
from .positions import locate
from .validate import validate_document
from .yamlsource import Document, TooMuch, build, read_yaml, too_many_problems

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


def _looks_like_json(text: str, filename: str) -> bool:
    return filename.endswith(".json") or text.lstrip()[:1] in ("{", "[")


class _Batch:
    """The objects and problems of one input, validated document by document as it is read;
    reading stops once the input has more than MAX_PROBLEMS problems or MAX_OBJECTS objects."""

    def __init__(self) -> None:
        self.loaded: list[Loaded] = []
        self.problems: list[FieldProblem] = []

    def __call__(self, doc: Document) -> None:
        self.problems += doc.problems
        objects, errs = validate_document(doc)
        self.problems += errs
        self.loaded += [Loaded(o.obj, o.source, o.positions) for o in objects]
        if len(self.problems) > limits.MAX_PROBLEMS:
            raise TooMuch(too_many_problems(doc.source))
        if len(self.loaded) > limits.MAX_OBJECTS:
            raise TooMuch(FieldProblem((), f"more than {limits.MAX_OBJECTS:,} objects in one input", doc.source,
                                       hint="split the input into several files (-f DIR reads them all as one batch)"))


def _json_fallback(text: str, filename: str) -> tuple[_Batch, list[FieldProblem], FieldProblem | None] | None:
    """JSON that libyaml could not read (a key over 1,024 characters, a surrogate pair escape),
    read by the JSON tokenizer into the same builder; None if it is not JSON either (the C JSON
    parser says so in a fraction of the tokenizer's time)."""
    try:
        json.loads(text)
    except RecursionError:
        pass  # deeper than the C parser goes: the tokenizer's depth limit answers
    except ValueError:
        return None
    batch = _Batch()
    try:
        return batch, *build(functools.partial(next, json_events(text, filename), None), filename, batch)
    except NotText as exc:
        return _Batch(), [FieldProblem((), str(exc), Location(filename, exc.line, exc.column),
                                       hint="write the character itself, or both halves of the pair")], None
    except JSONSyntaxError:
        return None


def _capped(problems: list[FieldProblem], filename: str) -> list[FieldProblem]:
    """At most MAX_PROBLEMS per input, then one line counting the rest."""
    if len(problems) <= limits.MAX_PROBLEMS:
        return problems
    rest = problems[limits.MAX_PROBLEMS:]
    return problems[:limits.MAX_PROBLEMS] + [FieldProblem(
        (), f"{len(rest)} more problems in this input are not listed", rest[0].location or Location(filename, 1, 1),
        hint="fix the ones above first")]


def _parse(text: str, filename: str) -> tuple[list[Loaded], list[FieldProblem]]:
    batch = _Batch()
    ended, limit, syntax = read_yaml(text, filename, batch)
    if syntax and _looks_like_json(text, filename):
        fallback = _json_fallback(text, filename)
        if fallback is not None:
            batch, ended, limit = fallback
    problems = batch.problems + ended
    problems.sort(key=lambda p: (p.location.line, p.location.column) if p.location else (0, 0))
    return batch.loaded, _capped(problems, filename) + ([limit] if limit else [])


def load_text(text: str, filename: str = STDIN_NAME) -> list[Loaded]:
    """Every object in ``text``; raises ValidationError listing every problem found."""
    loaded, problems = _parse(text, filename)
    if problems:
        raise ValidationError(problems, outcome=None)
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


def _too_large(name: str, hint: str) -> FieldProblem:
    return FieldProblem((), f"larger than {limits.size_text(limits.MAX_INPUT_BYTES)}, the limit for one input",
                        Location(name, 1, 1), hint=hint)


def _read(path: str, stdin: IO[str] | IO[bytes] | None) -> tuple[str | None, FieldProblem | None]:
    """The text of one input, read no further than the size limit (``/dev/zero`` ends there)."""
    name = STDIN_NAME if path == "-" else path
    split = "split it into several files (-f DIR reads them all as one batch)"
    raw: str | bytes
    if path == "-":
        stream: Any = stdin or sys.stdin
        raw = getattr(stream, "buffer", stream).read(limits.MAX_INPUT_BYTES + 1)
    else:
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISREG(info.st_mode) and info.st_size > limits.MAX_INPUT_BYTES:
                    return None, _too_large(name, split)
                raw = handle.read(limits.MAX_INPUT_BYTES + 1)
        except OSError as exc:
            return None, FieldProblem((), f"cannot read: {exc.strerror}", Location(path, 1, 1))
    if len(raw) > limits.MAX_INPUT_BYTES:
        endless = path != "-" and not os.path.isfile(path)
        return None, _too_large(name, "is this a device rather than a manifest?" if endless else split)
    if isinstance(raw, str):
        return raw, None
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, FieldProblem((), f"not UTF-8 text (byte {raw[exc.start]:#04x}; is this a binary file?)",
                                  Location(name, line, column), hint="save the file as UTF-8")


def load_paths(paths: Sequence[str], recursive: bool = False, stdin: IO[str] | IO[bytes] | None = None) -> list[Loaded]:
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
        raise ValidationError(problems, outcome=None)
    return loaded


def with_source(item: Loaded) -> Resource:
    """The object with its origin (``file:line``) in annotation ``podnet.io/source``."""
    annotations = dict(item.obj.metadata.annotations)
    annotations[SOURCE_ANNOTATION] = f"{item.source.file}:{item.source.line}"
    return item.obj.with_meta(annotations=annotations)
