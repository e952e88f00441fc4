"""Output formatting only: kubectl-style tables, ages, YAML/JSON/name renderings.

Tables are column-aligned with three spaces between columns, as kubectl's and calicoctl's
tabwriters print them; AGE follows kubectl's HumanDuration (5s, 3m20s, 2d4h, 400d).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from podnet.model import Resource

NONE = "<none>"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows aligned under headers, columns three spaces apart, no trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *[list(r) for r in rows]]:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


_NUMBER = re.compile(r"[-+]?\d*\.?\d+")


def boxed_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """calicoctl's boxed table (``ipam show``, ``node status``): headers centred with the odd
    space on the right, numbers right-aligned, other cells left-aligned; no final newline."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)

    def cell(text: str, width: int) -> str:
        return text.rjust(width) if _NUMBER.fullmatch(text) else text.ljust(width)

    head = "|" + "|".join(f" {centred(h, w)} " for h, w in zip(headers, widths)) + "|"
    body = ["|" + "|".join(f" {cell(c, w)} " for c, w in zip(r, widths)) + "|" for r in rows]
    return "\n".join([rule, head, rule, *body, rule])


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(obj: Resource, now: datetime) -> str:
    created = parse_timestamp(obj.metadata.creation_timestamp)
    return human_duration((now - created).total_seconds()) if created else NONE


def type_name(cls: type[Resource]) -> str:
    """kubectl's ``kind.group`` form used in apply/-o name output: ``deployment.apps``."""
    group = cls.group()
    return f"{cls.KIND.lower()}.{group}" if group else cls.KIND.lower()


def ref_name(obj: Resource) -> str:
    """``networkpolicy.networking.k8s.io/test-network-policy``, ``pod/client1``."""
    return f"{type_name(type(obj))}/{obj.metadata.name}"


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


class _KubectlDumper(yaml.SafeDumper):
    """Quotes strings that would read back as another type with double quotes, as kubectl
    does (``resourceVersion: "5"``, ``access: "true"``, ``"y"``, ``"1e5"``): for PyYAML and for
    go-yaml, which reads ``y`` as a boolean and ``1e5`` as a number."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    from podnet.manifest.scalars import STR, resolve_plain

    implicit = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    style = '"' if implicit != STR or resolve_plain(value)[0] != STR else None
    if "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubectlDumper.add_representer(str, _represent_str)


def yaml_text(value: Any, sort_keys: bool = True, flow: bool = False) -> str:
    """``value`` as YAML that kubectl and podnet read back as the same value."""
    return yaml.dump(value, Dumper=_KubectlDumper, sort_keys=sort_keys, default_flow_style=None if flow else False,
                     allow_unicode=True)


def to_yaml(objs: Sequence[Resource], single: bool) -> str:
    """One object as itself; several (or a query for many) as a ``kind: List``, as kubectl."""
    return yaml_text(_document(objs, single))


def to_json(objs: Sequence[Resource], single: bool) -> str:
    return json.dumps(_document(objs, single), indent=4, ensure_ascii=False)


def _clean(obj: Resource) -> dict[str, Any]:
    """The object as the API server shows it: empty labels/annotations left out."""
    value = obj.to_dict()
    meta = value.get("metadata", {})
    for key in ("labels", "annotations"):
        if key in meta and not meta[key]:
            del meta[key]
    return value


def _document(objs: Sequence[Resource], single: bool) -> dict[str, Any]:
    if single and len(objs) == 1:
        return _clean(objs[0])
    return {"apiVersion": "v1", "items": [_clean(o) for o in objs], "kind": "List",
            "metadata": {"resourceVersion": ""}}


#: Characters of `matrix` tables printed to a terminal; larger ones are summarised.
TERMINAL_TABLE_LIMIT = 1 << 20


def to_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def matrix_summary(result: Any) -> str | None:
    """Counts instead of a connectivity table too large for a terminal (a 2,000-pod table is
    hundreds of MB); None when the table fits, or when the output is a pipe or a file."""
    n = len(result.pods)
    size = len(result.keys) * n * (n + 1) * (1 + sum(len(p) for p in result.pods) // max(n, 1))
    if size <= TERMINAL_TABLE_LIMIT or not to_terminal():
        return None
    lines = [f"{n:,} pods: the table would be about {size >> 20:,} MiB, too large for a terminal"]
    for key in result.keys:
        allowed = result.count_allowed(key)  # per class: no row is expanded
        lines.append(f"  {key}: {allowed:,} of {n * n:,} connections allowed ({100 * allowed / (n * n):.1f} %)")
    lines.append("narrow it with -n NAMESPACE, or send it to a file or a pipe (-o csv gives one line per cell, "
                 "-o json one document)")
    return "\n".join(lines)
