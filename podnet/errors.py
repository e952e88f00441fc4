"""User-facing errors. Each says what failed, where, and what to do about it.

The CLI turns a ``PodnetError`` into a message and exit code 1; anything else is a bug.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PodnetError(Exception):
    """Base for errors a user can act on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class Location:
    """Where in a manifest something is: file, 1-based line and column."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_field_path(path: Sequence[str | int]) -> str:
    """A field path as kubectl prints it: ``spec.ingress[0].from[1].podSelector``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of one document."""

    path: tuple[str | int, ...]
    message: str
    location: Location | None = None
    hint: str | None = None
    kind: str | None = None
    name: str | None = None

    @property
    def field_path(self) -> str:
        """The path as kubectl prints it, or ``<document>`` for the document as a whole."""
        return format_field_path(self.path) or "<document>"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        what = f"{self.kind}/{self.name}: " if self.kind and self.name else (f"{self.kind}: " if self.kind else "")
        text = f"{where}{what}{self.field_path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ValidationError(PodnetError):
    """A manifest (or several) failed validation; ``outcome`` says what that meant (nothing was
    applied), or is None where nothing was being applied (reading files for lint)."""

    def __init__(self, problems: Sequence[FieldProblem], outcome: str | None = "nothing was applied") -> None:
        self.problems = list(problems)
        self.outcome = outcome
        count = len(self.problems)
        head = f"{count} error{'s' if count != 1 else ''} found" + (f"; {outcome}" if outcome else "")
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in self.problems))

    def with_outcome(self, outcome: str | None) -> ValidationError:
        return ValidationError(self.problems, outcome)

    def __str__(self) -> str:
        return self.message


class NotFound(PodnetError):
    """A named object does not exist."""


class AlreadyExists(PodnetError):
    """Create of an object that exists already."""


class Conflict(PodnetError):
    """An update was made against a revision that is no longer current."""


class Compacted(PodnetError):
    """A watch asked for history the store no longer keeps: relist and watch again."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted (oldest kept: {compacted})",
            hint="list again and watch from the list's revision",
        )
        self.requested = requested
        self.compacted = compacted


class ResourceExhausted(PodnetError):
    """A pool of something (IP addresses, blocks) is used up."""




class DataplaneError(PodnetError):
    """The kernel did not take a dataplane change; none of it was applied (one transaction).

    ``target`` names what the change was for (``nftables table inet podnet in <netns>``);
    ``retryable`` tells a channel that failed (the same change may go through on a new one)
    from a change the kernel refused (it will be refused again until the change differs)."""

    def __init__(self, message: str, *, target: str, retryable: bool, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.target = target
        self.retryable = retryable
