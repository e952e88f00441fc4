"""The connectivity matrix as computed: rows per equivalence class, expanded to pods on demand.

Pods of one class have equal rows but for themselves (a pod always reaches itself) and, for a
hostNetwork pod, its node's own pods. So the matrix is kept as one bitset over destination
classes per source class and key (C²/8 bytes per key for C classes instead of n²/8 for n pods:
1.25 GB per key at 100,000 pods), and a pod's row over pods is made only when it is printed or
asked for: the class row's bits are gathered into pod order by ``operator.itemgetter`` over
each pod's class, at C speed (~2 ms per row at 100,000 pods, less than turning it into text).
"""
from __future__ import annotations

import functools
import operator
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

#: how many characters of expanded rows ``ClassRows.bits`` keeps (~128 MB)
TEXT_CACHE_CHARS = 128 << 20


@dataclass(frozen=True)
class ClassRows:
    """Per key, per source class: the destination classes it reaches (an int, bit d = class d).

    ``class_of[i]`` is pod i's class; ``extra[i]`` the pods i reaches beyond its class's row
    and itself (a node's own pods, from the node's hostNetwork pods); absent when none."""

    class_of: tuple[int, ...]
    count: int
    rows: Mapping[str, tuple[int, ...]]
    extra: Mapping[int, frozenset[int]]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.rows)

    @functools.cached_property
    def _gather(self) -> Callable[[str], Sequence[str]]:
        """Class-indexed text → pod-indexed characters (``itemgetter`` of one index returns
        the item, not a tuple)."""
        if len(self.class_of) == 1:
            only = self.class_of[0]
            return lambda text: (text[only],)
        return operator.itemgetter(*self.class_of)

    def class_text(self, key: str, cid: int) -> str:
        """A class row as text: character d is ``1`` when the class reaches class d."""
        return format(self.rows[key][cid], f"0{self.count}b")[::-1]

    @functools.cached_property
    def _expanded(self) -> dict[int, str]:
        """Class row → its pods' text, for the rows printed one after another (few distinct
        class rows serve all the pods); emptied when it would pass ``TEXT_CACHE_CHARS``."""
        return {}

    def _pod_text(self, key: str, cid: int) -> str:
        crow = self.rows[key][cid]
        out = self._expanded.get(crow)
        if out is None:
            out = "".join(self._gather(self.class_text(key, cid)))
            if (len(self._expanded) + 1) * len(out) > TEXT_CACHE_CHARS:
                self._expanded.clear()
            self._expanded[crow] = out
        return out

    def bits(self, key: str, i: int) -> str:
        """Pod i's row as text: character j is ``1`` when pod i reaches pod j."""
        if not self.class_of:
            return ""
        out = self._pod_text(key, self.class_of[i])
        extra = self.extra.get(i)
        if extra:
            chars = list(out)
            chars[i] = "1"
            for j in extra:
                chars[j] = "1"
            return "".join(chars)
        return out if out[i] == "1" else f"{out[:i]}1{out[i + 1:]}"

    def row(self, key: str, i: int) -> int:
        """Pod i's row as an int (bit j: pod j)."""
        return int(self.bits(key, i)[::-1] or "0", 2)

    def allowed(self, key: str, src: int, dst: int) -> bool:
        if src == dst or dst in self.extra.get(src, ()):
            return True
        return bool((self.rows[key][self.class_of[src]] >> self.class_of[dst]) & 1)

    def pod_rows(self, key: str) -> tuple[int, ...]:
        """Every pod's row (n²/8 bytes: for small matrices and callers that compare rows)."""
        return tuple(self.iter_rows(key))

    def class_pods(self, key: str, cid: int) -> int:
        """The pods class ``cid``'s row reaches, as an int over pods (bit j: pod j), without the
        pod itself or the extras: what every pod of the class reaches."""
        return int("".join(self._gather(self.class_text(key, cid)))[::-1], 2)

    def iter_rows(self, key: str) -> Iterator[int]:
        """Every pod's row in order, each distinct class row expanded once (the expansions are
        kept for the pass: one n-bit int per distinct class row, far fewer than the classes)."""
        rows = self.rows[key]
        expanded: dict[int, int] = {}
        for i, cid in enumerate(self.class_of):
            crow = rows[cid]
            base = expanded.get(crow)
            if base is None:
                base = expanded[crow] = self.class_pods(key, cid)
            row = base | (1 << i)
            for j in self.extra.get(i, ()):
                row |= 1 << j
            yield row

    @functools.cached_property
    def _by_size(self) -> tuple[tuple[int, int], ...]:
        """(class size, the classes of that size as a bitset): a weighted popcount is then one
        AND and ``bit_count`` per distinct size."""
        sizes = Counter(self.class_of)
        masks: dict[int, int] = {}
        for cid, size in sizes.items():
            masks[size] = masks.get(size, 0) | (1 << cid)
        return tuple(sorted(masks.items()))

    def count_allowed(self, key: str) -> int:
        """How many (source, destination) pod pairs are allowed, without expanding a row."""
        rows = self.rows[key]
        members = Counter(self.class_of)
        reached: dict[int, int] = {}
        total = 0
        for cid, size in members.items():
            crow = rows[cid]
            pods = reached.get(crow)
            if pods is None:
                pods = reached[crow] = sum(s * (crow & mask).bit_count() for s, mask in self._by_size)
            total += size * pods
        for i, cid in enumerate(self.class_of):  # what a pod reaches beyond its class's row
            for j in (i, *self.extra.get(i, ())):
                if not (rows[cid] >> self.class_of[j]) & 1:
                    total += 1
        return total


class PodRows(Mapping[str, tuple[int, ...]]):
    """``Matrix.rows`` of a class-level matrix: each key's pod rows expanded when asked for and
    not kept (at 100,000 pods one key is 1.25 GB)."""

    def __init__(self, by_class: ClassRows) -> None:
        self._by_class = by_class

    def __getitem__(self, key: str) -> tuple[int, ...]:
        return self._by_class.pod_rows(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_class.rows)

    def __len__(self) -> int:
        return len(self._by_class.rows)

    def __contains__(self, key: object) -> bool:
        return key in self._by_class.rows

    def __repr__(self) -> str:
        return f"PodRows(keys={list(self._by_class.rows)}, classes={self._by_class.count})"
