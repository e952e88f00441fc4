"""JSON text as the YAML parser's events, for the JSON that libyaml cannot read.

Nearly every JSON manifest is also YAML and is read as YAML. A few valid JSON texts are not
(a key longer than 1,024 characters, an emoji written as a surrogate pair ``\\ud83d\\ude00``);
for those this tokenizer produces the same events the YAML parser would, so the one builder
checks them: positions, duplicate keys, depth and size limits all hold for JSON too.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator

from yaml import Mark
from yaml import events as ev

_TOKEN = re.compile(r"""
    (?P<space>[ \t\n\r]+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
  | (?P<word>true|false|null)
  | (?P<punct>[{}\[\],:])
""", re.VERBOSE)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONSyntaxError(ValueError):
    """The text is not JSON either."""


class NotText(JSONSyntaxError):
    """Valid JSON syntax whose string is not text (half a surrogate pair), at a line and column."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def _mark(name: str, index: int, line: int, column: int) -> Mark:
    return Mark(name, index, line, column, None, None)  # type: ignore[arg-type]  # no buffer to quote


def json_events(text: str, name: str) -> Iterator[ev.Event]:
    """YAML parser events for one JSON document; JSONSyntaxError at the first thing JSON forbids.

    A string holding half of a surrogate pair (``"\\ud800"`` alone) is refused: it is not text,
    and could not be stored.
    """
    line, line_start, pos = 0, 0, 0
    stack: list[str] = []   # "{" or "[" per open collection
    state = "value"         # what may come next: value, key, colon, after (',' or a close), end
    start = _mark(name, 0, 0, 0)
    yield ev.StreamStartEvent(start, start)
    yield ev.DocumentStartEvent(start, start, explicit=False)
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        here = _mark(name, pos, line, pos - line_start)
        if match is None:
            raise JSONSyntaxError(f"unexpected character {text[pos]!r} at line {line + 1}, "
                                  f"column {pos - line_start + 1}")
        kind, token = match.lastgroup, match.group()
        pos = match.end()
        if kind == "space":
            newlines = token.count("\n")
            if newlines:
                line += newlines
                line_start = match.start() + token.rindex("\n") + 1
            continue
        closing = {"}": "{", "]": "["}.get(token) if kind == "punct" else None
        if token in ("{", "[") and kind == "punct" and state in ("value", "value-or-close"):
            stack.append(token)
            cls = ev.MappingStartEvent if token == "{" else ev.SequenceStartEvent
            yield cls(None, None, True, here, here, flow_style=True)
            state = "key-or-close" if token == "{" else "value-or-close"
        elif closing and stack and stack[-1] == closing and state in ("after", "key-or-close", "value-or-close"):
            stack.pop()
            yield (ev.MappingEndEvent if token == "}" else ev.SequenceEndEvent)(here, here)
            state = "after" if stack else "end"
        elif token == "," and kind == "punct" and state == "after":
            state = "key" if stack[-1] == "{" else "value"
        elif token == ":" and kind == "punct" and state == "colon":
            state = "value"
        elif kind == "string" and state in ("key", "key-or-close"):
            yield ev.ScalarEvent(None, None, (False, True), _string(token, here), here, here)
            state = "colon"
        elif kind in ("string", "number", "word") and state in ("value", "value-or-close"):
            value = _string(token, here) if kind == "string" else token
            yield ev.ScalarEvent(None, None, (kind != "string", kind == "string"), value, here, here)
            state = "after" if stack else "end"
        else:
            raise JSONSyntaxError(f"unexpected {token[:20]!r} at line {line + 1}, column {here.column + 1}")
    if state != "end":
        raise JSONSyntaxError("unexpected end of the text (a bracket is not closed)")
    end = _mark(name, pos, line, pos - line_start)
    yield ev.DocumentEndEvent(end, end, explicit=False)
    yield ev.StreamEndEvent(end, end)


def _string(token: str, where: Mark) -> str:
    value: str = json.loads(token)
    if _SURROGATE.search(value):
        raise NotText("this string holds half of a surrogate pair (\\ud800-\\udfff without its other half), "
                      "which is not text", where.line + 1, where.column + 1)
    return value
