"""YAML text → plain documents that remember where every field came from.

Values are built straight from the parser's events (libyaml's, when present), in one pass and
without recursion, so the limits are checked before anything is built: depth, node count and
go-yaml's aliasing rule (``limits``). Scalars are read as kubectl reads them (``scalars``);
duplicate keys are caught (PyYAML silently keeps the last one, kubectl refuses them); a key
must be a string; tags other than YAML's own are refused; every value keeps its position.
"""
from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev

from podnet.errors import FieldProblem, Location

from . import limits, scalars
from .positions import LINE, Positions, locate
from .syntax_hints import explain_yaml_error, lint_lines

try:  # libyaml's parser is several times faster on large dumps
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]
_COLLECTION_TAGS = {None, scalars.NON_SPECIFIC, scalars.MAP, scalars.SEQ}
_NUMERIC = frozenset("+-.0123456789")  # plain scalars starting otherwise are strings unless one of _WORDS
_WORDS = scalars.WORDS
resolve_plain = scalars.resolve_plain


def _pack(mark: Any) -> int:
    return int((mark.line + 1) * LINE + mark.column + 1)


@dataclass
class Document:
    """One YAML document: its value, where it starts, and the location of every path in it.

    ``positions`` maps a field path (manifest spelling, list indices as ints) to the location of
    the key that introduces it (mapping entries) or of the item itself (sequence entries).
    """

    data: Any
    source: Location
    positions: Mapping[Path, Location] = field(default_factory=dict)
    problems: list[FieldProblem] = field(default_factory=list)

    def locate(self, path: Path) -> Location:
        return locate(self.positions, path, self.source)

    def text(self, path: Path) -> str | None:
        """How the number, boolean or null at ``path`` was written (``1.10``, ``yes``), so a hint
        can quote the user's own text."""
        return self.positions.text(path) if isinstance(self.positions, Positions) else None


def too_many_problems(where: Location) -> FieldProblem:
    return FieldProblem((), f"more than {limits.MAX_PROBLEMS} problems: the rest of this input was not checked",
                        where, hint="fix the problems above, then apply again")


class TooMuch(Exception):
    """Parsing stops: the input is past a limit (the problem says which)."""

    def __init__(self, problem: FieldProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


_NO_KEY = object()   # a mapping waits for its next key
_SKIP = object()     # the next value is discarded (its key was refused)


class _Frame:
    """A collection being built, its mirror, and (for a mapping) the key waiting for a value."""

    __slots__ = ("value", "mirror", "path", "pos", "anchor", "first_node", "is_map", "key", "key_pos",
                 "second_object", "merges")

    def __init__(self, value: Any, path: Path, pos: int, anchor: str | None, first_node: int) -> None:
        self.value, self.path, self.pos, self.anchor = value, path, pos, anchor
        self.is_map = type(value) is dict
        self.mirror: Any = {} if self.is_map else []
        self.first_node = first_node
        self.key: Any = _NO_KEY
        self.key_pos = pos
        self.second_object = False
        self.merges: list[tuple[Any, Any, int]] = []


class _Builder:
    """Consumes parser events; produces Documents (limits enforced as the events arrive)."""

    def __init__(self, filename: str, on_document: Callable[[Document], None]) -> None:
        self.filename = filename
        self.on_document = on_document
        self.nodes = 0                  # in the whole input, aliases expanded
        self.problem_count = 0          # in the whole input
        self.stack: list[_Frame] = []
        self.top: _Frame | None = None
        self._new_document(LINE + 1)

    def run(self, next_event: Any) -> None:
        """Feed every event from ``next_event()`` (None at the end)."""
        handlers: dict[type, Callable[[Any], None]] = {
            ev.ScalarEvent: self._scalar, ev.MappingStartEvent: self._start, ev.SequenceStartEvent: self._start,
            ev.MappingEndEvent: self._end, ev.SequenceEndEvent: self._end, ev.AliasEvent: self._alias,
            ev.DocumentStartEvent: self._document_start, ev.DocumentEndEvent: self._end_document}

        def ignore(event: Any) -> None:  # stream start and end
            pass

        while (event := next_event()) is not None:
            handlers.get(type(event), ignore)(event)

    # -- documents ---------------------------------------------------------------------------
    def _new_document(self, start: int) -> None:
        self.problems: list[FieldProblem] = []
        self.anchors: dict[str, tuple[Any, Any, int]] = {}  # name → (value, twin, nodes it stands for)
        self.open_anchors: set[str] = set()
        self.decoded = 0                # in this document (go-yaml's decodeCount)
        self.from_aliases = 0           # of those, made by expanding aliases
        self.root, self.data, self.twin = start, None, None

    def _document_start(self, event: ev.DocumentStartEvent) -> None:
        self._new_document(_pack(event.start_mark))

    def _end_document(self, event: ev.DocumentEndEvent) -> None:
        self._count(1, self.root)  # an empty document costs as much as a value
        if self.data is None and not self.problems:
            return  # '---' with nothing after it: allowed, and nothing to keep
        twin = self.twin if isinstance(self.twin, (dict, list)) else None
        self.on_document(Document(self.data, self.location(self.root), Positions(self.filename, self.root, twin),
                                  self.problems))

    # -- bookkeeping -------------------------------------------------------------------------
    def location(self, packed: int) -> Location:
        return Location(self.filename, packed // LINE, packed % LINE)

    def problem(self, path: Path, message: str, pos: int, hint: str | None = None) -> None:
        self.problem_count += 1
        if self.problem_count > limits.MAX_PROBLEMS:
            raise TooMuch(too_many_problems(self.location(pos)))
        self.problems.append(FieldProblem(path, message, self.location(pos), hint=hint))

    def _count(self, count: int, pos: int, alias: bool = False) -> None:
        self.nodes += count
        self.decoded += count
        if alias:
            self.from_aliases += count
        if self.nodes > limits.MAX_NODES:
            raise TooMuch(FieldProblem(self.path()[:5], f"more than {limits.MAX_NODES:,} values in one input",
                                       self.location(pos),
                                       hint="split the input into several files (each is read on its own)"))
        if alias and limits.excessive_aliasing(self.decoded, self.from_aliases):
            raise TooMuch(FieldProblem(self.path()[:5], "document contains excessive aliasing",
                                       self.location(pos),
                                       hint="aliases (*name) here stand for far more values than the text holds; "
                                            "write the values out, or use fewer aliases"))

    def path(self) -> Path:
        """The field path of the next value (a key's or a discarded value's: the mapping's)."""
        top = self.top
        if top is None:
            return ()
        if not top.is_map:
            return top.path + (len(top.mirror),)
        key = top.key
        if key is _NO_KEY or key is _SKIP or key is scalars.MERGE_KEY:
            return top.path
        return top.path + (key,)

    # -- events ------------------------------------------------------------------------------
    def _arrive(self, mark: Any) -> int:
        """Count one more value (the limit checked) and return where it is, packed."""
        self.nodes += 1
        self.decoded += 1
        pos: int = (mark.line + 1) * LINE + mark.column + 1
        if self.nodes > limits.MAX_NODES:
            self._count(0, pos)
        return pos

    def _start(self, event: Any) -> None:  # a CollectionStartEvent
        pos = self._arrive(event.start_mark)
        top = self.top
        path = top.path + (len(top.mirror),) if top is not None and not top.is_map else self.path()
        if len(self.stack) >= limits.MAX_DEPTH:
            raise TooMuch(FieldProblem(path[:5], f"nested more than {limits.MAX_DEPTH} levels deep", self.location(pos),
                                       hint="no Kubernetes object is nested this deep: is a bracket or an "
                                            "indentation runaway?"))
        if event.tag is not None and event.tag not in _COLLECTION_TAGS:
            self.problem(path, f"unknown tag {scalars.short_tag(event.tag)!r}", pos,
                         hint="remove the tag: podnet reads YAML's own types only (as kubectl does, it does "
                              "not construct application types)")
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        frame = _Frame({} if type(event) is ev.MappingStartEvent else [], path, pos, event.anchor, self.decoded - 1)
        self.stack.append(frame)
        self.top = frame

    def _end(self, event: ev.CollectionEndEvent) -> None:
        frame = self.stack.pop()
        top = self.top = self.stack[-1] if self.stack else None
        if frame.merges:
            self._merge(frame)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.value, frame.mirror, self.decoded - frame.first_node)
        if top is not None and not top.is_map:  # the common case, kept short: an item of a list
            top.value.append(frame.value)
            top.mirror.append((frame.pos, frame.mirror))
            return
        self._give(frame.value, frame.mirror, frame.pos, True)

    def _scalar(self, event: Any) -> None:  # a ScalarEvent (libyaml's marks are never None)
        pos = self._arrive(event.start_mark)
        text, tag = event.value, event.tag
        if tag is None:
            value = resolve_plain(text)[1] if event.implicit[0] and (
                not text or text[0] in _NUMERIC or text in _WORDS) else text
        elif tag == scalars.NON_SPECIFIC:
            value = text
        else:
            value = self._tagged(tag, text, pos)
        top = self.top
        if value is text and top is not None and event.anchor is None:
            # the common case, kept short: a string in a mapping or a list
            if not top.is_map:
                top.mirror.append(pos)
                top.value.append(text)
                return
            key = top.key
            if key is _NO_KEY:
                self._key(top, text, pos, False, text)
                return
            if key is not _SKIP and key is not scalars.MERGE_KEY:
                top.key = _NO_KEY
                top.value[key] = text
                return
        if value is not text and value is not None:
            self._check_number(value, text, pos)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, None if value is text else text, 1)
        self._give(value, None if value is text else text, pos, False)

    def _tagged(self, tag: str, text: str, pos: int) -> Any:
        try:
            return scalars.construct_tagged(tag, text)
        except ValueError as exc:
            self.problem(self.path(), str(exc), pos, hint="remove the tag, or write a value of its type")
            return text

    def _check_number(self, value: Any, text: str, pos: int) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(self.path(), f"{text} cannot be sent to the API server (JSON has no infinity or NaN)",
                         pos, hint="write a finite number")
        elif isinstance(value, int) and not isinstance(value, bool) and not (
                scalars.INT64_MIN <= value <= scalars.INT64_MAX):
            self.problem(self.path(), f"{text} is out of range for a 64-bit integer", pos,
                         hint="the API's integers are at most 9223372036854775807")

    def _alias(self, event: ev.AliasEvent) -> None:
        pos = _pack(event.start_mark)
        name = str(event.anchor)
        anchor = self.anchors.get(name)
        if anchor is None:
            recursive = name in self.open_anchors
            self.problem(self.path(), f"{'recursive' if recursive else 'undefined'} alias *{name}", pos,
                         hint="an alias cannot stand for the value it is part of" if recursive else
                         "a '*name' alias needs an '&name' anchor earlier in the same document")
            self._count(1, pos)
            self._give(None, None, pos, False)
            return
        value, twin, size = anchor
        self._count(size, pos, alias=True)
        self._give(value, twin, pos, isinstance(value, (dict, list)))

    def _give(self, value: Any, twin: Any, pos: int, is_collection: bool) -> None:
        """A value is complete: give it (and its twin: mirror or text) to the collection it is in."""
        top = self.top
        if top is None:
            self.root, self.data, self.twin = pos, value, twin
            return
        if not top.is_map:
            top.value.append(value)
            top.mirror.append(pos if twin is None else (pos, twin))
            return
        key = top.key
        if key is _NO_KEY:
            self._key(top, value, pos, is_collection, twin if isinstance(twin, str) else None)
            return
        top.key = _NO_KEY
        if key is _SKIP:
            return
        if key is scalars.MERGE_KEY:
            top.merges.append((value, twin, pos))
            return
        top.value[key] = value
        if twin is not None:
            top.mirror[key] = (top.key_pos, twin)

    def _key(self, top: _Frame, key: Any, pos: int, is_collection: bool, text: str | None) -> None:
        top.key = _SKIP
        if is_collection:
            self.problem(top.path, "a mapping key must be a plain value, not a list or mapping", pos)
            return
        if key is scalars.MERGE_KEY:
            top.key = key
            return
        if type(key) is not str:
            written = text if text is not None else ("" if key is None else str(key))
            shown = written or "(empty)"
            self.problem(top.path + (shown,), f"the key {shown} is read by YAML as {_describe(key)}; keys must be "
                         "strings", pos, hint=f'quote it: "{written}": …' if written else "give the key a name")
            key = written
        first = top.mirror.get(key)
        if first is not None:
            if not top.path and key in ("apiVersion", "kind"):
                if not top.second_object:
                    self.problem((), f"a second object starts at line {pos // LINE} inside the same document", pos,
                                 hint="separate objects with a line '---' before the second 'apiVersion:'")
                top.second_object = True
                return
            if top.second_object and not top.path:
                return
            line = (first[0] if type(first) is tuple else first) // LINE
            self.problem(top.path + (key,), f"duplicate key {key!r} (first given at line {line})", pos,
                         hint="remove one of them; if these are two objects, separate them with a line '---'")
            return
        top.mirror[key] = pos
        top.key = key
        top.key_pos = pos

    def _merge(self, frame: _Frame) -> None:
        """``<<: *base`` (or a list of them): the keys the mapping does not set itself."""
        for source, twin, pos in frame.merges:
            pairs = zip(source, twin) if isinstance(source, list) and isinstance(twin, list) else [(source, twin)]
            for item, item_twin in pairs:
                if type(item_twin) is tuple:
                    item_twin = item_twin[1]
                if not isinstance(item, dict):
                    self.problem(frame.path, "a merge key '<<' takes a mapping or a list of mappings", pos)
                    continue
                for key, value in item.items():
                    if key not in frame.value:
                        frame.value[key] = value
                        if isinstance(item_twin, dict) and key in item_twin:
                            frame.mirror[key] = item_twin[key]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    return f"the number {value}"


def build(next_event: Any, filename: str,
          on_document: Callable[[Document], None]) -> tuple[list[FieldProblem], FieldProblem | None]:
    """Read the events ``next_event()`` returns (YAML's, or JSON's made to look like them) until
    it returns None, handing each document to ``on_document`` as soon as it is complete (so a
    stream of many documents is never all in memory).

    Returns, if a limit stopped the reading early (``on_document`` may raise TooMuch too), the
    problems of the document it stopped in and the limit's problem. A syntax error raises the
    parser's error.
    """
    builder = _Builder(filename, on_document)
    enabled = gc.isenabled()
    gc.disable()  # many small acyclic objects: the collector would only slow the build down
    try:
        builder.run(next_event)
    except TooMuch as exc:
        return builder.problems, exc.problem
    except yaml.YAMLError as exc:
        exc.field_path = builder.path()  # type: ignore[attr-defined]  # where a syntax error stopped it
        raise
    finally:
        if enabled:
            gc.enable()
    return [], None


def read_yaml(text: str, filename: str,
              on_document: Callable[[Document], None]) -> tuple[list[FieldProblem], FieldProblem | None, bool]:
    """Every document in ``text`` to ``on_document``; returns the problems that ended the
    reading (a YAML syntax error; those of a document a limit stopped), the limit's problem,
    and whether there was a syntax error.

    A syntax error ends the file (the documents before it were handed over), so every line is
    then also checked for the usual slips (``key;``, ``key:value``) to report them all at once.
    """
    loader = _Loader(text)
    try:
        return *build(loader.get_event, filename, on_document), False
    except yaml.MarkedYAMLError as exc:
        first = explain_yaml_error(exc, text, filename, getattr(exc, "field_path", None))
        problems = [first]
        seen = {first.location.line if first.location else 0}
        for extra in lint_lines(text, filename, limit=limits.MAX_PROBLEMS):
            if extra.location and extra.location.line not in seen:
                seen.add(extra.location.line)
                problems.append(extra)
        return problems, None, True
    except yaml.YAMLError as exc:  # a reader error: a character YAML does not allow
        return [reader_problem(exc, text, filename)], None, True
    finally:
        loader.dispose()


def parse_documents(text: str, filename: str) -> tuple[list[Document], list[FieldProblem]]:
    """Every document in ``text``, and the problems that stopped the reading (see read_yaml)."""
    docs: list[Document] = []
    problems, limit, _ = read_yaml(text, filename, docs.append)
    return docs, problems + ([limit] if limit else [])


def reader_problem(exc: yaml.YAMLError, text: str, filename: str) -> FieldProblem:
    """A character YAML refuses (a control character, say), at its line and column."""
    position = getattr(exc, "position", None)
    character = getattr(exc, "character", None)
    if isinstance(position, int):
        if not text.isascii():  # libyaml counts bytes of UTF-8
            position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
    else:
        line, column = 1, 1
    code = ord(character) if isinstance(character, str) else character
    what = f"character U+{code:04X}" if isinstance(code, int) else "a character"
    return FieldProblem((), f"{what} is not allowed in YAML (control characters are not text)",
                        Location(filename, line, column),
                        hint="remove it; if it belongs in a value, write it as an escape in double quotes, "
                             "e.g. \"\\x01\"")
