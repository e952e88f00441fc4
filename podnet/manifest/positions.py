"""Where each field of a document is, kept beside the values in the values' own shape.

A large dump holds a million values; a table from field path to location would hold a million
path tuples. Instead each mapping and list gets a twin (a "mirror") holding, per key or index,
the packed position of that entry, or (position, twin) for a collection, or (position, text) for
a number, boolean or null (the text as written, for hints). A lookup walks the twins along the
path; an alias shares the twin of its anchor, so aliases cost no extra positions.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from podnet.errors import Location

Path = tuple[str | int, ...]
#: A position packed into one int: line * LINE + column (both 1-based).
LINE = 1 << 24
#: Per key (mapping) or index (list): a packed position, (position, twin) or (position, text).
Mirror = dict[Any, Any] | list[Any]


def unpack(file: str, packed: int) -> Location:
    return Location(file, packed // LINE, packed % LINE)


def _split(entry: Any) -> tuple[int, Any]:
    """(position, twin or text or None) of one mirror entry."""
    if type(entry) is tuple:
        return entry[0], entry[1]
    return entry, None


def _step(mirror: Any, segment: str | int) -> Any:
    if type(mirror) is dict:
        return mirror.get(segment)
    if type(mirror) is list and type(segment) is int and 0 <= segment < len(mirror):
        return mirror[segment]
    return None


class Positions(Mapping[Path, Location]):
    """Field path → Location for one object (paths relative to it), read off its mirror."""

    __slots__ = ("file", "root", "mirror")

    def __init__(self, file: str, root: int, mirror: Any) -> None:
        self.file, self.root, self.mirror = file, root, mirror

    def _walk(self, path: Path) -> tuple[int, int, Any]:
        """(how many segments were found, the position of the last found, what is there)."""
        packed, here = self.root, self.mirror
        for depth, segment in enumerate(path):
            entry = _step(here, segment)
            if entry is None:
                return depth, packed, None
            packed, here = _split(entry)
        return len(path), packed, here

    def __getitem__(self, path: Path) -> Location:
        found, packed, _ = self._walk(tuple(path))
        if found < len(path):
            raise KeyError(path)
        return unpack(self.file, packed)

    def get(self, path: Path, default: Any = None) -> Any:
        found, packed, _ = self._walk(tuple(path))
        return unpack(self.file, packed) if found == len(path) else default

    def nearest(self, path: Path) -> Location:
        """The location of ``path`` or of its nearest ancestor present in the text."""
        return unpack(self.file, self._walk(tuple(path))[1])

    def text(self, path: Path) -> str | None:
        """How the number, boolean or null at ``path`` was written, if it is one."""
        found, _, here = self._walk(tuple(path))
        return here if found == len(path) and isinstance(here, str) else None

    def below(self, head: str) -> dict[int, Positions]:
        """Positions of each item of the list at ``head`` (e.g. a List's ``items``), relative to it."""
        found, _, items = self._walk((head,))
        if not found or type(items) is not list:
            return {}
        out = {}
        for index, entry in enumerate(items):
            packed, twin = _split(entry)
            out[index] = Positions(self.file, packed, twin if isinstance(twin, (dict, list)) else None)
        return out

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self._walk(path)[0] == len(path)

    def __iter__(self) -> Iterator[Path]:
        yield ()
        stack: list[tuple[Path, Any]] = [((), self.mirror)]
        while stack:
            prefix, mirror = stack.pop()
            pairs = mirror.items() if type(mirror) is dict else enumerate(mirror) if type(mirror) is list else ()
            for key, entry in pairs:
                path = prefix + (key,)
                yield path
                twin = _split(entry)[1]
                if isinstance(twin, (dict, list)):
                    stack.append((path, twin))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def locate(positions: Mapping[Path, Location], path: Path, fallback: Location) -> Location:
    """The location of ``path`` or of its nearest ancestor that exists in the text (a missing
    field is reported where its parent is), else ``fallback``."""
    if isinstance(positions, Positions):
        return positions.nearest(path)
    for end in range(len(path), -1, -1):
        loc = positions.get(tuple(path[:end]))
        if loc is not None:
            return loc
    return fallback
