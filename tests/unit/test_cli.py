"""The kubectl-style commands, driven through click's CliRunner against a temporary state dir."""
from __future__ import annotations

import json
import os
import re

import pytest
import yaml
from click.testing import CliRunner, Result

from podnet.cli.main import cli
from podnet.store.open import open_store

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def ex(*parts: str) -> str:
    return os.path.join(EXAMPLES, *parts)


@pytest.fixture
def podnet(tmp_path):
    runner = CliRunner()
    state = str(tmp_path / "state")
    open_store(state).close()  # a cluster's store, as `podnet up` leaves it (reads refuse a missing one)

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--state-dir", state, *args], input=input, catch_exceptions=False)

    run.state = state  # type: ignore[attr-defined]
    return run


def dump_store(state: str) -> tuple[int, dict[str, dict]]:
    store = open_store(state, bootstrap=False)
    try:
        records, revision = store.kv.list("")
        return revision, {r.key: r.value for r in records}
    finally:
        store.close()


def cells(line: str) -> list[str]:
    return re.split(r"\s{3,}", line.strip())


def test_apply_s1_prints_kubectl_lines_then_unchanged(podnet) -> None:
    first = podnet("apply", "-f", ex("s1"))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "pod/client1 created",
        "pod/client2 created",
        "networkpolicy.networking.k8s.io/test-network-policy created",
        "deployment.apps/web created",
    ]
    again = podnet("apply", "-f", ex("s1", "pod_policy.yaml"))
    assert again.stdout == "networkpolicy.networking.k8s.io/test-network-policy unchanged\n"


def test_get_tables(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    pods = podnet("get", "pods").stdout.splitlines()
    assert pods[0] == "NAME      READY   STATUS    RESTARTS   AGE"
    assert cells(pods[1])[:4] == ["client1", "0/1", "Pending", "0"]
    wide = podnet("get", "po", "-o", "wide").stdout.splitlines()
    assert cells(wide[0]) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert cells(wide[2])[5:] == ["<none>", "<none>", "<none>", "<none>"]
    policies = podnet("get", "networkpolicy").stdout.splitlines()
    assert policies[0] == "NAME                  POD-SELECTOR   AGE"
    assert cells(policies[1])[:2] == ["test-network-policy", "app=web"]
    deploys = podnet("get", "deploy").stdout.splitlines()
    assert cells(deploys[0]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert cells(deploys[1])[:4] == ["web", "0/1", "0", "0"]
    namespaces = podnet("get", "ns", "--show-labels").stdout.splitlines()
    assert cells(namespaces[0]) == ["NAME", "STATUS", "AGE", "LABELS"]
    assert cells(namespaces[1])[0::3] == ["default", "kubernetes.io/metadata.name=default"]


def test_get_of_several_kinds_names_rows_with_their_kind_as_kubectl(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    tables = podnet("get", "pods,netpol").stdout.split("\n\n")
    assert [cells(line)[0] for line in tables[0].splitlines()] == ["NAME", "pod/client1", "pod/client2"]
    assert cells(tables[1].splitlines()[1])[0] == "networkpolicy.networking.k8s.io/test-network-policy"
    # kubectl names rows by kind when several kinds are asked for, even if one is found
    # (`kubectl get all` on a fresh cluster prints service/kubernetes)
    only_pods = podnet("get", "pods,svc").stdout.splitlines()
    assert cells(only_pods[1])[0] == "pod/client1"
    assert cells(podnet("get", "pods").stdout.splitlines()[1])[0] == "client1"


def test_describe_of_a_cluster_scoped_kind_finding_nothing(podnet) -> None:
    assert podnet("describe", "ippools").stderr == "No resources found.\n"
    assert podnet("describe", "pods").stderr == "No resources found in default namespace.\n"


@pytest.mark.parametrize("command", [("get", "pods"), ("describe", "pods"), ("delete", "pods"),
                                     ("wait", "pods", "--for=delete")])
def test_a_bad_label_selector_is_a_user_error(podnet, command) -> None:
    result = podnet(*command, "-l", "a b=c")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid label selector 'a b=c': key 'a b' is not valid")
    assert "pydantic" not in result.stderr


@pytest.mark.parametrize("command", ["get", "describe", "delete"])
def test_names_and_a_selector_together_are_refused_as_kubectl(podnet, command) -> None:
    result = podnet(command, "pod", "client1", "-l", "app=web")
    assert result.exit_code == 1
    assert "name cannot be provided when a selector is specified" in result.stderr


def test_get_all_namespaces_and_selector(podnet) -> None:
    assert podnet("apply", "-f", ex("s1"), "-f", ex("s2"), "-f", ex("s4")).exit_code == 0
    out = podnet("get", "netpol", "-A").stdout.splitlines()
    assert cells(out[0]) == ["NAMESPACE", "NAME", "POD-SELECTOR", "AGE"]
    assert [cells(line)[:2] for line in out[1:3]] == [["cs1", "allow-all-egress"], ["cs1", "deny-all-egress"]]
    labelled = podnet("get", "pods", "-A", "-l", "run in (client1,client)", "-o", "name").stdout.splitlines()
    assert labelled == ["pod/client1", "pod/client"]  # sorted by namespace, then name
    assert podnet("get", "pods", "-n", "test", "-o", "name").stdout == "pod/client\n"


def test_get_output_yaml_json_name(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    one = yaml.safe_load(podnet("get", "netpol", "test-network-policy", "-o", "yaml").stdout)
    assert one["kind"] == "NetworkPolicy" and one["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    assert one["metadata"]["annotations"]["podnet.io/source"].endswith("pod_policy.yaml:3")
    assert one["metadata"]["resourceVersion"].isdigit() and one["metadata"]["uid"]
    many = yaml.safe_load(podnet("get", "pods", "-o", "yaml").stdout)
    assert many["kind"] == "List" and [i["metadata"]["name"] for i in many["items"]] == ["client1", "client2"]
    as_json = json.loads(podnet("get", "pod", "client2", "-o", "json").stdout)
    assert as_json["spec"]["containers"][0]["command"] == ["sleep", "36000"]
    assert podnet("get", "pods,netpol", "-o", "name").stdout.splitlines() == [
        "pod/client1", "pod/client2", "networkpolicy.networking.k8s.io/test-network-policy"]
    assert podnet("get", "pod/client1", "-o", "name").stdout == "pod/client1\n"


def test_yaml_dump_applies_back_unchanged(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    dump = podnet("get", "pods", "-o", "yaml").stdout
    result = podnet("apply", "-f", "-", input=dump)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["pod/client1 unchanged", "pod/client2 unchanged"]


def test_calico_kinds_use_calicoctl_columns(podnet) -> None:
    assert podnet("apply", "-f", ex("s6")).exit_code == 0
    wide = podnet("get", "ippool", "-o", "wide").stdout.splitlines()
    assert wide[0] == "NAME                  CIDR            NAT    IPIPMODE   VXLANMODE     DISABLED   SELECTOR"
    assert cells(wide[1]) == ["default-ipv4-ippool", "10.244.0.0/16", "true", "Never", "CrossSubnet", "false", "all()"]
    assert cells(podnet("get", "ippools").stdout.splitlines()[0]) == ["NAME", "CIDR", "SELECTOR"]
    peers = podnet("get", "bgppeer").stdout.splitlines()
    assert cells(peers[0]) == ["NAME", "PEERIP", "NODE", "ASN"]
    assert cells(peers[1]) == ["peer-with-route-reflectors", "route-reflector == 'true'", "all()"]
    config = podnet("get", "bgpconfig").stdout.splitlines()
    assert cells(config[1]) == ["default", "Info", "false", "64512"]


def test_no_resources_found(podnet) -> None:
    result = podnet("get", "pods")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "No resources found in default namespace.\n"
    assert podnet("get", "pods", "-A").stderr == "No resources found.\n"


def test_get_missing_and_unknown(podnet) -> None:
    missing = podnet("get", "pod", "nope")
    assert missing.exit_code == 1
    assert missing.stderr == 'Error from server (NotFound): pods "nope" not found\n'
    two = podnet("get", "pod", "a", "b")  # one line per object, as kubectl
    assert two.stderr == ('Error from server (NotFound): pods "a" not found\n'
                          'Error from server (NotFound): pods "b" not found\n')
    unknown = podnet("get", "netpols")
    assert unknown.exit_code == 1
    assert 'doesn\'t have a resource type "netpols"' in unknown.stderr and "did you mean" in unknown.stderr


def test_usage_errors_exit_2(podnet) -> None:
    assert podnet("get", "pods", "-o", "table").exit_code == 2
    assert podnet("apply").exit_code == 2
    assert podnet("get").exit_code == 2


def test_label_as_kubectl(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    assert podnet("label", "ns", "default", "project=default").stdout == "namespace/default labeled\n"
    refused = podnet("label", "ns", "default", "project=other")
    assert refused.exit_code == 1
    assert "'project' already has a value (default), and --overwrite is false" in refused.stderr
    assert podnet("label", "ns", "default", "project=other", "--overwrite").exit_code == 0
    assert podnet("label", "pod/client1", "tier=front").stdout == "pod/client1 labeled\n"
    assert podnet("label", "pod", "client1", "tier-").stdout == "pod/client1 unlabeled\n"
    assert podnet("label", "pod", "client1", "run=client1").stdout == "pod/client1 not labeled\n"
    labels = yaml.safe_load(podnet("get", "ns", "default", "-o", "yaml").stdout)["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": "default", "project": "other"}
    bad = podnet("label", "pod", "client1", "bad key=x")
    assert bad.exit_code == 1 and "invalid label spec" in bad.stderr
    assert podnet("label", "pod", "ghost", "a=b").exit_code == 1


def test_delete_by_name_file_and_idempotence(podnet) -> None:
    podnet("apply", "-f", ex("s1"), "-f", ex("s2"))
    out = podnet("delete", "pod", "client1")
    assert out.stdout == 'pod "client1" deleted\n'
    again = podnet("delete", "pod", "client1")
    assert again.exit_code == 1 and 'pods "client1" not found' in again.stderr
    assert podnet("delete", "pod", "client1", "--ignore-not-found").exit_code == 0
    by_file = podnet("delete", "-f", ex("s2"))
    assert by_file.exit_code == 0
    assert 'networkpolicy.networking.k8s.io "deny-from-other-namespaces" deleted' in by_file.stdout
    assert 'namespace "test" deleted' in by_file.stdout
    assert podnet("get", "pods", "-n", "test").stderr.startswith("No resources found")
    protected = podnet("delete", "ns", "default")
    assert protected.exit_code == 1 and "may not be deleted" in protected.stderr


def test_describe_network_policy_layout(podnet) -> None:
    podnet("apply", "-f", ex("s1"))
    text = podnet("describe", "netpol", "test-network-policy").stdout
    lines = text.splitlines()
    assert lines[0] == "Name:         test-network-policy"
    assert lines[1] == "Namespace:    default"
    assert lines[2].startswith("Created on:   ")
    body = "\n".join(lines[5:])
    assert body == (
        "Spec:\n"
        "  PodSelector:     app=web\n"
        "  Allowing ingress traffic:\n"
        "    To Port: 80/TCP\n"
        "    From:\n"
        "      NamespaceSelector: project=default\n"
        "    From:\n"
        "      PodSelector: run=client1\n"
        "  Not affecting egress traffic\n"
        "  Policy Types: Ingress"
    )


def test_describe_other_kinds(podnet) -> None:
    podnet("apply", "-f", ex("s1"), "-f", ex("s6"))
    pod = podnet("describe", "pod", "client1").stdout
    assert "Name:         client1" in pod and "Labels:       run=client1" in pod and "      sleep" in pod
    pool = podnet("describe", "ippool", "default-ipv4-ippool").stdout
    assert "Vxlan Mode:" in pool and "CrossSubnet" in pool and "Kind:         IPPool" in pool


def test_describe_pod_start_time_as_kubectl(podnet) -> None:
    from podnet.model import Pod

    store = open_store(podnet.state)  # status is the agent's to write: create keeps it, apply does not
    try:
        store.create(Pod.model_validate({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c"}]},
                                         "status": {"phase": "Running", "startTime": "2026-11-21T18:04:05Z"}}))
    finally:
        store.close()
    lines = podnet("describe", "pod", "web").stdout.splitlines()
    assert "Start Time:   Sat, 21 Nov 2026 18:04:05 +0000" in lines


def test_invalid_manifest_changes_nothing(podnet, tmp_path) -> None:
    podnet("apply", "-f", ex("s1"))
    before = dump_store(podnet.state)
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n")
    result = podnet("apply", "-f", str(good), "-f", ex("broken", "s5-net-httpd.yaml"))
    assert result.exit_code == 1
    assert "s5-net-httpd.yaml:12:9: spec.ingress[0].from[0].podSelector.matchLabels" in result.stderr
    assert "nothing was applied" in result.stderr
    assert dump_store(podnet.state) == before


def test_missing_namespace_changes_nothing(podnet, tmp_path) -> None:
    before = dump_store(podnet.state)
    manifest = tmp_path / "p.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\n"
                        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: nowhere\n"
                        "spec:\n  containers:\n  - name: c\n")
    result = podnet("apply", "-f", str(manifest))
    assert result.exit_code == 1 and 'namespaces "nowhere" not found' in result.stderr
    assert dump_store(podnet.state) == before


def test_namespace_flag(podnet, tmp_path) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: kube-system\n"
                        "spec:\n  containers:\n  - name: c\n")
    clash = podnet("apply", "-f", str(manifest), "-n", "default")
    assert clash.exit_code == 1 and "does not match the namespace" in clash.stderr
    assert podnet("apply", "-f", str(manifest), "-n", "kube-system").exit_code == 0
    assert podnet("get", "pods", "-n", "kube-system", "-o", "name").stdout == "pod/p\n"


def test_recursive_directory(podnet) -> None:
    flat = podnet("apply", "-f", ex("s3"))
    assert flat.stdout.splitlines() == [
        "networkpolicy.networking.k8s.io/default-deny-all-egress created",
        "networkpolicy.networking.k8s.io/internet-egress created",
    ]
    deep = podnet("apply", "-f", ex("s3", "narrowed"))
    assert deep.stdout == "networkpolicy.networking.k8s.io/default-deny-all-egress configured\n"


def test_completion_script(podnet) -> None:
    result = podnet("completion", "bash")
    assert result.exit_code == 0 and "_PODNET_COMPLETE" in result.stdout
    assert podnet("completion", "tcsh").exit_code == 2


def test_help_everywhere(podnet) -> None:
    for command in ("apply", "delete", "get", "label", "describe", "completion"):
        result = podnet(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout


def test_same_object_twice_in_one_apply_names_both_places(podnet) -> None:
    result = podnet("apply", "-f", ex("s3"), "-f", ex("s3", "narrowed"))
    assert result.exit_code == 1
    assert "defined twice" in result.stderr and "default-deny-all-egress.yaml:2" in result.stderr
    assert "dns-only-kube-dns.yaml:5" in result.stderr
    assert podnet("get", "netpol").stderr.startswith("No resources found")


def test_name_completion_from_store(podnet, monkeypatch) -> None:
    podnet("apply", "-f", ex("s1"))
    runner = CliRunner()
    env = {"_PODNET_COMPLETE": "bash_complete", "COMP_WORDS": f"podnet --state-dir {podnet.state} get pods cl",
           "COMP_CWORD": "5"}
    result = runner.invoke(cli, [], env=env, prog_name="podnet")
    assert "client1" in result.output and "client2" in result.output
    env["COMP_WORDS"], env["COMP_CWORD"] = f"podnet --state-dir {podnet.state} get netp", "4"
    assert "netpol" in runner.invoke(cli, [], env=env, prog_name="podnet").output


def test_logs_tail_counts_lines_from_the_end_as_kubectl(podnet) -> None:
    from podnet.agent.pods import pod_dir

    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
                "spec: {nodeName: n1, containers: [{name: c, image: nginx}]}\n")
    assert podnet("apply", "-f", "-", input=manifest).exit_code == 0
    log_dir = pod_dir(os.path.abspath(podnet.state), "n1", "default", "web")
    os.makedirs(log_dir)
    with open(os.path.join(log_dir, "c.log"), "w") as f:
        f.write("one\ntwo\nthree\n")
    assert podnet("logs", "web").stdout == "one\ntwo\nthree\n"
    assert podnet("logs", "web", "--tail", "2").stdout == "two\nthree\n"
    assert podnet("logs", "web", "--tail", "0").stdout == ""
