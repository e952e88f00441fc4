"""Endpoints spread over a fixed number of buckets, Maglev's way (pure).

An endpoint kept in a data map (``dnat ip to … numgen random mod K map @endpoints``) is picked
by bucket: bucket ``i`` of a Service port holds one endpoint, and the packet path draws one of
the ``K`` buckets at random. Changing endpoints then changes map elements only (no rule, no
verdict: the kernel does not re-validate the table, see ``bench/nft_commit.py``), provided
that ``K`` stays fixed while the endpoints change.

Maglev's table population (Eisenbud et al., NSDI 2016) fills the buckets from the endpoint
*set* alone: each endpoint walks its own permutation of the buckets (an offset and a skip from
two hashes of its address and port; ``K`` prime so every skip visits every bucket), and the
endpoints take turns claiming their next free bucket until every bucket is taken. So:

- the same endpoints give the same buckets whatever order they came in (state, not path);
- every endpoint holds ``floor(K/N)`` or ``ceil(K/N)`` buckets: the chance of each differs
  from the exact ``1/N`` by at most ``1/K`` (relative error at most ``N/K``);
- a change moves few buckets besides the ones it must (Maglev's near-minimal disruption): an
  endpoint removed frees its own buckets and moves under 8% of the others, one added takes
  its share and under 7% more (2 to 100 endpoints, ``bucket_count`` buckets; the unit tests
  hold both), so most clients' next pick lands where it would have.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

#: primes for ``bucket_count``, each about twice the one before
PRIMES = (31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521)
#: buckets per endpoint at least: the spread's relative error stays under 1/16
SPREAD = 16

Endpoint = tuple[str, int]


def bucket_count(endpoints: int) -> int:
    """The smallest prime of ``PRIMES`` with at least ``SPREAD`` buckets per endpoint (the
    largest beyond 4,095 endpoints: the error then grows to N/65521)."""
    if endpoints < 0:
        raise ValueError(f"a negative number of endpoints: {endpoints}")
    return next((p for p in PRIMES if p >= SPREAD * endpoints), PRIMES[-1])


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def _hashes(ep: Endpoint) -> tuple[int, int]:
    digest = hashlib.blake2b(f"{ep[0]}:{ep[1]}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")


def maglev(endpoints: Iterable[Endpoint], size: int) -> tuple[Endpoint, ...]:
    """Bucket ``i`` → its endpoint, for ``size`` buckets (a prime, at least as many as there
    are endpoints); () without endpoints."""
    eps: Sequence[Endpoint] = sorted(set(endpoints))
    if not eps:
        return ()
    if not _is_prime(size):
        raise ValueError(f"the bucket count must be a prime, not {size}")
    if len(eps) > size:
        raise ValueError(f"{len(eps)} endpoints do not fit in {size} buckets")
    walks = []
    for ep in eps:
        h1, h2 = _hashes(ep)
        walks.append((h1 % size, h2 % (size - 1) + 1))
    table: list[Endpoint | None] = [None] * size
    steps = [0] * len(eps)
    filled = 0
    while True:
        for i, (offset, skip) in enumerate(walks):
            slot = (offset + steps[i] * skip) % size
            while table[slot] is not None:
                steps[i] += 1
                slot = (offset + steps[i] * skip) % size
            table[slot] = eps[i]
            steps[i] += 1
            filled += 1
            if filled == size:
                return tuple(ep for ep in table if ep is not None)


def spread_error(buckets: Sequence[Endpoint]) -> float:
    """The largest relative difference between an endpoint's share of the buckets and an equal
    share (0.0 when every endpoint holds as many)."""
    if not buckets:
        return 0.0
    counts: dict[Endpoint, int] = {}
    for ep in buckets:
        counts[ep] = counts.get(ep, 0) + 1
    fair = len(buckets) / len(counts)
    return max(abs(c - fair) / fair for c in counts.values())
