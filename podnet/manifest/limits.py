"""How much input podnet reads, and how deep and how repetitive it may be.

Every manifest is answered in bounded time and memory, whatever its bytes: an input larger
than MAX_INPUT_BYTES is refused before it is parsed, and parsing stops at the first node past
MAX_NODES, MAX_DEPTH or go-yaml's aliasing rule. The figures are in docs/manifests.md.
"""
from __future__ import annotations

#: Bytes per input (a file, or standard input). A 9,000-pod ``kubectl get -o yaml`` dump fits.
MAX_INPUT_BYTES = 10 * 1024 * 1024
#: Values per input, counting documents and every value an alias stands for (that dump holds
#: about 900,000).
MAX_NODES = 1_000_000
#: Objects per input (kubectl accepts more, one API request each; here they are one batch).
MAX_OBJECTS = 20_000
#: Collections inside collections. The deepest Kubernetes object needs fewer than 20.
MAX_DEPTH = 100
#: Problems listed per input; the rest are counted.
MAX_PROBLEMS = 100

# go-yaml's rule against alias bombs ("document contains excessive aliasing"): of the nodes a
# document decodes to, at most this share may come from expanding aliases.
_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400_000, 4_000_000


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's allowedAliasRatio: 99 % for small documents, falling to 10 % for huge ones."""
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def excessive_aliasing(decoded: int, from_aliases: int) -> bool:
    """go-yaml's test, applied after every node: more than 100 alias-made nodes among more than
    1,000, at a share above the allowed ratio."""
    return from_aliases > 100 and decoded > 1000 and from_aliases / decoded > allowed_alias_ratio(decoded)


def size_text(count: int) -> str:
    """10 MiB, 512 KiB, 900 bytes."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
