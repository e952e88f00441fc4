"""Maglev buckets for endpoints in data maps: a function of the endpoint set, an even spread,
few buckets moved by a change, clear errors."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.services.buckets import PRIMES, SPREAD, bucket_count, maglev, spread_error


def eps(n: int, port: int = 8080) -> list[tuple[str, int]]:
    return [(f"10.244.{i // 250}.{i % 250 + 1}", port) for i in range(n)]


endpoint_sets = st.sets(st.tuples(st.sampled_from([f"10.244.0.{i}" for i in range(1, 60)]),
                                  st.sampled_from([80, 8080, 53])), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(endpoint_sets, st.randoms(use_true_random=False))
def test_a_function_of_the_set_whatever_the_order(endpoints: set[tuple[str, int]], rnd: random.Random) -> None:
    size = bucket_count(len(endpoints))
    ordered = sorted(endpoints)
    shuffled = list(endpoints) * 2  # repeats count once
    rnd.shuffle(shuffled)
    assert maglev(ordered, size) == maglev(shuffled, size)


@settings(max_examples=60, deadline=None)
@given(endpoint_sets)
def test_every_bucket_taken_and_counts_differ_by_at_most_one(endpoints: set[tuple[str, int]]) -> None:
    size = bucket_count(len(endpoints))
    table = maglev(endpoints, size)
    assert len(table) == size
    counts = [table.count(ep) for ep in endpoints]
    assert min(counts) >= size // len(endpoints)
    assert max(counts) - min(counts) <= 1
    assert spread_error(table) <= len(endpoints) / size < 1 / SPREAD + 1e-9


def test_the_spread_error_of_five_endpoints() -> None:
    table = maglev(eps(5), bucket_count(5))
    assert len(table) == 127  # the smallest prime >= 16 x 5
    assert sorted(table.count(ep) for ep in eps(5)) == [25, 25, 25, 26, 26]
    assert spread_error(table) == pytest.approx(26 / 25.4 - 1)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 30, 50, 100])
def test_a_change_moves_few_other_buckets(n: int) -> None:
    """Removed: its own buckets and under 8% of the others; added: its share and under 7% more."""
    size = bucket_count(n)
    before = maglev(eps(n), size)
    for gone in eps(n)[:10]:
        after = maglev([e for e in eps(n) if e != gone], size)
        assert gone not in after and len(after) == size
        moved = sum(1 for b, a in zip(before, after, strict=True) if b != gone and b != a)
        assert moved / size < 0.08, (gone, moved, size)
    grown = maglev(eps(n + 1), size)
    taken = sum(1 for b, a in zip(before, grown, strict=True) if b != a)
    assert grown.count(eps(n + 1)[-1]) in (size // (n + 1), size // (n + 1) + 1)
    assert taken / size < 1 / (n + 1) + 0.07, (taken, size)


def test_no_endpoints_no_buckets() -> None:
    assert maglev([], 31) == ()
    assert spread_error(()) == 0.0


def test_bucket_counts() -> None:
    assert bucket_count(0) == 31 and bucket_count(1) == 31 and bucket_count(2) == 61
    assert all(bucket_count(n) >= SPREAD * n for n in range(1, 4096))
    assert bucket_count(100_000) == PRIMES[-1]
    with pytest.raises(ValueError, match="negative"):
        bucket_count(-1)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be a prime, not 64"):
        maglev(eps(3), 64)
    with pytest.raises(ValueError, match="40 endpoints do not fit in 31 buckets"):
        maglev(eps(40), 31)
