"""Valid manifests: files, directories, stdin, multi-document, List dumps, positions."""
from __future__ import annotations

import io
import json
import os

import pytest

from podnet.errors import Location, ValidationError
from podnet.manifest import SOURCE_ANNOTATION, load_paths, load_text, with_source
from podnet.model import IPPool, Namespace, NetworkPolicy, Pod

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")

KUBECTL_DUMP = """\
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    creationTimestamp: "2021-12-05T09:12:01Z"
    labels:
      run: client1
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels:
            .: {}
            f:run: {}
      manager: kubectl-run
      operation: Update
      time: "2021-12-05T09:12:01Z"
    name: client1
    namespace: default
    resourceVersion: "1234"
    uid: 0b7e8a8e-7d1b-4d6e-9d8e-2f0e3a1b2c3d
  spec:
    containers:
    - command: [sleep, "36000"]
      image: busybox
      imagePullPolicy: Always
      name: client1
      resources: {}
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: File
    dnsPolicy: ClusterFirst
    nodeName: k8s-node02
    restartPolicy: Always
    schedulerName: default-scheduler
    securityContext: {}
    terminationGracePeriodSeconds: 30
  status:
    hostIP: 192.168.10.73
    phase: Running
    podIP: 10.244.58.200
    podIPs:
    - ip: 10.244.58.200
    containerStatuses:
    - name: client1
      ready: true
      restartCount: 7
kind: List
metadata:
  resourceVersion: ""
"""


def test_examples_load() -> None:
    for scenario in ("s1", "s2", "s3", "s4", "s5", "s6"):
        loaded = load_paths([os.path.join(EXAMPLES, scenario)], recursive=True)
        assert loaded, scenario
        for item in loaded:
            assert item.source.line >= 1 and item.source.file.endswith(".yaml")


def test_s1_policy_values_and_positions() -> None:
    (item,) = load_paths([os.path.join(EXAMPLES, "s1", "pod_policy.yaml")])
    policy = item.obj
    assert isinstance(policy, NetworkPolicy)
    assert policy.name == "test-network-policy" and policy.namespace == "default"
    assert policy.spec.pod_selector.match_labels == {"app": "web"}
    peers = policy.spec.ingress[0].from_
    assert peers[0].namespace_selector.match_labels == {"project": "default"}
    assert peers[1].pod_selector.match_labels == {"run": "client1"}
    assert policy.spec.ingress[0].ports[0].port == 80 and policy.spec.ingress[0].ports[0].protocol == "TCP"
    assert item.source.line == 3
    assert item.positions[("spec", "ingress", 0, "from", 1, "podSelector")].line == 19
    assert item.locate(("spec", "ingress", 0, "ports", 0, "port")).line == 24
    assert item.locate(("spec", "egress", 0)) == item.positions[("spec",)]


def test_multi_document_and_list_dump_kept_with_server_fields() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n" + KUBECTL_DUMP
    loaded = load_text(text, "dump.yaml")
    assert [type(x.obj) for x in loaded] == [Namespace, Pod]
    pod = loaded[1].obj
    assert pod.status.pod_ip == "10.244.58.200"
    assert pod.status.container_statuses[0].restart_count == 7
    assert pod.metadata.managed_fields[0]["manager"] == "kubectl-run"
    assert pod.metadata.resource_version == "1234"
    # positions are relative to the object, not to the List
    assert loaded[1].positions[("metadata", "name")] == Location("dump.yaml", 25, 5)
    assert loaded[1].source.line == 8
    assert pod.to_dict()["spec"]["dnsPolicy"] == "ClusterFirst"


def test_calicoctl_list_with_unquoted_timestamp() -> None:
    (item,) = load_paths([os.path.join(EXAMPLES, "s6", "ipip", "ippool-dump.yaml")])
    pool = item.obj
    assert isinstance(pool, IPPool)
    assert pool.metadata.creation_timestamp == "2021-12-02T06:38:05Z"  # kept as text
    assert pool.spec.ipip_mode == "Always" and pool.spec.nat_outgoing is True
    assert pool.spec.effective_block_size == 26


def test_ipblock_with_host_bits_is_accepted_like_the_api_server() -> None:
    text = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nspec:\n"
            "  podSelector: {}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.244.1.7/4\n")
    (item,) = load_text(text, "x.yaml")
    assert item.obj.spec.egress[0].to[0].ip_block.cidr == "10.244.1.7/4"


def test_directory_recursive_and_suffixes(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    (tmp_path / "sub" / "b.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n")
    (tmp_path / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}, indent="\t"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    flat = [x.obj.name for x in load_paths([str(tmp_path)])]
    deep = [x.obj.name for x in load_paths([str(tmp_path)], recursive=True)]
    assert flat == ["a", "c"]
    assert deep == ["a", "c", "b"]


def test_stdin() -> None:
    stdin = io.StringIO("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-stdin\n")
    (item,) = load_paths(["-"], stdin=stdin)
    assert item.obj.name == "from-stdin" and item.source.file == "<stdin>"


def test_source_annotation() -> None:
    (item,) = load_text("# c\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n", "ns.yaml")
    obj = with_source(item)
    assert obj.metadata.annotations[SOURCE_ANNOTATION] == "ns.yaml:2"
    assert SOURCE_ANNOTATION not in item.obj.metadata.annotations  # values stay frozen


def test_empty_documents_are_skipped() -> None:
    assert load_text("---\n# only a comment\n---\n", "e.yaml") == []


def test_cluster_scoped_namespace_field_is_dropped() -> None:
    (item,) = load_text("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\n  namespace: x\n"
                        "spec:\n  cidr: 10.0.0.0/16\n", "p.yaml")
    assert item.obj.metadata.namespace is None


def test_not_utf8(tmp_path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"apiVersion: v1\n\xff\xfe\n")
    with pytest.raises(ValidationError) as info:
        load_paths([str(tmp_path / "bin.yaml")])
    assert "UTF-8" in str(info.value) and info.value.problems[0].location.line == 2


KUBECTL_POD_AND_NODE = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: "2021-12-05T09:12:01Z"
  generateName: web-5dcb957ccc-
  labels:
    app: web
    pod-template-hash: 5dcb957ccc
  name: web-5dcb957ccc-4dlkf
  namespace: default
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: ReplicaSet
    name: web-5dcb957ccc
    uid: 7a1c2f3e-1111-2222-3333-444455556666
  resourceVersion: "88123"
  uid: 1c2d3e4f-aaaa-bbbb-cccc-ddddeeeeffff
spec:
  containers:
  - image: nginx
    imagePullPolicy: Always
    name: nginx
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access-abcde
      readOnly: true
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  nodeName: k8s-node01
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  tolerations:
  - effect: NoExecute
    key: node.kubernetes.io/not-ready
    operator: Exists
    tolerationSeconds: 300
  volumes:
  - name: kube-api-access-abcde
    projected:
      defaultMode: 420
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2021-12-05T09:12:01Z"
    status: "True"
    type: Ready
  containerStatuses:
  - containerID: containerd://0123
    image: docker.io/library/nginx:latest
    imageID: docker.io/library/nginx@sha256:0123
    lastState: {}
    name: nginx
    ready: true
    restartCount: 0
    started: true
    state:
      running:
        startedAt: "2021-12-05T09:12:10Z"
  hostIP: 192.168.10.72
  phase: Running
  podIP: 10.244.85.202
  podIPs:
  - ip: 10.244.85.202
  qosClass: BestEffort
  startTime: "2021-12-05T09:12:01Z"
---
apiVersion: v1
kind: Node
metadata:
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
  creationTimestamp: "2021-12-02T06:38:05Z"
  labels:
    kubernetes.io/hostname: k8s-node01
    route-reflector: "true"
  name: k8s-node01
  resourceVersion: "89283550"
  uid: f297de1c-0dc8-46ad-8ffc-4e52a8438bd3
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs:
  - 10.244.1.0/24
status:
  addresses:
  - address: 192.168.10.72
    type: InternalIP
  - address: k8s-node01
    type: Hostname
  allocatable:
    cpu: "4"
    memory: 7990552Ki
  conditions:
  - lastHeartbeatTime: "2021-12-05T09:00:00Z"
    message: kubelet is posting ready status
    reason: KubeletReady
    status: "True"
    type: Ready
  daemonEndpoints:
    kubeletEndpoint:
      Port: 10250
  images:
  - names:
    - docker.io/library/nginx@sha256:0123
    sizeBytes: 56766248
  nodeInfo:
    kubeletVersion: v1.22.4
    osImage: CentOS Linux 7 (Core)
  volumesInUse: []
"""


def test_real_kubectl_dumps_are_accepted_and_kept() -> None:
    pod, node = (item.obj for item in load_text(KUBECTL_POD_AND_NODE, "dump.yaml"))
    assert pod.status.container_statuses[0].state == {"running": {"startedAt": "2021-12-05T09:12:10Z"}}
    assert pod.metadata.owner_references[0]["kind"] == "ReplicaSet"
    assert pod.to_dict()["spec"]["tolerations"][0]["tolerationSeconds"] == 300
    assert node.internal_ip == "192.168.10.72"
    assert node.to_dict()["status"]["nodeInfo"]["kubeletVersion"] == "v1.22.4"
