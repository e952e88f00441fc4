"""Careless and hostile manifests, made by mutating good ones, and the check every one must pass.

Shared by the property test (tests/unit/test_manifest_fuzz.py, a few hundred inputs in `make
test`) and the long run (scripts/fuzz-manifests.sh, tens of thousands). A mutation is driven by
a ``random.Random``, so hypothesis can drive it (``st.randoms()``) and a seed can replay it.

The check: reading an input never raises anything but ``ValidationError``; every problem has a
file and line; ``podnet apply`` exits 0 or 1 (never a traceback), an error names the input, and
a refused apply leaves the store exactly as it was.
"""
from __future__ import annotations

import glob
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

SEEDS_EXTRA = [
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels:\n    env: dev\n",
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n"
    "  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n    nodePort: 30080\n",
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels: {app: api}\nspec:\n  replicas: 3\n"
    "  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n"
    "      priority: 10\n      terminationGracePeriodSeconds: 30\n      containers:\n      - name: api\n"
    "        image: nginx:1.25\n        ports:\n        - containerPort: 80\n          name: http\n",
    "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.244.0.0/16\n"
    "  blockSize: 26\n  vxlanMode: Always\n  natOutgoing: true\n  nodeSelector: \"!has(edge) && zone in {'a', 'b'}\"\n",
    "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  nodeSelector: all()\n"
    "  peerSelector: route-reflector == 'true'\n",
    '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j", "labels": {"app": "j"}},\n'
    '\t"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}\n',
]

#: Generated inputs are cut here (the 10 MB inputs are scripts/fuzz_manifests.py --large's).
MAX_BYTES = 1 << 20
INTERESTING = [
    "y", "n", "on", "Off", "~", "null", "", "1e5", "08", "0o17", "0x1F", "1:30", "1.10", "-1", "0", "65536",
    "2147483648", "9223372036854775808", "18446744073709551616", "9" * 5000, ".inf", "-.Inf", ".nan", "1e400",
    "!!int abc", "!!float x", "!!bool maybe", "!!null x", "!!str 12", "!!binary aGk=", "!!binary %%", "!foo x",
    "!!set {a}", "!!omap [a: b]", "&a x", "*a", "*undefined", "|\n  web\n", ">-\n  a\n  b\n", '"x\\ud800"',
    '"\\x01"', '"\\U0001F600"', "''", '""', "[]", "{}", "[[[[", "{a: 1", "'unterminated", "\t", "é", "😀",
    "10.0.0.0/255.0.0.0", "10.0.0.0/08", "fe80::1%eth0/64", "10.0.0.0/33", "::/0", "WEB", "web\u200b", "-web",
    "a" * 300, "all()", "!" * 200 + "all()", "(" * 100 + "all()" + ")" * 100, "has(", "x == 'y", "<<", "=",
    "2024-01-01T00:00:00Z", "? a", "- a", "a: b: c", "{{a}}", "%", "@x", "`x", "# comment", "\\", "\u0085",
]
SPECIALS = list(":-[]{},#&*!|>'\"%@`\t\n ?<=~.0123456789aZé😀\x00\x01\x7f\u2028\ufeff")
KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "spec", "podSelector",
        "matchLabels", "matchExpressions", "ingress", "egress", "from", "to", "ports", "port", "protocol",
        "containers", "replicas", "selector", "template", "cidr", "except", "ipBlock", "policyTypes", "status",
        "nodeSelector", "endPort", "hostNetwork", "type", "targetPort", "nodePort", "blockSize", "off", "yes"]


def seeds() -> list[str]:
    """Every manifest in examples/ (the broken ones too) and a few of other kinds."""
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.yaml"), recursive=True)):
        with open(path, encoding="utf-8") as handle:
            found.append(handle.read())
    return found + SEEDS_EXTRA


# --- text mutations ------------------------------------------------------------------------------

def _insert(r: random.Random, text: str, piece: str) -> str:
    at = r.randint(0, len(text))
    return text[:at] + piece + text[at:]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _on_line(r: random.Random, text: str, change: Callable[[str], str | list[str]]) -> str:
    lines = _lines(text)
    index = r.randrange(len(lines))
    new = change(lines[index])
    lines[index:index + 1] = new if isinstance(new, list) else [new]
    return "\n".join(lines)


def _replace_value(r: random.Random, text: str) -> str:
    def change(line: str) -> str:
        if ": " in line:
            return line.split(": ", 1)[0] + ": " + r.choice(INTERESTING)
        if line.strip().startswith("- "):
            return line[: line.index("- ") + 2] + r.choice(INTERESTING)
        return line
    return _on_line(r, text, change)


def _replace_key(r: random.Random, text: str) -> str:
    def change(line: str) -> str:
        if ":" not in line:
            return line
        indent = line[: len(line) - len(line.lstrip())]
        key, _, rest = line.strip().partition(":")
        new = r.choice([r.choice(KEYS), key.lower(), key + "s", key[:-1], key.upper(), key + ";", r.choice(INTERESTING)])
        return f"{indent}{new}:{rest}"
    return _on_line(r, text, change)


def _reindent(r: random.Random, text: str) -> str:
    return _on_line(r, text, lambda line: r.choice(["", " ", "  ", "   ", "\t", "    "]) + line.lstrip()
                    if r.random() < 0.7 else line[r.randint(0, 3):])


def _slip(r: random.Random, text: str) -> str:
    return _on_line(r, text, lambda line: line.replace(": ", r.choice([":", ";", " : ", ":  ", ":\t"]), 1))


def _lose_indentation(r: random.Random, text: str) -> str:
    return "\n".join(line.lstrip() for line in _lines(text))


def _nest(r: random.Random, text: str) -> str:
    depth = r.choice([5, 50, 99, 100, 101, 150, r.randint(1, 3000)])
    opener, closer = r.choice([("[", "]"), ("{a: ", "}"), ("- ", "")])
    if opener == "- ":
        return text + "\nx:\n" + "- " * depth + "a\n"
    return _replace_value_with(r, text, opener * depth + "1" + closer * depth)


def _replace_value_with(r: random.Random, text: str, value: str) -> str:
    return _on_line(r, text, lambda line: line.split(": ", 1)[0] + ": " + value if ": " in line else line)


def _alias_bomb(r: random.Random, text: str) -> str:
    width, depth = r.randint(2, 10), r.randint(2, 9)
    lines = ["bomb0: &b0 [" + ",".join(["x"] * width) + "]"]
    lines += [f"bomb{i}: &b{i} [" + ",".join([f"*b{i - 1}"] * width) + "]" for i in range(1, depth)]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _documents(r: random.Random, text: str) -> str:
    return r.choice([text + "---\n" + text, "---\n" * r.randint(1, 50) + text, text + "\n...\n" + text,
                     "%YAML 1.1\n---\n" + text, text.replace("\n---\n", "\n")])


def _truncate(r: random.Random, text: str) -> str:
    return text[: r.randint(0, len(text))]


def _as_json(r: random.Random, text: str) -> str:
    if "*" in text:
        return text  # expanding aliases here could make gigabytes of JSON; the reader is to meet them
    try:
        data = yaml.safe_load(text)
        return json.dumps(data, indent=r.choice([None, 1, "\t", 4]), default=str, ensure_ascii=r.random() < 0.5)
    except (yaml.YAMLError, RecursionError, ValueError):  # not YAML, or too deep for these tools
        return text


TEXT_MUTATIONS: list[Callable[[random.Random, str], str]] = [
    lambda r, t: _insert(r, t, r.choice(SPECIALS)),
    lambda r, t: _insert(r, t, r.choice(INTERESTING)),
    lambda r, t: (lambda a: t[:a] + t[a + r.randint(1, 20):])(r.randint(0, len(t))),
    _replace_value, _replace_value, _replace_key, _reindent, _slip,
    lambda r, t: _on_line(r, t, lambda line: [line, line]),
    lambda r, t: _on_line(r, t, lambda line: []),
    _lose_indentation, _nest, _alias_bomb, _documents, _truncate, _as_json,
]


# --- structure mutations ----------------------------------------------------------------------------

def _random_value(r: random.Random, depth: int = 0) -> Any:
    kind = r.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return r.choice([0, 1, -1, 80, 65535, 65536, 2 ** 31, -(2 ** 31) - 1, 2 ** 63 - 1, 2 ** 63, 10 ** 30])
    if kind == 1:
        return r.choice([0.5, 1e300, -0.0, 80.0])
    if kind == 2:
        return r.choice([True, False])
    if kind == 3:
        return None
    if kind in (4, 5, 6):
        return r.choice([s for s in INTERESTING if "\n" not in s or kind == 6] + ["web\n", "a b", "x" * 70])
    if kind == 7:
        return [_random_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    return {r.choice(KEYS): _random_value(r, depth + 1) for _ in range(r.randint(0, 3))}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, prefix + (index,))
    return out


def mutate_structure(r: random.Random, data: Any) -> Any:
    """One change at a random place: a value of another type, a key removed, added or misspelt."""
    path = r.choice(_paths(data))
    if not path:
        return _random_value(r)
    parent = data
    for segment in path[:-1]:
        parent = parent[segment]
    last = path[-1]
    action = r.randrange(5)
    if action == 0 and isinstance(parent, dict):
        del parent[last]
    elif action == 1 and isinstance(parent, dict):
        parent[str(last) + r.choice(["s", "_", "X"]) if r.random() < 0.5 else r.choice(KEYS)] = parent.pop(last)
    elif action == 2 and isinstance(parent, list):
        parent.insert(r.randint(0, len(parent)), _random_value(r))
    else:
        parent[last] = _random_value(r)
    return data


def _dump(r: random.Random, data: Any) -> str:
    style = r.randrange(3)
    if style == 0:
        return json.dumps(data, indent=r.choice([None, 2, "\t"]), default=str)
    return yaml.safe_dump(data, default_flow_style=None if style == 1 else False, allow_unicode=True)


@dataclass(frozen=True)
class Input:
    """One generated input: bytes (invalid UTF-8 is part of the game) and a file name."""

    data: bytes
    filename: str


def generate(r: random.Random, pool: list[str] | None = None) -> Input:
    """A mutated manifest: 1-4 text mutations, or structure mutations re-serialised."""
    text = r.choice(pool or seeds())
    if r.random() < 0.3 and "*" not in text:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except (yaml.YAMLError, RecursionError, ValueError):
            docs = []
        if docs:
            data = r.choice(docs)
            for _ in range(r.randint(1, 3)):
                data = mutate_structure(r, data)
            try:
                text = _dump(r, data)
            except (yaml.YAMLError, RecursionError, ValueError):
                pass
    else:
        for _ in range(r.randint(1, 4)):
            text = r.choice(TEXT_MUTATIONS)(r, text)
    raw = text.encode("utf-8", "surrogatepass")[:MAX_BYTES]
    if r.random() < 0.03:
        at = r.randint(0, len(raw))
        raw = raw[:at] + r.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + raw[at:]
    name = "input.json" if text.lstrip().startswith(("{", "[")) and r.random() < 0.8 else "input.yaml"
    return Input(raw, name)


# --- the check ---------------------------------------------------------------------------------------

class Violation(AssertionError):
    """One input broke a promise; ``kind`` is traceback, unlocated or partial."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def check_read(path: str) -> int:
    """Read the input as apply does; return the number of problems (0: accepted)."""
    from podnet.errors import ValidationError
    from podnet.manifest import load_paths

    try:
        load_paths([path])
    except ValidationError as exc:
        for problem in exc.problems:
            if problem.location is None or problem.location.file != path or problem.location.line < 1:
                raise Violation("unlocated", str(problem)) from None
        return len(exc.problems)
    except Exception as exc:  # noqa: BLE001 - anything else is the bug this looks for
        raise Violation("traceback", f"{type(exc).__name__}: {exc}"[:500]) from exc
    return 0


def store_state(state_dir: str) -> dict[str, Any]:
    from podnet.store.open import open_store

    store = open_store(state_dir, bootstrap=False)
    try:
        records, _ = store.kv.list("")
        return {r.key: (r.mod_revision, r.value) for r in records}
    finally:
        store.close()


WHOLE_INPUT_ERRORS = ("error: no objects passed to apply",)


def check_apply(path: str, state_dir: str) -> int:
    """``podnet apply -f path``: exit 0, or exit 1 naming the input with the store untouched."""
    from click.testing import CliRunner

    from podnet.cli.main import cli

    before = store_state(state_dir)
    result = CliRunner().invoke(cli, ["--state-dir", state_dir, "apply", "-f", path])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise Violation("traceback", f"{type(result.exception).__name__}: {result.exception}"[:500])
    if result.exit_code not in (0, 1):
        raise Violation("traceback", f"exit code {result.exit_code}: {result.output[:300]}")
    if result.exit_code == 1:
        if path not in result.stderr and not result.stderr.startswith(WHOLE_INPUT_ERRORS):
            raise Violation("unlocated", result.stderr[:500])
        if store_state(state_dir) != before:
            raise Violation("partial", f"a refused apply changed the store: {result.stderr[:300]}")
    return result.exit_code
