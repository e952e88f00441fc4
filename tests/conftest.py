"""Plumbing for every test tier that touches the kernel (tests/kernel, tests/scenario).

- A guard: those tests are skipped, with the reason, where this process is not root or cannot
  create a network namespace.
- A leak check after each test and after each module: a network namespace, a namespace
  record or a process that is new and still there fails the test (reported at teardown) and
  is then removed. Only this run's objects are looked at (see ``podnet.testing.leaks``):
  namespaces under a prefix from the ``prefixes`` fixture, processes started by this run. So a
  kernel test names its namespaces with ``prefix`` / ``prefixes.new()``. A process started by
  one that was running before the test (a module-scoped cluster's agent starting a pod's
  containers) is checked with that process's scope, at the end of the module.

Pod namespaces that an agent of a ``podnet up`` cluster names after its node (``k8s-node01-…``)
carry no test prefix; ``podnet down`` accounts for them, and the cluster tests check it.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.testing import leaks

TESTS = Path(__file__).resolve().parent
KERNEL_TIERS = ("kernel", "scenario", "faults")  # directories whose tests need root and create namespaces

_prefixes = leaks.Prefixes()


def pytest_configure(config: pytest.Config) -> None:
    leaks.tag_processes(secrets.token_hex(8))


def _kernel_tier(path: Path) -> bool:
    return path.resolve().is_relative_to(TESTS) and path.resolve().relative_to(TESTS).parts[0] in KERNEL_TIERS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kernel_items = [item for item in items if _kernel_tier(item.path)]
    reason = leaks.kernel_unavailable() if kernel_items else None
    for item in kernel_items:
        item.add_marker(pytest.mark.kernel)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def prefixes() -> leaks.Prefixes:
    """Hands out namespace-name prefixes; the leak check looks at names under them."""
    return _prefixes


@pytest.fixture
def prefix(prefixes: leaks.Prefixes) -> str:
    """A fresh ``pt-xxxxxx-`` prefix for this test's namespaces."""
    return prefixes.new()


def _checked(what: str, run_dirs: list[str]) -> Iterator[None]:
    before = leaks.footprint(_prefixes, run_dirs)
    yield
    left = leaks.leaked(before, leaks.footprint(_prefixes, run_dirs))
    if left:
        report = left.describe()
        leaks.remove(left)
        pytest.fail(f"{what} left behind (now removed):\n{report}", pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def _module_leak_check(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not _kernel_tier(request.path):
        yield
        return
    yield from _checked(f"module {request.module.__name__}", [str(tmp_path_factory.getbasetemp())])


@pytest.fixture(autouse=True)
def _leak_check(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not _kernel_tier(request.path):
        yield
        return
    yield from _checked(request.node.nodeid, [str(tmp_path_factory.getbasetemp())])
