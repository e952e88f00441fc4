"""Kubernetes label selectors (matchLabels / matchExpressions).

The Calico selector language lives in ``calico_selector``. Both compile once into a matcher.
"""

from collections.abc import Mapping
from typing import Literal

import pydantic
from pydantic import model_validator

from . import validation as v
from .base import Model

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelectorRequirement(Model):
    key: str
    operator: Operator
    values: list[str] | None = None

    _check_key = v.field_check("key", v.check_qualified_name)

    @model_validator(mode="after")
    def _values_match_operator(self) -> "LabelSelectorRequirement":
        if self.operator in ("In", "NotIn"):
            if not self.values:
                raise ValueError(f"values: must be specified (non-empty) when operator is {self.operator}")
            for value in self.values:
                v.check_label_value(value)
        elif self.values:
            raise ValueError(f"values: may not be specified when operator is {self.operator}")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in (self.values or ())
        return present if self.operator == "In" else not present

    def describe(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(sorted(self.values or ()))})"


class LabelSelector(Model):
    """An empty selector ({}) selects everything; ANDs all its terms."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    _check_labels = v.field_check("match_labels", v.check_labels)

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions or ())

    def describe(self) -> str:
        """kubectl's rendering (FormatLabelSelector): ``app=web,tier in (a,b)``, terms sorted by
        key and values sorted, so two spellings of one selector read the same; ``<none>`` for empty."""
        parts = [(k, f"{k}={val}") for k, val in (self.match_labels or {}).items()]
        parts += [(req.key, req.describe()) for req in self.match_expressions or ()]
        return ",".join(text for _, text in sorted(parts, key=lambda part: part[0])) if parts else "<none>"


def parse_label_selector_string(text: str) -> LabelSelector:
    """Parse kubectl's ``-l`` syntax: ``a=b,c!=d,e,!f,g in (x,y),h notin (z)``.

    Every term must hold, as in kubectl: ``app=a,app=b`` matches nothing. Raises ValueError
    with the API server's wording for a bad key or value (not pydantic's report).
    """
    if text.count("(") != text.count(")"):
        raise ValueError(f"unclosed '(' or unmatched ')' in {text!r}: write e.g. 'env in (a,b)'")
    exprs: list[LabelSelectorRequirement] = []
    labels: dict[str, str] = {}
    try:
        for term in _split_terms(text):
            term = term.strip()
            if not term:
                continue
            low = term.replace("\t", " ")
            if " notin " in low or " in " in low:
                key, op, rest = (low.partition(" notin ") if " notin " in low else low.partition(" in "))
                values = [x.strip() for x in rest.strip().strip("()").split(",") if x.strip()]
                exprs.append(LabelSelectorRequirement(key=key.strip(), operator="NotIn" if "notin" in op else "In",
                                                      values=values))
            elif "!=" in term:
                key, _, value = term.partition("!=")
                exprs.append(LabelSelectorRequirement(key=key.strip(), operator="NotIn", values=[value.strip()]))
            elif "=" in term:
                key, _, value = term.partition("==") if "==" in term else term.partition("=")
                key, value = key.strip(), value.strip()
                if key in labels:  # a second value for one key: both must hold
                    exprs.append(LabelSelectorRequirement(key=key, operator="In", values=[value]))
                else:
                    labels[key] = value
            elif term.startswith("!"):
                exprs.append(LabelSelectorRequirement(key=term[1:].strip(), operator="DoesNotExist"))
            else:
                exprs.append(LabelSelectorRequirement(key=term, operator="Exists"))
        return LabelSelector(match_labels=labels or None, match_expressions=exprs or None)
    except pydantic.ValidationError as exc:
        raise ValueError("; ".join(str(e["ctx"]["error"]) if "error" in e.get("ctx", {}) else e["msg"]
                                   for e in exc.errors())) from None


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return terms


EVERYTHING = LabelSelector()
