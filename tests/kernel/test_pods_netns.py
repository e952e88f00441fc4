"""kernel.netns: no-fork namespaces recorded as podnet's; removal only of our own."""
from __future__ import annotations

import os
import subprocess

import pytest

from podnet.errors import AlreadyExists, NotFound, PodnetError
from podnet.kernel import netns

pytestmark = pytest.mark.kernel


def test_create_enter_run_remove(prefix: str) -> None:
    name = f"{prefix}ns"
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


def test_refuses_to_remove_a_namespace_podnet_did_not_create(prefix: str) -> None:
    name = f"{prefix}foreign"
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


def _race_create(name: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        netns.create(name)
        results.put("created")
    except AlreadyExists:
        results.put("exists")
    except BaseException as exc:
        results.put(repr(exc))


def _unmount_all(name: str) -> None:
    """However many mounts a broken create stacked on the name: all gone."""
    for _ in range(10):
        if not os.path.lexists(netns.path(name)):
            return
        subprocess.run(["umount", "-l", netns.path(name)], capture_output=True)
        try:
            netns.remove(name, only_owned=False)
        except OSError:
            pass


def test_processes_racing_to_create_one_name_one_wins(prefix: str) -> None:
    """Several agents or CNI calls creating the same name at once: exactly one creates it,
    the others get AlreadyExists (none may take the fresh file for a stale one and mount a
    second namespace over it)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for i in range(15):
        name = f"{prefix}race{i}"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_race_create, args=(name, barrier, results)) for _ in range(4)]
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.join(30)
            outcome = sorted(results.get(timeout=5) for _ in procs)
            assert outcome == ["created", "exists", "exists", "exists"]
        finally:
            _unmount_all(name)
        assert not os.path.lexists(netns.path(name))
