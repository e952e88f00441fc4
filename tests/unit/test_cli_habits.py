"""kubectl's habits, and careless input through the command line: each test is a slip a user
makes (a flag after the command, a mistyped --state-dir, a damaged store file, …) and what
kubectl would answer."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner, Result

from podnet.cli import output
from podnet.cli.main import cli
from podnet.store.open import open_store

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def ex(*parts: str) -> str:
    return os.path.join(EXAMPLES, *parts)


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def said(result: Result) -> str:
    """What the user sees on stderr: the policy commands leave a PodnetError to the entry point,
    which prints it as 'error: …'."""
    return result.stderr + (f"error: {result.exception}" if result.exception else "")


@pytest.fixture
def state(tmp_path) -> str:
    path = str(tmp_path / "state")
    open_store(path).close()
    return path


# --- global flags anywhere on the line -------------------------------------------------------

def test_the_state_dir_may_follow_the_command(state: str) -> None:
    assert run("apply", "-f", ex("s1", "clients.yaml"), "--state-dir", state).exit_code == 0
    assert run("get", "pods", "-o", "name", f"--state-dir={state}").stdout == "pod/client1\npod/client2\n"
    assert run("get", "--state-dir", state, "pods", "-o", "name").stdout == "pod/client1\npod/client2\n"


def test_nothing_after_a_double_dash_is_taken_as_a_global_flag() -> None:
    from podnet.cli.main import hoist_global_options

    assert hoist_global_options(["exec", "p", "--", "ls", "--state-dir", "x"]) == \
        ["exec", "p", "--", "ls", "--state-dir", "x"]
    assert hoist_global_options(["get", "pods", "--state-dir", "/s", "-n", "a"]) == \
        ["--state-dir", "/s", "get", "pods", "-n", "a"]


# --- a mistyped --state-dir, a damaged store ----------------------------------------------------

@pytest.mark.parametrize("command", [
    ("get", "pods"), ("describe", "pods"), ("delete", "pod", "web"), ("label", "pod", "web", "a=b"),
    ("wait", "--for=delete", "pod", "web", "--timeout=1s"), ("matrix",), ("lint",),
    ("explain", "--from", "default/a", "--to", "default/b:80"), ("ipam", "show"), ("logs", "web"),
])
def test_read_only_commands_never_create_a_store_at_a_mistyped_path(tmp_path, command: tuple[str, ...]) -> None:
    where = str(tmp_path / "typo")
    result = CliRunner().invoke(cli, ["--state-dir", where, *command])
    assert result.exit_code == 1
    assert f"no cluster at {where}" in said(result) and "--state-dir" in said(result)
    assert not os.path.exists(where)


@pytest.mark.parametrize("damage", [b"this is not a database" * 100, "truncated"])
def test_a_damaged_store_file_is_a_clear_error(state: str, damage: bytes | str) -> None:
    assert run("--state-dir", state, "apply", "-f", ex("s1")).exit_code == 0
    db = os.path.join(state, "store.db")
    if damage == "truncated":
        with open(db, "r+b") as handle:
            handle.truncate(4096)
        for extra in ("-wal", "-shm"):
            if os.path.exists(db + extra):
                os.unlink(db + extra)
    else:
        with open(db, "wb") as handle:
            handle.write(damage)  # type: ignore[arg-type]
    for command in (("get", "pods"), ("apply", "-f", ex("s1"))):
        result = CliRunner().invoke(cli, ["--state-dir", state, *command])
        assert result.exit_code == 1, result.output
        assert "the store" in result.stderr and "cannot be read" in result.stderr and "Traceback" not in result.stderr


# --- apply: dry runs, output, located namespace errors ---------------------------------------------

def test_apply_dry_run_client_and_server_write_nothing(state: str) -> None:
    store = open_store(state)
    before = store.kv.list("")
    store.close()
    client = run("--state-dir", state, "apply", "-f", ex("s1"), "--dry-run=client")
    assert client.stdout.splitlines()[0] == "pod/client1 created (dry run)"
    server = run("--state-dir", state, "apply", "-f", ex("s1"), "--dry-run=server")
    assert server.stdout.splitlines()[0] == "pod/client1 created (server dry run)"
    store = open_store(state)
    assert store.kv.list("") == before
    store.close()
    run("--state-dir", state, "apply", "-f", ex("s1"))
    again = run("--state-dir", state, "apply", "-f", ex("s1", "pod_policy.yaml"), "--dry-run")
    assert again.stdout == "networkpolicy.networking.k8s.io/test-network-policy unchanged (dry run)\n"


def test_a_client_dry_run_needs_no_cluster(tmp_path) -> None:
    where = str(tmp_path / "none")
    result = run("--state-dir", where, "apply", "-f", ex("s1", "clients.yaml"), "--dry-run=client")
    assert result.stdout == "pod/client1 created (dry run)\npod/client2 created (dry run)\n"
    assert not os.path.exists(where)


def test_apply_output_yaml_json_and_name(state: str) -> None:
    as_yaml = yaml.safe_load(run("--state-dir", state, "apply", "-f", ex("s1", "clients.yaml"), "--dry-run=client",
                                 "-o", "yaml").stdout)
    assert as_yaml["kind"] == "List" and [i["metadata"]["name"] for i in as_yaml["items"]] == ["client1", "client2"]
    one = json.loads(run("--state-dir", state, "apply", "-f", ex("s1", "pod_policy.yaml"), "-o", "json").stdout)
    assert one["kind"] == "NetworkPolicy" and one["metadata"]["uid"]
    names = run("--state-dir", state, "apply", "-f", ex("s1", "pod_policy.yaml"), "-o", "name").stdout
    assert names == "networkpolicy.networking.k8s.io/test-network-policy\n"


def test_a_missing_namespace_names_the_file_and_line_of_the_object_needing_it(state: str, tmp_path) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: nowhere\n"
                        "spec:\n  containers:\n  - name: c\n")
    result = run("--state-dir", state, "apply", "-f", str(manifest))
    assert result.exit_code == 1
    assert f'Error from server (NotFound): {manifest}:5:3: Pod/p: namespaces "nowhere" not found' in result.stderr
    assert "nothing was applied" in result.stderr


@pytest.mark.parametrize("field,value,words", [
    ("resources: {limits: {cpu: .inf}}", None, "JSON has no infinity"),
    ("resources: {limits: {cpu: %s}}", "0x" + "F" * 4000, None),  # go-yaml: a string (it fits no integer)
    ("priority: %s", "0x" + "F" * 4000, "expected an integer"),
    ("priority: %s", "-9223372036854775809", "expected an integer"),
])
def test_values_the_store_cannot_hold_are_refused_at_their_field_before_the_store(
        state: str, tmp_path, field: str, value: str | None, words: str | None) -> None:
    """An integer of 4,000 hex digits once reached the store and failed there, unlocated."""
    manifest = tmp_path / "p.yaml"
    line = field % value if value else field
    indent = "    " if line.startswith("resources") else "  "
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n"
                        f"{indent}{line}\n")
    result = run("--state-dir", state, "apply", "-f", str(manifest))
    if words is None:
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 1 and f"{manifest}:8:" in result.stderr and words in result.stderr
    assert len(result.stderr) < 1000


# --- "nothing was applied" only where something was being applied ----------------------------------

def test_the_outcome_of_bad_input_names_what_the_command_was_doing(state: str) -> None:
    broken = ex("broken", "s5-net-httpd.yaml")
    assert "5 errors found; nothing was applied" in run("--state-dir", state, "apply", "-f", broken).stderr
    assert "5 errors found; nothing was deleted" in run("--state-dir", state, "delete", "-f", broken).stderr
    explained = CliRunner().invoke(cli, ["explain", "--from-files", broken, "--from", "a", "--to", "b:80"])
    assert explained.exit_code == 1 and said(explained).startswith("error: 5 errors found\n")
    assert "applied" not in said(explained)


# --- get all, custom columns, mixed resource forms ----------------------------------------------

def test_get_all_lists_pods_services_and_deployments_by_kind(state: str) -> None:
    run("--state-dir", state, "apply", "-f", ex("s1"))
    tables = run("--state-dir", state, "get", "all").stdout.split("\n\n")
    assert [t.splitlines()[1].split()[0] for t in tables] == ["pod/client1", "deployment.apps/web"]
    assert run("--state-dir", state, "get", "all", "-n", "kube-system").stderr == \
        "No resources found in kube-system namespace.\n"


def test_get_custom_columns(state: str) -> None:
    run("--state-dir", state, "apply", "-f", ex("s1", "clients.yaml"))
    out = run("--state-dir", state, "get", "pods", "-o",
              "custom-columns=NAME:.metadata.name,RUN:.metadata.labels.run,IP:.status.podIP,C:{.spec.containers[*].name}")
    assert out.stdout.splitlines() == ["NAME      RUN       IP       C", "client1   client1   <none>   client1",
                                       "client2   client2   <none>   client2"]
    bad = CliRunner().invoke(cli, ["--state-dir", state, "get", "pods", "-o", "custom-columns=NAME"])
    assert bad.exit_code == 1 and "expected <header>:<json-path-expr>" in bad.stderr


@pytest.mark.parametrize("command", [("delete", "deploy", "web", "netpol/x"), ("get", "pods", "pod/client1")])
def test_kind_name_and_kind_slash_name_mixed_are_refused_as_kubectl_refuses_them(state: str, command) -> None:
    run("--state-dir", state, "apply", "-f", ex("s1"))
    result = CliRunner().invoke(cli, ["--state-dir", state, *command])
    assert result.exit_code == 1
    assert "there is no need to specify a resource type as a separate argument" in result.stderr
    assert run("--state-dir", state, "get", "deploy", "web", "-o", "name").stdout == "deployment.apps/web\n"


# --- label ---------------------------------------------------------------------------------------

def test_label_by_selector_by_all_and_several_names(state: str) -> None:
    run("--state-dir", state, "apply", "-f", ex("s1", "clients.yaml"))
    assert run("--state-dir", state, "label", "pods", "-l", "run=client1", "tier=a").stdout == "pod/client1 labeled\n"
    assert run("--state-dir", state, "label", "pods", "--all", "env=dev").stdout == \
        "pod/client1 labeled\npod/client2 labeled\n"
    assert run("--state-dir", state, "label", "pods", "client1", "client2", "env-").stdout == \
        "pod/client1 unlabeled\npod/client2 unlabeled\n"
    nothing = CliRunner().invoke(cli, ["--state-dir", state, "label", "pods", "a=b"])
    assert nothing.exit_code == 1 and "one or more resources must be specified" in nothing.stderr
    both = CliRunner().invoke(cli, ["--state-dir", state, "label", "pods", "client1", "-l", "a=b", "x=y"])
    assert both.exit_code == 1 and "name cannot be provided when a selector is specified" in both.stderr


# --- explain, lint, matrix ---------------------------------------------------------------------------

def test_explain_takes_a_pod_name_in_the_default_namespace() -> None:
    short = run("explain", "--from-files", ex("s1"), "--from", "client2", "--to", "web-0:80", "-o", "json")
    full = run("explain", "--from-files", ex("s1"), "--from", "default/client2", "--to", "default/web-0:80", "-o", "json")
    assert short.exit_code == 0 and json.loads(short.stdout) == json.loads(full.stdout)


def test_lint_says_when_selection_checks_were_skipped_for_lack_of_pods() -> None:
    out = run("lint", "-f", ex("s4"))
    assert out.stdout.splitlines()[-1].startswith("note: no pods in the input, so the checks of what the selectors "
                                                  "select were skipped")
    assert "note:" not in run("lint", "-f", ex("s1")).stdout


def test_offline_tools_do_not_expand_a_million_replicas(tmp_path) -> None:
    deployment = tmp_path / "d.yaml"
    deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
                          "  replicas: 1000000\n  selector: {matchLabels: {app: web}}\n  template:\n"
                          "    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c}]}\n")
    data = json.loads(run("matrix", "--from-files", str(deployment), "-o", "json").stdout)
    assert 1 < len(data["pods"]) <= 10


def test_matrix_summarises_a_large_cluster_on_a_terminal_and_prints_it_to_a_pipe(tmp_path, monkeypatch) -> None:
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:04d}", "namespace": "default",
                                                              "labels": {"app": f"a{i % 7}"}},
             "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": f"10.244.{i // 250}.{i % 250 + 1}"}}
            for i in range(400)]
    dump = tmp_path / "dump.yaml"
    dump.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": pods}))
    piped = run("matrix", "--from-files", str(dump))
    assert len(piped.stdout.splitlines()) == 401
    monkeypatch.setattr(output, "to_terminal", lambda: True)
    summary = run("matrix", "--from-files", str(dump)).stdout.splitlines()
    assert summary[0].startswith("400 pods: the table would be about") and "too large for a terminal" in summary[0]
    assert summary[1] == "  80/TCP: 160,000 of 160,000 connections allowed (100.0 %)"
    assert len(summary) == 3


# --- careless bytes through the command line ----------------------------------------------------------

def test_invalid_utf8_on_stdin_is_refused_as_for_a_file(state: str) -> None:
    result = CliRunner().invoke(cli, ["--state-dir", state, "apply", "-f", "-"], input=b"kind: Pod\nname: \xff\n")
    assert result.exit_code == 1 and "<stdin>:2:7: <document>: not UTF-8 text" in result.stderr


def test_deep_nesting_and_an_alias_bomb_end_in_an_error_not_a_crash(tmp_path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 30000 + "]" * 30000 + "\n")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefghi", "bcdefghij")))
    for path, words in ((deep, "nested more than 100 levels deep"), (bomb, "excessive aliasing")):
        done = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--state-dir", str(tmp_path / "s"),
                               "lint", "-f", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and words in done.stdout, (done.returncode, done.stdout, done.stderr)


# --- the README's references ---------------------------------------------------------------------

def test_the_readme_refers_to_files_that_exist() -> None:
    import re

    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in re.findall(r"`([\w./-]+\.md)`", readme):
        assert os.path.exists(os.path.join(ROOT, name)), name
