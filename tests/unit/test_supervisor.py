"""``podnet supervise`` on real child processes (no root needed): a crashed service comes back
after a back-off that doubles while it keeps crashing, a hung one is killed by its watchdog,
a service waits for the file it needs, and the status file tells restarts and exit reasons."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.agent.notify import Notifier
from podnet.agent.units import Service, node_services
from podnet.cluster.supervisor import BACKOFF_INITIAL, Supervisor, exit_reason, read_status

PY = sys.executable
#: a loop that speaks the notify protocol as podnet's loops do (through agent/notify.py)
CHECKOUT = str(Path(__file__).resolve().parents[2])
PINGER = (f"import sys, time; sys.path.insert(0, {CHECKOUT!r}); from podnet.agent.notify import Notifier\n"
          "n = Notifier()\nwhile True:\n    n.ready(); n.watchdog(); time.sleep(0.05)")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Path, list[Supervisor]]]:
    started: list[Supervisor] = []
    yield tmp_path, started
    for s in started:
        s.stop.set()
    time.sleep(0.2)
    for s in started:
        s.shutdown()


def start(sup: Supervisor, started: list[Supervisor]) -> threading.Thread:
    started.append(sup)
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    return thread


def wait_for(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_crashing_service_is_restarted_with_a_doubling_back_off(run: tuple[Path, list[Supervisor]]) -> None:
    tmp, started = run
    sup = Supervisor([Service("crasher", "exits at once", (PY, "-c", "raise SystemExit(3)"))], str(tmp), str(tmp))
    start(sup, started)
    wait_for(lambda: sup.children[0].restarts >= 4)
    child = sup.children[0]
    assert child.last_exit == "exited with code 3"
    assert child.backoff >= BACKOFF_INITIAL * 2 ** 3  # 0.1 → 0.2 → 0.4 → 0.8: no hot loop
    status = read_status(str(tmp))
    assert status is not None and status["services"]["crasher"]["restarts"] >= 4


def test_a_killed_service_comes_back_and_the_reason_is_kept(run: tuple[Path, list[Supervisor]]) -> None:
    tmp, started = run
    sup = Supervisor([Service("sleeper", "sleeps", (PY, "-c", "import time; time.sleep(60)"))], str(tmp), str(tmp))
    start(sup, started)
    wait_for(lambda: (read_status(str(tmp)) or {}).get("services", {}).get("sleeper", {}).get("pid"))
    first = read_status(str(tmp))["services"]["sleeper"]["pid"]  # type: ignore[index]
    t0 = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (read_status(str(tmp)) or {})["services"]["sleeper"]["pid"] not in (None, first))
    assert time.monotonic() - t0 < 2.0  # a crashed process is back within 2 s
    st = read_status(str(tmp))["services"]["sleeper"]  # type: ignore[index]
    assert st["restarts"] == 1 and st["last_exit"] == "killed by SIGKILL"


def test_a_hung_service_is_killed_by_its_watchdog(run: tuple[Path, list[Supervisor]]) -> None:
    tmp, started = run
    sup = Supervisor([Service("loop", "pings", (PY, "-c", PINGER), watchdog_sec=1.0)], str(tmp), str(tmp))
    start(sup, started)
    wait_for(lambda: sup.children[0].pings >= 3)
    pid = sup.children[0].proc.pid  # type: ignore[union-attr]
    time.sleep(1.5)  # pinging: the watchdog leaves it alone
    assert sup.children[0].restarts == 0
    os.kill(pid, signal.SIGSTOP)  # hung: no more WATCHDOG=1
    wait_for(lambda: sup.children[0].restarts == 1, timeout=5)
    assert sup.children[0].last_exit == "watchdog: no WATCHDOG=1 for 1 s, killed"


def test_the_watchdog_starts_once_the_service_is_ready(run: tuple[Path, list[Supervisor]]) -> None:
    """As in systemd, a loop whose first pass outlasts its watchdog is starting, not hung (a
    first pass over many pods on a busy machine): it is killed only after READY=1."""
    tmp, started = run
    slow = (f"import sys, time; sys.path.insert(0, {CHECKOUT!r}); from podnet.agent.notify import Notifier\n"
            "time.sleep(2.5)\nn = Notifier()\nwhile True:\n    n.ready(); n.watchdog(); time.sleep(0.05)")
    sup = Supervisor([Service("loop", "a slow first pass", (PY, "-c", slow), watchdog_sec=1.0)], str(tmp), str(tmp))
    start(sup, started)
    wait_for(lambda: sup.children[0].ready, timeout=10)
    assert sup.children[0].restarts == 0, sup.children[0].last_exit
    os.kill(sup.children[0].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]  # hung once ready
    wait_for(lambda: sup.children[0].restarts == 1, timeout=5)
    assert sup.children[0].last_exit == "watchdog: no WATCHDOG=1 for 1 s, killed"


def test_a_service_waits_for_the_file_it_needs(run: tuple[Path, list[Supervisor]]) -> None:
    tmp, started = run
    need = tmp / "bird.conf"
    sup = Supervisor([Service("bird", "needs a config", (PY, "-c", "import time; time.sleep(60)"),
                              requires_file=str(need))], str(tmp), str(tmp))
    start(sup, started)
    time.sleep(0.3)
    assert sup.children[0].proc is None
    need.write_text("")
    wait_for(lambda: sup.children[0].proc is not None)


def test_stopping_the_supervisor_stops_its_services(tmp_path: Path) -> None:
    sup = Supervisor([Service("sleeper", "sleeps", (PY, "-c", "import time; time.sleep(60)"))], str(tmp_path),
                     str(tmp_path))
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    wait_for(lambda: sup.children[0].proc is not None)
    proc = sup.children[0].proc
    sup.stop.set()
    thread.join(15)
    assert proc is not None and proc.poll() is not None
    assert read_status(str(tmp_path)) is None


def test_exit_reasons_and_the_notify_protocol(tmp_path: Path) -> None:
    import socket

    assert exit_reason(-9) == "killed by SIGKILL" and exit_reason(1) == "exited with code 1"
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    n = Notifier(path)
    n.ready()
    n.ready()  # once
    n.watchdog()
    n.watchdog()  # throttled
    sock.settimeout(1)
    assert [sock.recv(64), sock.recv(64)] == [b"READY=1", b"WATCHDOG=1"]
    sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        sock.recv(64)
    Notifier("").watchdog()  # no socket: nothing happens


def test_node_services_are_the_node_processes(tmp_path: Path) -> None:
    services = node_services("n1", str(tmp_path), host_network=True)
    assert [s.name for s in services] == ["agent", "routing", "policy", "proxy", "flow-logger", "bird"]
    assert all("--host-network" in s.argv for s in services[:5]) and "--bird-supervised" in services[1].argv
    assert services[5].argv[:2] == ("bird", "-f") and services[5].requires_file == str(tmp_path / "nodes/n1/bird.conf")
    assert [s.name for s in node_services("n1", str(tmp_path), bgp=False)] == [
        "agent", "routing", "policy", "proxy", "flow-logger"]
    assert [s.name for s in node_services("n1", str(tmp_path), bgp=False, flow_logs=False)] == [
        "agent", "routing", "policy", "proxy"]
    # --fast-path goes to the agent alone (it keeps the tc programs on the node's links)
    fast = node_services("n1", str(tmp_path), bgp=False, fast_path=True)
    assert [("--fast-path" in s.argv) for s in fast] == [True, False, False, False, False]
    assert not any("--fast-path" in s.argv for s in services)
