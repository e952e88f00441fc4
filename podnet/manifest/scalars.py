"""YAML scalars read as kubectl reads them: go-yaml's YAML 1.1 rules, not PyYAML's.

kubectl (sigs.k8s.io/yaml over go-yaml v2) decides what an unquoted scalar is by its first
character and a few Go parsers: ``y``, ``n``, ``on`` and ``off`` are booleans, ``1e5`` and
``08`` are numbers, ``0o755`` is an integer, ``1:30`` is a string (PyYAML reads it as 90 and
``1e5`` as a string). A podnet manifest means what it would mean to kubectl.

An explicit tag must agree with what the text is (``!!int abc`` is refused, as go-yaml
refuses it), except that ``!!str`` makes anything a string and ``!!float`` accepts an integer.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = CORE + "str", CORE + "int", CORE + "float", CORE + "bool", CORE + "null"
TIMESTAMP, BINARY, MERGE = CORE + "timestamp", CORE + "binary", CORE + "merge"
MAP, SEQ = CORE + "map", CORE + "seq"
#: The non-specific tag ``!``: a scalar written ``! text`` is a string.
NON_SPECIFIC = "!"
INT64_MIN, INT64_MAX, UINT64_MAX = -(2 ** 63), 2 ** 63 - 1, 2 ** 64 - 1


class Merge:
    """The value of a plain ``<<`` key (a merge of the mapping or mappings that follow)."""

    def __repr__(self) -> str:
        return "<<"


MERGE_KEY = Merge()

_WORDS: dict[str, tuple[str, Any]] = {}
for _words, _tag, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", BOOL, True),
    ("n N no No NO false False FALSE off Off OFF", BOOL, False),
    ("~ null Null NULL", NULL, None),
    (".nan .NaN .NAN", FLOAT, math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", FLOAT, math.inf),
    ("-.inf -.Inf -.INF", FLOAT, -math.inf),
    ("<<", MERGE, MERGE_KEY),
):
    for _word in _words.split():
        _WORDS[_word] = (_tag, _value)
_WORDS[""] = (NULL, None)

#: go-yaml's first-character hint: Sign, Digit, in the word Map, or '.' (maybe a float).
_HINT = {**{c: "S" for c in "+-"}, **{c: "D" for c in "0123456789"}, **{c: "M" for c in "yYnNtTfFoO~<"}, ".": "."}
#: The words go-yaml reads as something other than a string (booleans, nulls, .inf, <<).
WORDS = frozenset(_WORDS)
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DIGITS = {2: re.compile("[01]{1,64}"), 8: re.compile("[0-7]{1,22}"), 10: re.compile("[0-9]{1,20}"),
           16: re.compile("[0-9a-fA-F]{1,16}")}  # more digits cannot fit 64 bits
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
                        r"([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})"
                        r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?)?")


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) then ParseUint: prefixes 0b, 0o, 0x and a leading 0 (octal)."""
    sign, body = 1, text
    if body[:1] in "+-":
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base = 10
    if body[:1] == "0" and len(body) > 1:
        prefix = body[1].lower()
        if len(body) >= 3 and prefix in "box":
            base, body = {"b": 2, "o": 8, "x": 16}[prefix], body[2:]
        else:
            base, body = 8, body[1:]
    if not body or not _DIGITS[base].fullmatch(body.lstrip("0") or "0"):
        return None  # a sign alone, or digits that cannot fit 64 bits
    value = sign * int(body, base)
    if INT64_MIN <= value <= INT64_MAX or (text[0] != "-" and text[0] != "+" and value <= UINT64_MAX):
        return value
    return None


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for decimal forms; None where Go reports an error (out of range too)."""
    if not _YAML_FLOAT.fullmatch(text):
        return None
    value = float(text)
    return None if math.isinf(value) else value  # Go: value out of range


def resolve_plain(text: str) -> tuple[str, Any]:
    """(tag, value) of an unquoted, untagged scalar, as go-yaml's resolve() decides."""
    if text.isdigit() and text.isascii() and len(text) < 19 and (text[0] != "0" or len(text) == 1):
        return INT, int(text)  # the common case: a plain decimal number
    hint = _HINT.get(text[:1], "N") if text else "N"
    if hint == "N" and text:
        return STR, text
    found = _WORDS.get(text)
    if found is not None:
        return found
    if hint == ".":
        value = _go_parse_float(text)
        if value is not None:
            return FLOAT, value
    elif hint in "DS":
        plain = text.replace("_", "")
        if plain:
            number = _go_parse_int(plain)
            if number is not None:
                return INT, number
            value = _go_parse_float(plain)
            if value is not None:
                return FLOAT, value
    return STR, text


def short_tag(tag: str) -> str:
    return "!!" + tag[len(CORE):] if tag.startswith(CORE) else tag


def construct_tagged(tag: str, text: str) -> Any:
    """The value of a scalar with an explicit tag; ValueError (go-yaml's words) if the text is
    not what the tag says."""
    if tag in (STR, NON_SPECIFIC):
        return text
    if tag == BINARY:
        try:
            return base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ValueError(f"cannot decode !!binary `{text}`: not base64 of UTF-8 text") from None
    if tag == TIMESTAMP:
        if _TIMESTAMP.fullmatch(text):
            return text  # timestamps stay RFC 3339 text, as the API has them
        raise ValueError(f"cannot decode !!str `{text}` as a !!timestamp")
    if tag not in (INT, FLOAT, BOOL, NULL):
        raise ValueError(f"unknown tag {tag!r}")
    resolved, value = resolve_plain(text)
    if resolved == tag:
        return value
    if tag == FLOAT and resolved == INT:
        return float(value)
    raise ValueError(f"cannot decode {short_tag(resolved)} `{text}` as a {short_tag(tag)}")
