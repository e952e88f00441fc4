"""kernel.netns: no-fork namespaces recorded as podnet's; removal only of our own."""
from __future__ import annotations

import os
import subprocess

import pytest

from cni_fixtures import uid
from podnet.errors import AlreadyExists, NotFound, PodnetError
from podnet.kernel import netns

pytestmark = pytest.mark.kernel


def test_create_enter_run_remove() -> None:
    name = f"pt-{uid()}-ns"
    try:
        ino = netns.create(name)
        assert netns.exists(name) and netns.owned(name) and name in netns.list_owned()
        assert netns.inode(name) == ino != os.stat("/proc/self/ns/net").st_ino
        with pytest.raises(AlreadyExists):
            netns.create(name)
        out = netns.run_in(name, ["ip", "-o", "link"]).stdout
        assert "lo:" in out and "UP" in out.split("lo:")[1] and len(out.splitlines()) == 1  # only lo, and up
        with netns.enter(name):
            assert os.stat("/proc/thread-self/ns/net").st_ino == ino
        assert os.stat("/proc/thread-self/ns/net").st_ino != ino  # back home
        assert netns.remove(name) is True
        assert netns.remove(name) is False  # idempotent
        assert not netns.exists(name) and name not in netns.list_owned()
        with pytest.raises(NotFound):
            netns.run_in(name, ["true"])
    finally:
        netns.remove(name)


def test_refuses_to_remove_a_namespace_podnet_did_not_create() -> None:
    name = f"pt-{uid()}-foreign"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert netns.exists(name) and not netns.owned(name)
        with pytest.raises(PodnetError, match="not created by podnet"):
            netns.remove(name)
        assert netns.exists(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    assert not netns.exists(name)


def test_bad_names() -> None:
    for bad in ("", "a/b", ".."):
        with pytest.raises(PodnetError):
            netns.path(bad)
