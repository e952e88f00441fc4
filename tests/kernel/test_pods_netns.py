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


def test_a_create_killed_before_the_mount_leaves_a_file_that_is_found_and_removed(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pod start killed between claiming the name and mounting leaves an empty file: no
    namespace and no record, so ``owner`` cannot vouch for it. Whoever recorded the name (the
    agent's teardown, ``down``) removes it; a live namespace of the same prefix is left alone."""
    from podnet.cluster.lifecycle import _stop_leftover_pods
    from podnet.workloads.records import LocalPod, save_pod

    stale, live = f"{prefix}node1-default-web-0a1b", f"{prefix}node1-default-db-2c3d"
    os.makedirs(netns.NETNS_DIR, exist_ok=True)
    os.close(os.open(netns.path(stale), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))  # what a kill leaves
    try:
        netns.create(live)
        assert not netns.exists(stale) and netns.owner(stale) is None
        assert netns.stale_files([f"{prefix}node1-"]) == [stale]
        assert netns.remove_stale(live) is False and netns.exists(live)

        save_pod(str(tmp_path), "node1", LocalPod("default", "web", "0a1b", netns=stale, sandbox="s1"))
        assert _stop_leftover_pods(str(tmp_path), "node1") == ["default/web"]
        assert not os.path.lexists(netns.path(stale)) and netns.stale_files([f"{prefix}node1-"]) == []
        assert netns.remove_stale(stale) is False  # idempotent
        assert netns.exists(live)
    finally:
        if os.path.lexists(netns.path(stale)):
            os.unlink(netns.path(stale))
        netns.remove(live)
