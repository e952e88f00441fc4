"""The Calico selector language, parsed once into a matcher.

Grammar (projectcalico.org/v3): ``all()``, ``global()``, ``k == 'v'``, ``k != 'v'``, ``has(k)``,
``!has(k)``, ``k in {'a','b'}``, ``k not in {..}``, ``k contains 'x'``, ``k starts with 'x'``,
``k ends with 'x'``, ``!``, ``&&``, ``||`` and parentheses. An empty selector means all().
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

Labels = Mapping[str, str]
Matcher = Callable[[Labels], bool]

#: Parentheses and '!' nested deeper than this are refused (a selector is read by recursion).
MAX_DEPTH = 64
#: Characters in a selector (Calico stores selectors in resources limited to 1.5 MB; a
#: selector is a short expression).
MAX_LENGTH = 64 * 1024

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\)|\{|\}|,)"
    r"|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<word>[A-Za-z0-9_./-]+(?:\(\))?))"
)


@dataclass(frozen=True)
class Selector:
    """A parsed Calico selector; ``matches(labels)`` answers whether it selects them."""

    text: str
    _match: Matcher

    def matches(self, labels: Labels) -> bool:
        return self._match(labels)

    def describe(self) -> str:
        """The selector as written (``all()`` when empty), as ``LabelSelector.describe`` gives
        kubectl's form: the two selector languages answer the same two questions."""
        return self.text.strip() or "all()"

    def __str__(self) -> str:
        return self.text


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise ValueError(f"selector is {len(text):,} characters long: the limit is {MAX_LENGTH:,}")
        self.text = text
        self.depth = 0
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise ValueError(f"selector {_short(text)!r}: unexpected character at position {pos + 1}: {text[pos:pos + 10]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise ValueError(f"selector {_short(self.text)!r}: unexpected end, expected {value or 'more'}")
        if value is not None and tok[1] != value:
            raise ValueError(f"selector {_short(self.text)!r}: expected {value!r} at position {tok[2] + 1}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Matcher:
        if not self.tokens:
            return lambda labels: True
        matcher = self.parse_or()
        if self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            raise ValueError(f"selector {_short(self.text)!r}: unexpected {tok[1]!r} at position {tok[2] + 1}")
        return matcher

    def parse_or(self) -> Matcher:
        terms = [self.parse_and()]
        while self.peek() and self.peek()[1] == "||":  # type: ignore[index]
            self.take()
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else (lambda labels: any(t(labels) for t in terms))

    def parse_and(self) -> Matcher:
        terms = [self.parse_unary()]
        while self.peek() and self.peek()[1] == "&&":  # type: ignore[index]
            self.take()
            terms.append(self.parse_unary())
        return terms[0] if len(terms) == 1 else (lambda labels: all(t(labels) for t in terms))

    def parse_unary(self) -> Matcher:
        tok = self.peek()
        if tok and tok[1] in ("!", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"selector {_short(self.text)!r}: '!' and parentheses are nested more than "
                                 f"{MAX_DEPTH} deep (at position {tok[2] + 1})")
            self.take()
            if tok[1] == "!":
                negated = self.parse_unary()
                matcher: Matcher = lambda labels: not negated(labels)  # noqa: E731
            else:
                matcher = self.parse_or()
                self.take(")")
            self.depth -= 1
            return matcher
        return self.parse_term()

    def parse_term(self) -> Matcher:
        kind, word, pos = self.take()
        if kind != "word":
            raise ValueError(f"selector {_short(self.text)!r}: expected a label key or function at position {pos + 1}, found {word!r}")
        if word in ("all()", "global()"):
            return lambda labels: True
        if word == "has":
            self.take("(")
            key = self.take()[1]
            self.take(")")
            return lambda labels: key in labels
        key = word
        op_tok = self.take()
        op = op_tok[1]
        if op in ("==", "!="):
            value = self._string()
            if op == "==":
                return lambda labels: labels.get(key) == value
            return lambda labels: labels.get(key) != value
        if op == "in":
            values = self._set()
            return lambda labels: labels.get(key) in values
        if op in ("not", "notin"):  # Calico accepts both spellings
            if op == "not":
                self.take("in")
            values = self._set()
            return lambda labels: labels.get(key) not in values
        if op == "contains":
            value = self._string()
            return lambda labels: key in labels and value in labels[key]
        if op in ("starts", "ends"):
            self.take("with")
            value = self._string()
            if op == "starts":
                return lambda labels: key in labels and labels[key].startswith(value)
            return lambda labels: key in labels and labels[key].endswith(value)
        raise ValueError(f"selector {_short(self.text)!r}: unknown operator {op!r} at position {op_tok[2] + 1} (use ==, !=, in, not in)")

    def _string(self) -> str:
        kind, value, pos = self.take()
        if kind != "str":
            raise ValueError(f"selector {_short(self.text)!r}: expected a quoted value at position {pos + 1}, found {value!r}")
        return value[1:-1]

    def _set(self) -> frozenset[str]:
        self.take("{")
        values: set[str] = set()
        while self.peek() and self.peek()[1] != "}":  # type: ignore[index]
            values.add(self._string())
            nxt = self.peek()
            if nxt is not None and nxt[1] == ",":
                self.take()
            elif nxt is not None and nxt[1] != "}":
                raise ValueError(f"selector {_short(self.text)!r}: expected ',' or '}}' at position {nxt[2] + 1}, "
                                 f"found {nxt[1]!r}")
        self.take("}")
        return frozenset(values)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:40] + "…" + text[-10:]


@lru_cache(maxsize=4096)
def parse_selector(text: str) -> Selector:
    """Parse ``text``; raises ValueError naming the position of a syntax error."""
    return Selector(text, _Parser(text).parse())


def check_selector(text: str) -> None:
    parse_selector(text)
