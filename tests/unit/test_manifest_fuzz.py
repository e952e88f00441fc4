"""Property: whatever a careless or hostile user feeds `podnet apply`, it answers with located
problems or applies everything — never a traceback, never half an apply (manifest_mutations).

Bounded for `make test`; scripts/fuzz-manifests.sh runs the same check over 10,000+ inputs."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_mutations import check_apply, check_read, generate, seeds

from podnet.store.open import open_store

POOL = seeds()


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_reading_any_mutated_manifest_gives_located_problems_or_objects(tmp_path_factory, r: random.Random) -> None:
    generated = generate(r, POOL)
    path = tmp_path_factory.mktemp("in") / generated.filename
    path.write_bytes(generated.data)
    check_read(str(path))


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> str:
    where = str(tmp_path_factory.mktemp("state"))
    open_store(where).close()
    return where


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_apply_of_any_mutated_manifest_is_all_or_nothing(tmp_path_factory, state: str, r: random.Random) -> None:
    generated = generate(r, POOL)
    path = tmp_path_factory.mktemp("in") / generated.filename
    path.write_bytes(generated.data)
    check_apply(str(path), state)
