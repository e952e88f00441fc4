"""Fixtures shared by the kernel tests: the CNI lab, the routing lab, the root namespace check.

The root guard and the leak check that every test here gets are in tests/conftest.py.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.cluster.lab import Lab as RoutingLab
from podnet.model import Pod
from podnet.store.open import open_store
from podnet.testing.cni_lab import Lab, cni_lab
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab


@pytest.fixture
def lab(tmp_path: Path, prefix: str) -> Iterator[Lab]:
    """A node namespace with podnet-cni installed and the agent's CNI socket served."""
    with cni_lab(str(tmp_path), prefix, serve=True) as the_lab:
        yield the_lab


@pytest.fixture
def lab_inprocess(tmp_path: Path, prefix: str) -> Iterator[Lab]:
    """The same without an agent: the plugin runs its handler in-process."""
    with cni_lab(str(tmp_path), prefix, serve=False) as the_lab:
        yield the_lab


def root_state() -> tuple[list[str], str, str]:
    """The root namespace's link names, routes and nft tables."""
    link = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout
    route = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout
    return sorted(x["ifname"] for x in json.loads(link)), route, nft


@pytest.fixture
def root_unchanged() -> Iterator[None]:
    """After the test and the fixtures it used: the root namespace is as it was before."""
    before = root_state()
    yield
    assert root_state() == before, "the root namespace's links, routes or nft tables changed"


@pytest.fixture
def make_lab(prefixes: Prefixes, root_unchanged: None) -> Iterator[Callable[..., RoutingLab]]:
    """Builds routing labs (``podnet.cluster.lab.Lab``) of this test's; all are torn down after."""
    labs: list[RoutingLab] = []

    def make(*args: Any, **kw: Any) -> RoutingLab:
        the_lab = RoutingLab(*args, prefix=prefixes.new(), **kw)
        labs.append(the_lab)
        return the_lab.up()

    yield make
    for the_lab in labs:
        the_lab.down()


@pytest.fixture()
def policy_store_lab(tmp_path: Path, prefixes: Prefixes) -> Iterator[tuple[PolicyLab, Any, str]]:
    """A policy lab (web on n1; client1 and client2 on n2) whose pods are in a fresh store, with
    their addresses: (lab, store, state dir)."""
    lab = PolicyLab.build(prefixes.new(sep=""))
    yield from _store_lab(tmp_path, lab)


@pytest.fixture(params=["slow-path", "fast-path"])
def policy_store_lab_both_paths(tmp_path: Path, prefixes: Prefixes,
                                request: pytest.FixtureRequest) -> Iterator[tuple[PolicyLab, Any, str]]:
    """The same, once without and once with the eBPF fast path on both nodes."""
    lab = PolicyLab.build(prefixes.new(sep=""))
    if request.param == "fast-path":
        try:
            lab.enable_fast_path()
        except BaseException:
            lab.close()
            raise
    yield from _store_lab(tmp_path, lab)


def _store_lab(tmp_path: Path, lab: PolicyLab) -> Iterator[tuple[PolicyLab, Any, str]]:
    state_dir = str(tmp_path / "state")
    store = open_store(state_dir)
    try:
        lab.add_pod("default", "web", "n1", {"app": "web"}, [("http", 80, "TCP")])
        lab.add_pod("default", "client1", "n2", {"run": "client1"})
        lab.add_pod("default", "client2", "n2", {"run": "client2"})
        for pod in lab.pod_models():
            created = store.create(Pod.model_validate({k: v for k, v in pod.to_dict().items() if k != "status"}))
            store.update_status(Pod.model_validate({**created.to_dict(), "status": pod.to_dict()["status"]}))
        yield lab, store, state_dir
    finally:
        store.close()
        lab.close()
