"""Pure parts of the pod lifecycle: probe and hook validation as the API server does it, the
container environment, the kubelet's status and back-off, kubectl's delete flags, describe's
probe and event lines, and the pod garbage collector's part for deletions."""
from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from pydantic import ValidationError

from podnet.agent.apps_control import AppsController
from podnet.agent.podstatus import Probed, pod_status
from podnet.cli.delete import grace_period_for
from podnet.cli.describe import describe, describe_probe
from podnet.cli.rollout import status_message
from podnet.model import Deployment, Event, Node, Pod, Service
from podnet.model.probes import Probe
from podnet.store.memory import MemoryStore
from podnet.store.resources import ResourceStore
from podnet.workloads.env import ContainerConfigError, PodFacts, container_env, expand
from podnet.workloads.images import launch_for
from podnet.workloads.records import ContainerState, LocalPod


def pod(container: dict, **spec: object) -> Pod:
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns1",
                                                                             "uid": "u-1", "labels": {"a": "b"}},
                               "spec": {"containers": [{"name": "c", "image": "busybox", **container}], **spec}})


@pytest.mark.parametrize("field,probe,message", [
    ("readinessProbe", {}, "must specify a handler type"),
    ("readinessProbe", {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}, "more than 1 handler type"),
    ("livenessProbe", {"exec": {"command": ["true"]}, "successThreshold": 2}, "successThreshold: must be 1"),
    ("readinessProbe", {"exec": {"command": ["true"]}, "periodSeconds": -1}, "periodSeconds: must be greater"),
    ("readinessProbe", {"httpGet": {"port": "Not_A_Name"}}, "port"),
    ("readinessProbe", {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 5}, "must not be set"),
    ("lifecycle", {"preStop": {}}, "must specify a handler type"),
    ("env", [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}], "Unsupported value"),
    ("env", [{"name": "X", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     "may not be specified"),
])
def test_invalid_probes_hooks_and_env_are_refused(field: str, probe: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        pod({field: probe})


def test_probe_defaults_and_describe_line() -> None:
    probe = Probe.model_validate({"httpGet": {"path": "/healthz", "port": 8080}})
    assert (probe.delay, probe.timeout, probe.period, probe.successes, probe.failures) == (0, 1, 10, 1, 3)
    assert describe_probe(probe) == "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
    grpc = Probe.model_validate({"grpc": {"port": 9000}, "periodSeconds": 2})
    assert describe_probe(grpc).startswith("grpc <pod>:9000  delay=0s timeout=1s period=2s")
    round_trip = pod({"readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}})
    assert round_trip.to_dict()["spec"]["containers"][0]["readinessProbe"] == {"tcpSocket": {"port": "http"},
                                                                              "periodSeconds": 1}


def _service(name: str, ns: str, ip: str | None, ports: list[dict]) -> Service:
    spec: dict = {"ports": ports} if ports else {}
    if ip:
        spec["clusterIP"] = ip
    return Service.model_validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                                   "spec": spec})


def test_container_environment() -> None:
    p = pod({"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(WEB_SERVICE_HOST)-$(NOPE)-$$(A)"},
                     {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                     {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}]},
            nodeName="n1")
    services = [_service("web", "ns1", "10.96.0.5", [{"port": 80, "name": "http"}]),
                _service("kubernetes", "default", "10.96.0.1", [{"port": 443, "name": "https"}]),
                _service("other", "elsewhere", "10.96.0.9", [{"port": 1}]),
                _service("pending", "ns1", None, [{"port": 1}])]
    env = container_env(p, p.spec.containers[0], services, PodFacts("10.244.0.7", "192.168.1.2"))
    assert env["B"] == "x-10.96.0.5-$(NOPE)-$(A)" and env["IP"] == "10.244.0.7" and env["SA"] == "default"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["WEB_PORT_80_TCP_PROTO"] == "tcp" and "OTHER_SERVICE_HOST" not in env
    assert not any(k.startswith("PENDING_") for k in env)
    no_links = pod({}, enableServiceLinks=False)
    env = container_env(no_links, no_links.spec.containers[0], services, PodFacts("", ""))
    assert "WEB_SERVICE_HOST" not in env and "KUBERNETES_SERVICE_HOST" in env
    missing = pod({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})
    with pytest.raises(ContainerConfigError, match='configmap "cfg" not found'):
        container_env(missing, missing.spec.containers[0], [], PodFacts("", ""))
    assert expand("$(A)$$(A)$(B", {"A": "1"}) == "1$(A)$(B"


def test_agnhost_subcommands_map_to_workloads() -> None:
    def argv(args: list[str]) -> tuple[str, ...]:
        p = pod({"image": "registry.k8s.io/e2e-test-images/agnhost:2.39", "args": args})
        return launch_for(p, p.spec.containers[0], "/pb").argv

    assert argv(["netexec", "--http-port=8080", "--udp-port", "-1"])[-3:] == ("--delay-shutdown", "0", "tcp:8080")
    netexec = argv(["netexec", "--http-port=9000", "--delay-shutdown=5"])
    assert "--delay-shutdown" in netexec and "5" in netexec and "tcp:9000" in netexec and "udp:8081" in netexec
    assert argv(["pause"])[-3:] == ("pause", "--delay-shutdown", "0")
    assert "--liveness" in argv(["liveness"])
    assert argv(["grpc-health-checking", "--port=5000"])[-1] == "--port=5000"


def _lp(*containers: ContainerState) -> LocalPod:
    return LocalPod("ns1", "p", "u-1", netns="x", sandbox="s" * 64, phase="Running", start_time="t",
                    containers=list(containers), cni_result={"ips": [{"address": "10.244.0.7/32"}]})


def test_pod_status_conditions_keep_their_transition_times() -> None:
    st = ContainerState("c", "busybox", ["sleep"], {}, pid=10, started_at="2024-01-01T00:00:00Z")
    first = pod_status(_lp(st), {"c": Probed(ready=False, started=True)}, "192.168.1.2", "T1")
    cond = {c["type"]: c for c in first["conditions"]}
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "ContainersNotReady"
    assert cond["Ready"]["message"] == "containers with unready status: [c]"
    assert cond["PodScheduled"]["lastTransitionTime"] == "T1"
    second = pod_status(_lp(st), {"c": Probed(ready=True, started=True)}, "192.168.1.2", "T2", first["conditions"])
    cond = {c["type"]: c for c in second["conditions"]}
    assert cond["Ready"] == {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": "T2"}
    assert cond["Initialized"]["lastTransitionTime"] == "T1"
    assert second["containerStatuses"][0]["ready"] and second["podIP"] == "10.244.0.7"
    crashed = ContainerState("c", "busybox", ["false"], {}, pid=10, exited_at=5.0, last_exit=137, backoff=20,
                             last_terminated={"exitCode": 137, "reason": "Error"}, restarts=2)
    status = pod_status(_lp(crashed), {}, None, "T3")["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff" and "back-off 20s" in \
        status["state"]["waiting"]["message"]
    assert status["lastState"] == {"terminated": {"exitCode": 137, "reason": "Error"}} and status["restartCount"] == 2


def test_kubectl_delete_grace_rules() -> None:
    assert grace_period_for(-1, False, False) is None
    assert grace_period_for(0, False, False) == 1  # 0 needs --force
    assert grace_period_for(0, False, True) == 0 and grace_period_for(-1, False, True) == 0
    assert grace_period_for(-1, True, False) == 1 and grace_period_for(7, False, False) == 7
    with pytest.raises(click.UsageError):
        grace_period_for(5, True, False)


def test_rollout_status_messages() -> None:
    def dep(generation: int, **status: object) -> Deployment:
        return Deployment.model_validate({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}},
            "status": {"observedGeneration": 2, **status}})
    assert status_message(dep(3))[0] == "Waiting for deployment spec update to be observed..."
    assert status_message(dep(2, updatedReplicas=1))[0] == \
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'
    assert status_message(dep(2, updatedReplicas=3, replicas=4))[0] == \
        'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'
    assert status_message(dep(2, updatedReplicas=3, replicas=3, availableReplicas=2))[0] == \
        'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...'
    assert status_message(dep(2, updatedReplicas=3, replicas=3, availableReplicas=3)) == \
        ('deployment "web" successfully rolled out', True)


def test_describe_lists_events_as_kubectl() -> None:
    p = pod({"readinessProbe": {"exec": {"command": ["cat", "ready"]}, "periodSeconds": 1}})
    event = Event.model_validate({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": "ns1"},
        "involvedObject": {"kind": "Pod", "name": "p", "uid": "u-1"}, "reason": "Unhealthy", "type": "Warning",
        "message": "Readiness probe failed: no", "count": 3, "source": {"component": "kubelet"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:20Z"})
    text = describe(p, events=[event])
    assert "Readiness:     exec [cat ready] delay=0s timeout=1s period=1s #success=1 #failure=3" in text
    lines = text.splitlines()
    at = lines.index("Events:")
    assert lines[at + 1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert lines[at + 3].split()[:2] == ["Warning", "Unhealthy"] and "over" in lines[at + 3]
    assert lines[at + 3].endswith("kubelet   Readiness probe failed: no")


def test_pods_being_deleted_on_a_node_that_is_gone_are_removed() -> None:
    store = ResourceStore(MemoryStore(), clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    store.bootstrap()
    for name, node in (("lost", "gone-node"), ("kept", "n1")):
        store.create(Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                         "spec": {"nodeName": node, "containers": [{"name": "c"}]}}))
        store.delete(Pod, name)
    n1 = Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    AppsController(store).gc_terminating(store.list(Pod), [n1])  # type: ignore[arg-type]
    assert [p.name for p in store.list(Pod)] == ["kept"]


def test_events_expire_after_their_ttl() -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    store = ResourceStore(MemoryStore(), clock=lambda: now)
    store.bootstrap()
    for name, last in (("old", "2024-01-01T10:59:00Z"), ("fresh", "2024-01-01T11:30:00Z")):
        store.create(Event.model_validate({"apiVersion": "v1", "kind": "Event",
                                           "metadata": {"name": name, "namespace": "default"},
                                           "involvedObject": {"kind": "Pod", "name": "p"}, "lastTimestamp": last}))
    AppsController(store, clock=lambda: now).reconcile(store.snapshot())
    assert [e.name for e in store.list(Event)] == ["fresh"]
