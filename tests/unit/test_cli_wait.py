"""`podnet wait` against a real store in a temporary state directory."""
from pathlib import Path

from click.testing import CliRunner

from podnet.cli.main import cli
from podnet.model import Pod
from podnet.store.open import open_store

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "client1", "namespace": "default", "labels": {"run": "client1"}},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "36000"]}]},
}


def _run(state: Path, *args: str):
    return CliRunner().invoke(cli, ["--state-dir", str(state), *args], obj={})


def test_wait_times_out_while_pending_then_succeeds_when_ready(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.create(Pod.model_validate(POD))
    result = _run(tmp_path, "wait", "--for=condition=Ready", "pod", "client1", "--timeout=300ms")
    assert result.exit_code == 1
    assert "timed out" in result.output and "pod/client1" in result.output

    pod = store.get(Pod, "client1", "default")
    ready = pod.model_copy(update={"status": Pod.model_validate({**POD, "status": {
        "phase": "Running", "podIP": "10.244.0.2",
        "containerStatuses": [{"name": "c", "ready": True}]}}).status})
    store.update_status(ready)
    store.close()
    result = _run(tmp_path, "wait", "--for=condition=Ready", "pod", "-l", "run=client1", "--timeout=5s")
    assert result.exit_code == 0, result.output
    assert "pod/client1 condition met" in result.output


def test_wait_for_delete_and_usage_errors(tmp_path: Path) -> None:
    open_store(str(tmp_path)).close()
    result = _run(tmp_path, "wait", "--for=delete", "pod", "gone", "--timeout=1s")
    # kubectl prints "condition met" for --for=delete too, naming the object kind.group/name
    assert result.exit_code == 0 and result.output == "pod/gone condition met\n"
    result = _run(tmp_path, "wait", "--for=delete", "deployment", "web", "--timeout=1s")
    assert result.output == "deployment.apps/web condition met\n"
    assert _run(tmp_path, "wait", "--for=condition=Ready", "pod").exit_code == 2
    assert _run(tmp_path, "wait", "--for=sideways", "pod", "x").exit_code == 2
