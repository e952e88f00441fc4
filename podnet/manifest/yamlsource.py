"""YAML text → plain documents that remember where every field came from.

PyYAML's composer gives a node tree with line/column marks; we build the Python values from it
ourselves so each value keeps its position, duplicate keys are caught (PyYAML silently keeps the
last one, kubectl refuses them), and timestamps stay strings (the API's wire form).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import yaml

from podnet.errors import FieldProblem, Location

from .syntax_hints import explain_yaml_error, lint_lines

try:  # the libyaml composer is several times faster on large dumps
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """One YAML document: its value, where it starts, and the location of every path in it.

    ``positions`` maps a field path (manifest spelling, list indices as ints) to the location of
    the key that introduces it (mapping entries) or of the item itself (sequence entries).
    """

    data: Any
    source: Location
    positions: dict[Path, Location] = field(default_factory=dict)
    problems: list[FieldProblem] = field(default_factory=list)

    def locate(self, path: Path) -> Location:
        return locate(self.positions, path, self.source)


def locate(positions: Mapping[Path, Location], path: Path, fallback: Location) -> Location:
    """The location of ``path`` or of its nearest ancestor that exists in the text (a missing
    field is reported where its parent is), else ``fallback``."""
    for end in range(len(path), -1, -1):
        loc = positions.get(tuple(path[:end]))
        if loc is not None:
            return loc
    return fallback


class _Builder:
    """Turns composed nodes into values, recording positions and duplicate keys."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.constructor = yaml.constructor.SafeConstructor()

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def document(self, root: yaml.Node) -> Document:
        doc = Document(data=None, source=self.loc(root))
        doc.positions[()] = doc.source
        doc.data = self.value(root, (), doc, depth=0)
        return doc

    def value(self, node: yaml.Node, path: Path, doc: Document, depth: int) -> Any:
        if depth > 100:
            doc.problems.append(FieldProblem(path, "nesting too deep (a recursive YAML alias?)", self.loc(node)))
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR or node.tag == _TIMESTAMP:
                return node.value  # timestamps stay RFC 3339 text, as the API has them
            return self.constructor.construct_object(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            out = []
            for index, child in enumerate(node.value):
                doc.positions[path + (index,)] = self.loc(child)
                out.append(self.value(child, path + (index,), doc, depth + 1))
            return out
        assert isinstance(node, yaml.MappingNode)
        if any(k.tag == _MERGE for k, _ in node.value if k.value == "<<"):
            self.constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Location] = {}
        second_object = False
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                doc.problems.append(FieldProblem(path, "a mapping key must be a plain value, not a list or mapping", self.loc(key_node)))
                continue
            key = self.value(key_node, path, doc, depth + 1)
            key_loc = self.loc(key_node)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            if key in first_seen:
                if not path and key in ("apiVersion", "kind"):
                    if not second_object:
                        doc.problems.append(FieldProblem(
                            (), f"a second object starts at line {key_loc.line} inside the same document",
                            key_loc, hint="separate objects with a line '---' before the second 'apiVersion:'"))
                    second_object = True
                    continue
                if second_object and not path:
                    continue
                doc.problems.append(FieldProblem(
                    path + (str(key),),
                    f"duplicate key {key!r} (first given at line {first_seen[key].line})",
                    key_loc,
                    hint="remove one of them; if these are two objects, separate them with a line '---'",
                ))
                continue
            first_seen[key] = key_loc
            child_path = path + (key if isinstance(key, str) else str(key),)
            doc.positions[child_path] = key_loc
            result[key] = self.value(value_node, child_path, doc, depth + 1)
        return result


def parse_documents(text: str, filename: str) -> tuple[list[Document], list[FieldProblem]]:
    """Every document in ``text`` plus problems that stop parsing (YAML syntax errors).

    Documents before a syntax error are returned; a syntax error ends the file, so every line
    is then also checked for the usual slips (``key;``, ``key:value``) to report them all at once.
    """
    builder = _Builder(filename)
    docs: list[Document] = []
    problems: list[FieldProblem] = []
    nodes: Iterator[yaml.Node] = yaml.compose_all(text, Loader=_Loader)
    try:
        for root in nodes:
            if root is None:
                continue
            docs.append(builder.document(root))
    except yaml.MarkedYAMLError as exc:
        first = explain_yaml_error(exc, text, filename)
        problems.append(first)
        seen = {first.location.line if first.location else 0}
        for extra in lint_lines(text, filename):
            if extra.location and extra.location.line not in seen:
                seen.add(extra.location.line)
                problems.append(extra)
    except yaml.YAMLError as exc:  # e.g. a reader error: bytes that are not text
        problems.append(FieldProblem((), f"not readable as YAML: {exc}", Location(filename, 1, 1)))
    return docs, problems
