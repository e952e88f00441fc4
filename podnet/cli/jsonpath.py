"""The part of kubectl's JSONPath that scripts use: ``{.items[0].status.podIP}``,
``{.items[*].metadata.name}``, ``{range .items[*]}…{end}`` and quoted literals such as
``{"\\n"}``. Enough for ``-o jsonpath=…`` in shell scripts, without another dependency."""
from __future__ import annotations

import json
import re
from typing import Any

from podnet.errors import PodnetError

_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|-?\d+)\]")


def _select(values: list[Any], path: str) -> list[Any]:
    pos = 0
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    while pos < len(path):
        m = _STEP.match(path, pos)
        if not m:
            raise PodnetError(f"jsonpath: cannot parse {path[pos:]!r}", hint="write paths like {.items[0].status.podIP}")
        key, index = m.group(1), m.group(2)
        nxt: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                nxt.append(value[key])
            elif index == "*" and isinstance(value, list):
                nxt.extend(value)
            elif index not in (None, "*") and isinstance(value, list) and -len(value) <= int(index) < len(value):
                nxt.append(value[int(index)])
        values = nxt
        pos = m.end()
    return values


def _text(value: Any) -> str:
    """A value as kubectl prints it: strings bare, everything else as compact JSON with sorted
    keys (Go's json.Marshal), so ``{.metadata.labels}`` reads ``{"app":"web"}``."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def render(template: str, document: Any) -> str:
    """Expand ``template`` against ``document`` (the JSON form of what ``get`` found)."""
    out: list[str] = []
    tokens = re.split(r"(\{[^{}]*\})", template)
    _render(tokens, 0, [document], out)
    return "".join(out)


def _render(tokens: list[str], i: int, scope: list[Any], out: list[str]) -> int:
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not (tok.startswith("{") and tok.endswith("}")):
            out.append(tok)
            continue
        expr = tok[1:-1].strip()
        if expr == "end":
            return i
        if expr.startswith("range "):
            items = _select(scope, expr[len("range "):])
            end = i
            for item in items:
                end = _render(tokens, i, [item], out)
            i = end if items else _skip_range(tokens, i)
        elif expr[:1] in "'\"":
            out.append(json.loads(expr) if expr[0] == '"' else expr[1:-1])
        else:
            out.append(" ".join(_text(v) for v in _select(scope, expr)))
    return i


def _skip_range(tokens: list[str], i: int) -> int:
    depth = 1
    while i < len(tokens):
        expr = tokens[i][1:-1].strip() if tokens[i].startswith("{") else ""
        i += 1
        depth += expr.startswith("range ")
        depth -= expr == "end"
        if depth == 0:
            break
    return i


def go_text(value: Any) -> str:
    """A value as Go's ``fmt.Sprintf("%v")`` prints it, as kubectl's custom columns do."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    return str(value)


def custom_columns(spec: str, documents: list[Any]) -> tuple[list[str], list[list[str]]]:
    """``-o custom-columns=NAME:.metadata.name,IP:.status.podIP``: headers, and one row per
    document; several values in a cell are joined with ',' and none is ``<none>``, as kubectl."""
    columns: list[tuple[str, str]] = []
    for part in spec.split(","):
        header, colon, path = part.partition(":")
        if not colon or not header:
            raise PodnetError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        if not path.startswith((".", "$", "[")):
            path = "." + path
        columns.append((header, path))
    rows = []
    for document in documents:
        row = []
        for _, path in columns:
            values = _select([document], path)
            row.append(",".join(go_text(v) for v in values) if values else "<none>")
        rows.append(row)
    return [header for header, _ in columns], rows
