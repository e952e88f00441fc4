"""Explain YAML syntax errors the way a person would: which line is really wrong, and why.

The parser reports where it got stuck, which is often a line or two after the slip. The usual
slips in hand-written manifests are a ';' typed for ':' (``matchLabels;``), a missing space
after ':' (``port:80`` is one plain string, not a key and a value), tabs, and indentation lost
in a copy and paste. We look for those near the stuck point, name the culprit line, and give
the field path it sits at (worked out from indentation, since the text does not parse).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from podnet.errors import FieldProblem, Location

Path = tuple[str | int, ...]

#: Lines read for hints after a syntax error (reading a million lines of a 10 MB input for
#: slips would take longer than the rest of the answer).
SCAN_LINES = 20_000
_KEY = r"[A-Za-z_][\w.\-]*(?:/[\w.\-]+)?"
_LINE = re.compile(rf"^(?P<indent> *)(?P<dash>-\s+)?(?P<key>{_KEY})(?P<sep>[:;])(?P<rest>.*)$")


@dataclass(frozen=True)
class _Shape:
    """What indentation says about one line: an optional list item and an optional key."""

    indent: int
    item_col: int | None
    key_col: int
    key: str | None


def _shape(line: str) -> _Shape | None:
    line = line.replace("\t", "  ")
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
        return None
    indent = len(line) - len(line.lstrip(" "))
    m = _LINE.match(line)
    if m:
        key_col = indent + len(m.group("dash") or "")
        return _Shape(indent, indent if m.group("dash") else None, key_col, m.group("key"))
    if stripped.startswith("- ") or stripped == "-":
        rest = stripped[1:].lstrip(" ")
        return _Shape(indent, indent, indent + len(stripped) - len(rest), None)
    return _Shape(indent, None, indent, None)


def _paths(lines: list[str]) -> Iterator[tuple[int, Path]]:
    """(index, best-effort field path) of each line, from indentation alone, in one pass."""
    stack: list[tuple[str, int, str | int]] = []  # (kind, column, segment)
    for index, line in enumerate(lines):
        shape = _shape(line)
        if shape is not None:
            if shape.item_col is not None:
                col = shape.item_col
                while stack and stack[-1][1] > col:
                    stack.pop()
                position = 0
                if stack and stack[-1][0] == "item" and stack[-1][1] == col:
                    position = int(stack.pop()[2]) + 1
                stack.append(("item", col, position))
            else:
                while stack and stack[-1][1] >= shape.key_col:
                    stack.pop()
            if shape.key is not None:
                stack.append(("key", shape.key_col, shape.key))
        yield index, tuple(seg for _, _, seg in stack)


def path_at_line(lines: list[str], index: int) -> Path:
    """Best-effort field path of ``lines[index]`` (0-based) from indentation alone."""
    for at, path in _paths(lines[: index + 1]):
        if at == index:
            return path
    return ()


def _slip(line: str) -> tuple[str, str] | None:
    """(message, hint) if ``line`` shows a known slip, else None."""
    if "\t" in line[: len(line) - len(line.lstrip())]:
        return ("a tab character is used for indentation", "YAML indents with spaces only: replace the tab with spaces")
    m = _LINE.match(line)
    if not m:
        return None
    key, sep, rest = m.group("key"), m.group("sep"), m.group("rest")
    if sep == ";" and (not rest.strip() or rest.startswith(" ")):
        return (
            f"{key!r} is followed by ';' where ':' was meant",
            f"write '{key}:'; with ';' YAML reads '{key};' as plain text, not as a key",
        )
    if sep == ":" and rest and not rest[0].isspace() and not rest.startswith(("/", ":")):
        value = rest.strip()
        return (
            f"'{key}:{value}' has no space after ':'",
            f"write '{key}: {value}'; without the space YAML reads '{key}:{value}' as one plain string, "
            "not as a key and its value",
        )
    return None


def lint_lines(text: str, filename: str, start_line: int = 1, limit: int | None = None) -> list[FieldProblem]:
    """Every line (from ``start_line``, 1-based, within the first SCAN_LINES) showing a known
    slip, as located problems; at most ``limit`` of them."""
    lines = text.splitlines()[:SCAN_LINES]
    found: list[FieldProblem] = []
    for index, path in _paths(lines):
        if index < start_line - 1:
            continue
        slip = _slip(lines[index])
        if slip:
            indent = len(lines[index]) - len(lines[index].lstrip())
            found.append(FieldProblem(path, slip[0], Location(filename, index + 1, indent + 1), hint=slip[1]))
            if limit is not None and len(found) >= limit:
                break
    return found


_GENERIC_HINTS = (
    ("mapping values are not allowed", "a ': ' appears where YAML expected a plain value: check that the line "
     "before ends with ':' and that this line is indented under it, or quote the value"),
    ("could not find expected ':'", "this line is not 'key: value': add ': ' after the key, make it a comment "
     "with '#', or indent it as part of the line before"),
    ("cannot start any token", "YAML indents with spaces only, and '@' or '`' cannot start a value: quote it"),
    ("did not find expected key", "this line's indentation does not line up with its siblings: align it with "
     "the other fields of the same mapping"),
    ("expected <block end>", "this line's indentation does not line up with its siblings: align it with "
     "the other fields of the same mapping"),
    ("did not find expected ',' or ']'", "a '[' list is not closed: add the missing ']' (or ',')"),
    ("did not find expected ',' or '}'", "a '{' mapping is not closed: add the missing '}' (or ',')"),
    ("found unexpected end of stream", "a quote is not closed: add the closing quote"),
    ("found undefined alias", "a '*name' alias needs an '&name' anchor earlier in the same document"),
)


def _lost_indentation(lines: list[str], line_index: int) -> bool:
    """True if the document around the error has block keys with nothing indented under them."""
    start = line_index
    while start > 0 and lines[start - 1].strip() != "---":
        start -= 1
    count, seen_section = 0, False
    for line in lines[start:line_index + 1]:
        shape = _shape(line)
        if shape is None:
            continue
        if shape.indent:
            return False  # one indented line is enough to know
        count += 1
        seen_section = seen_section or shape.key in ("metadata", "spec")
    return count > 3 and seen_section


def _path_near(lines: list[str], index: int, parsed: Path | None) -> Path:
    """The field path of a line from indentation, or (past the first SCAN_LINES lines, where
    that would mean reading them all) the path the parser had reached."""
    if index < SCAN_LINES or parsed is None:
        return path_at_line(lines, index) if index < len(lines) else ()
    return parsed


def explain_yaml_error(exc: yaml.MarkedYAMLError, text: str, filename: str,
                       parsed: Path | None = None) -> FieldProblem:
    """One located problem for a YAML syntax error, blaming the real culprit line if we can.

    ``parsed`` is the field path the parser had reached when it stopped (used in long inputs)."""
    lines = text.splitlines()
    mark = exc.problem_mark or exc.context_mark
    line_index = mark.line if mark else 0
    column = (mark.column + 1) if mark else 1
    low = exc.context_mark.line if exc.context_mark else line_index
    what = (exc.problem or "syntax error").strip()
    stuck = f"YAML syntax error: {what} (parser stopped at line {line_index + 1}, column {column})"
    for index in range(min(line_index, len(lines) - 1), max(min(low, line_index) - 3, -1), -1):
        slip = _slip(lines[index])
        if slip:
            indent = len(lines[index]) - len(lines[index].lstrip())
            return FieldProblem(_path_near(lines, index, parsed), f"{slip[0]}; {stuck}",
                                Location(filename, index + 1, indent + 1), hint=slip[1])
    hint = next((h for needle, h in _GENERIC_HINTS if needle in what), None)
    if (exc.context or "").startswith("while parsing a flow") and exc.context_mark is not None:
        line_index, column = exc.context_mark.line, exc.context_mark.column + 1  # the unclosed bracket
        stuck = f"YAML syntax error: {what} for the bracket opened at line {line_index + 1}, column {column}"
    if "simple key" in (exc.context or "") and exc.context_mark is not None:
        line_index, column = exc.context_mark.line, exc.context_mark.column + 1  # where the non-key began
        text_here = lines[line_index].strip() if line_index < len(lines) else ""
        stuck = f"YAML syntax error: line {line_index + 1} is not 'key: value' and is not indented under a key"
        if text_here and ":" not in text_here:
            hint = "this looks like prose pasted into the manifest: make it a comment by starting it with '#'"
    if lines and _lost_indentation(lines, min(line_index, len(lines) - 1)):
        lost = ("the manifest seems to have lost its indentation (every line starts in column 1): "
                "indent the fields under metadata: and spec: by two spaces per level")
        hint = f"{hint}; also, {lost}" if hint else lost
    return FieldProblem(_path_near(lines, line_index, parsed), stuck, Location(filename, line_index + 1, column),
                        hint=hint)
