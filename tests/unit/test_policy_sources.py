"""Where the policy engine's cluster comes from: manifests on disk, or a store snapshot."""
from __future__ import annotations

from pathlib import Path

from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.sources import cluster_from_files, cluster_from_snapshot, no_location
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: np, namespace: team}}
spec:
  podSelector: {{}}
  ingress:
  - ports: [{{port: {port}}}]
"""


def test_files_give_the_cluster_and_each_policy_fields_line() -> None:
    state, locate = cluster_from_files([str(EXAMPLES / "s1")])
    assert sorted(ep.key for ep in state.pods) == ["default/client1", "default/client2", "default/web-0"]
    assert [p.ref for p in state.policies] == ["default/test-network-policy"]
    where = locate("default/test-network-policy", ("spec", "ingress", 0, "from", 1))
    assert where is not None and where.endswith("pod_policy.yaml:19")  # the podSelector peer
    assert locate("default/other", ("spec",)) is None


def test_a_later_manifest_replaces_an_earlier_one_and_namespaces_are_implied(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(POLICY.format(port=80))
    (tmp_path / "b.yaml").write_text(POLICY.format(port=81))
    state, _ = cluster_from_files([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    [policy] = state.policies
    assert [port.port for rule in policy.ingress for port in rule.ports or ()] == [81]
    assert {"default", "team"} <= set(state.namespace_labels)


def test_a_deployment_with_its_pods_in_the_files_adds_none(tmp_path: Path) -> None:
    web = (EXAMPLES / "s1" / "web.yaml").read_text()
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: web-abc, namespace: default, labels: {app: web}}\n"
           "spec: {containers: [{name: nginx, image: nginx}]}\n")
    (tmp_path / "all.yaml").write_text(web + "\n---\n" + pod)
    state, _ = cluster_from_files([str(tmp_path / "all.yaml")])
    assert [ep.key for ep in state.pods] == ["default/web-abc"]


def test_a_snapshot_gives_the_same_cluster_as_its_objects() -> None:
    store = ResourceStore(MemoryStore())
    store.bootstrap()
    store.create(Pod.model_validate({"metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
    store.create(NetworkPolicy.model_validate({"metadata": {"name": "np", "namespace": "default"},
                                               "spec": {"podSelector": {}}}))
    snap = store.snapshot()
    state = cluster_from_snapshot(snap, ipblock_matches_pods=False)
    assert [ep.key for ep in state.pods] == ["default/p"]
    assert [p.ref for p in state.policies] == ["default/np"]
    assert set(state.namespace_labels) == {n.metadata.name for n in snap.of(Namespace)}
    assert state.ipblock_matches_pods is False
    assert no_location("default/np", ("spec",)) is None
