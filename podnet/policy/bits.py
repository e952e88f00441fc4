"""Sets of small integers as Python ints (bit i: member i), both ways at C speed where it can."""
from __future__ import annotations

from collections.abc import Iterable


def set_bits(value: int) -> list[int]:
    """The positions of the 1 bits, lowest first (``str.find`` skips the zeros at C speed)."""
    text = bin(value)[:1:-1]
    out = []
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def bitset(positions: Iterable[int]) -> int:
    """The int with these bits set, in time linear in how many there are (``|= 1 << i`` in a
    loop copies the growing int each time: quadratic for wide sets)."""
    found = list(positions)
    if not found:
        return 0
    buf = bytearray((max(found) >> 3) + 1)
    for p in found:
        buf[p >> 3] |= 1 << (p & 7)
    return int.from_bytes(buf, "little")
