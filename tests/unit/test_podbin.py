"""The pods' PATH directory is built safely when several agents start at the same moment."""
import os
import subprocess
import sys
from pathlib import Path

from podnet.workloads.podbin import ensure_podbin

RACE = "from podnet.workloads.podbin import ensure_podbin; import sys; print(ensure_podbin(sys.argv[1]))"


def test_concurrent_builders_all_succeed_with_one_complete_directory(tmp_path: Path) -> None:
    target = str(tmp_path / "podbin")
    procs = [subprocess.Popen([sys.executable, "-c", RACE, target], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in results]
    assert {out.strip() for out, _ in results} == {target}
    names = set(os.listdir(target))
    assert {"wget", "ping", "timeout", "agnhost", ".complete"} <= names
    assert os.readlink(os.path.join(target, "ping")) == "/bin/busybox"
    assert "wget.py" in Path(target, "wget").read_text(), "busybox's wget -T crashes: pods get podnet's"
    assert os.listdir(tmp_path) == ["podbin"], "no staging directory left behind"


def test_existing_directory_is_reused(tmp_path: Path) -> None:
    target = str(tmp_path / "podbin")
    ensure_podbin(target)
    stamp = os.stat(os.path.join(target, ".complete")).st_mtime_ns
    assert ensure_podbin(target) == target
    assert os.stat(os.path.join(target, ".complete")).st_mtime_ns == stamp


def test_an_older_directory_is_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / "podbin"
    target.mkdir()
    (target / ".complete").write_text("")
    os.symlink("/bin/busybox", target / "wget")
    ensure_podbin(str(target))
    assert not os.path.islink(target / "wget")
