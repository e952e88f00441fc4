"""Pods as a kubelet runs them, on the real kernel: probes of every kind (also under a deny-all
ingress policy), liveness restarts with back-off, startup holding readiness back, graceful
termination (preStop, SIGTERM, SIGKILL, address released last), forced deletion, namespace
cascade, the environment a container gets, and a rolling update under a request loop that
loses no request. One node namespace with `podnet agent`, `podnet controllers` and the policy
loop, shared by the module; every test works in a namespace of its own and removes it."""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from podnet.agent.pods import pod_netns_name
from podnet.kernel import netns
from podnet.model import Event, Namespace, Node, Pod
from podnet.model.registry import kind_for
from podnet.testing import leaks
from podnet.testing.cni_lab import make_node_ns

from test_pods import Cluster

pytestmark = pytest.mark.kernel
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.39"


class Lifecycle(Cluster):
    def __init__(self, state: str, node: str, node_ns: str) -> None:
        super().__init__(state, node, node_ns)
        self.namespaces: list[str] = []

    def ns(self) -> str:
        """A namespace for one test; the ``ns`` fixture deletes it (and so its pods) after."""
        name = f"lc-{secrets.token_hex(3)}"
        self.store.apply([Namespace.model_validate({"metadata": {"name": name}})])
        self.namespaces.append(name)
        return name

    def apply_in(self, ns: str, text: str) -> None:
        objs = []
        for doc in yaml.safe_load_all(text):
            doc.setdefault("metadata", {})["namespace"] = ns
            cls = kind_for(doc["apiVersion"], doc["kind"])
            assert cls is not None
            objs.append(cls.model_validate(doc))
        self.store.apply(objs)

    def get(self, ns: str, name: str) -> Pod | None:
        return self.store.get(Pod, name, ns)  # type: ignore[return-value]

    def ready(self, ns: str, name: str) -> bool:
        p = self.get(ns, name)
        return bool(p and p.ready)

    def events(self, ns: str, name: str) -> list[str]:
        return [f"{e.reason}: {e.message}" for e in self.store.list(Event, ns)  # type: ignore[attr-defined]
                if e.involved_object.name == name]

    def node_http(self, url: str) -> int:
        """A GET from the node's namespace (where the agent probes from); the status code."""
        code = ("import urllib.request,sys\ntry:\n print(urllib.request.urlopen(sys.argv[1], timeout=2).status)\n"
                "except Exception as e:\n print(getattr(e, 'code', 0))")
        out = netns.run_in(self.node_ns, ["/usr/bin/python3", "-c", code, url], timeout=10)
        return int(out.stdout.strip() or 0)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, prefixes: leaks.Prefixes) -> Iterator[Lifecycle]:
    prefix = prefixes.new()
    node, node_ns = f"{prefix}n1", f"{prefix}node"
    state = str(tmp_path_factory.mktemp("lifecycle") / "state")
    os.makedirs(state)
    make_node_ns(node_ns)
    c = Lifecycle(state, node, node_ns)
    try:
        c.store.create(Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                                            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.200.1"}]}}))
        c.start("agent", "--node", node, "--resync", "0.3", "--backoff-base", "0.5", ns=node_ns)
        c.start("controllers", "--resync", "0.3")
        c.start("policy-loop", "--node", node, ns=node_ns)
        # Running before the first test takes its process footprint: nsenter has exec'd its
        # command (the leak check tells processes by command line) and the agent serves.
        c.wait("node processes started", lambda: all(_execed(p.pid) for p in c.procs))
        c.wait("agent ready", lambda: os.path.exists(os.path.join(state, "nodes", node, "agent.ready")))
        yield c
    finally:
        c.stop()
        netns.remove(node_ns)
    # The leak check (tests/conftest.py) finds no pod namespace or container process of this module.


def _execed(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().split("\0")[0] != "nsenter"
    except OSError:
        return True


@pytest.fixture
def cluster(node: Lifecycle) -> Iterator[Lifecycle]:
    """The module's node; the namespaces a test made are deleted (their pods terminated) after it."""
    yield node
    for ns in node.namespaces:
        node.cli("delete", "ns", ns, "--ignore-not-found", "--timeout", "30", check=False, timeout=60)
    node.namespaces.clear()


def test_readiness_probe_turns_a_pod_not_ready_and_back(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: flip}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "touch ready && exec sleep 36000"]
    readinessProbe: {exec: {command: [cat, ready]}, periodSeconds: 1, failureThreshold: 1}
""")
    c.wait("flip Ready", lambda: c.ready(ns, "flip"))
    before = c.get(ns, "flip")
    assert before is not None
    conds = {x["type"]: x for x in before.status.conditions or []}
    assert {"PodScheduled", "Initialized", "ContainersReady", "Ready"} <= set(conds)
    assert all(conds[t]["status"] == "True" and conds[t]["lastTransitionTime"] for t in conds)
    (cs,) = before.status.container_statuses or []
    assert cs.ready and cs.started and cs.restart_count == 0 and "running" in (cs.state or {})
    c.cli("exec", "-n", ns, "flip", "--", "rm", "ready")
    t0 = time.monotonic()
    c.wait("flip not Ready", lambda: not c.ready(ns, "flip"), timeout=10)
    assert time.monotonic() - t0 < 3.0  # one period plus the probe and the status write
    p = c.get(ns, "flip")
    assert p is not None and p.condition("ContainersReady") == "False"
    row = c.cli("get", "pods", "-n", ns).stdout.splitlines()[1].split()
    assert row[:3] == ["flip", "0/1", "Running"]
    c.wait("event", lambda: any(e.startswith("Unhealthy: Readiness probe failed: cat: can't open 'ready'")
                                for e in c.events(ns, "flip")))
    described = c.cli("describe", "pod", "flip", "-n", ns).stdout
    assert "Readiness probe failed:" in described and "exec [cat ready] delay=0s timeout=1s period=1s" in described
    c.cli("exec", "-n", ns, "flip", "--", "touch", "ready")
    c.wait("flip Ready again", lambda: c.ready(ns, "flip"), timeout=10)


def test_http_tcp_grpc_probes_from_the_node_pass_a_deny_all_policy(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-all}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: {AGNHOST}
    args: [netexec, --http-port=8080]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /readyz, port: http, httpHeaders: [{{name: X-Probe, value: "1"}}]}}, periodSeconds: 1}}
    livenessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: grpc}}
spec:
  containers:
  - name: health
    image: {AGNHOST}
    args: [grpc-health-checking, --port=5000, --http-port=8080]
    readinessProbe: {{grpc: {{port: 5000}}, periodSeconds: 1, failureThreshold: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: closed}}
spec:
  containers:
  - name: web
    image: {AGNHOST}
    args: [netexec, --http-port=8080]
    readinessProbe: {{httpGet: {{path: /, port: 9999}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""")
    for name in ("web", "grpc", "client"):
        c.wait(f"{name} Ready", lambda n=name: c.ready(ns, n), timeout=20)
    web = c.get(ns, "web")
    assert web is not None and web.status.pod_ip
    # the policy is enforced: another pod cannot reach web, yet the node's probes pass
    blocked = c.cli("exec", "-n", ns, "client", "--", "agnhost", "connect", f"{web.status.pod_ip}:8080",
                    "--timeout", "1s", check=False)
    assert blocked.returncode == 1 and "TIMEOUT" in blocked.stdout
    time.sleep(1.5)
    assert c.ready(ns, "web") and not c.ready(ns, "closed")
    c.wait("refused event", lambda: any("connect: connection refused" in e for e in c.events(ns, "closed")))
    grpc = c.get(ns, "grpc")
    assert grpc is not None
    assert c.node_http(f"http://{grpc.status.pod_ip}:8080/make-not-serving") == 200
    c.wait("grpc not Ready", lambda: not c.ready(ns, "grpc"), timeout=10)
    assert any("service unhealthy (responseCode: NOT_SERVING)" in e for e in c.events(ns, "grpc"))
    assert c.node_http(f"http://{grpc.status.pod_ip}:8080/make-serving") == 200
    c.wait("grpc Ready again", lambda: c.ready(ns, "grpc"), timeout=10)


def test_liveness_failure_restarts_and_crashes_back_off(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "touch alive && exec sleep 36000"]
    livenessProbe: {exec: {command: [cat, alive]}, periodSeconds: 1, failureThreshold: 2}
""")
    c.wait("live Ready", lambda: c.ready(ns, "live"))
    c.cli("exec", "-n", ns, "live", "--", "rm", "alive")

    def restarted() -> bool:
        p = c.get(ns, "live")
        return bool(p and (p.status.container_statuses or [None])[0] and
                    p.status.container_statuses[0].restart_count == 1 and p.ready)  # type: ignore[index]
    c.wait("live restarted", restarted, timeout=15)
    p = c.get(ns, "live")
    assert p is not None
    last = (p.status.container_statuses[0].last_state or {}).get("terminated") or {}  # type: ignore[index]
    assert last.get("exitCode") in (137, 143) and last.get("finishedAt")
    events = c.events(ns, "live")
    assert any(e.startswith("Unhealthy: Liveness probe failed:") for e in events)
    assert "Killing: Container app failed liveness probe, will be restarted" in events
    assert "(" in c.cli("get", "pods", "live", "-n", ns).stdout.splitlines()[1]  # RESTARTS "1 (2s ago)"
    # a crashing container: restarted at once, then after 0.5 s, 1 s, 2 s (the agent's base is 0.5 s)
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers: [{name: app, image: busybox, command: [sh, -c, "exit 3"]}]
""")
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + 8
    waiting = set()
    while time.monotonic() < deadline:
        p = c.get(ns, "crash")
        if p and p.status.container_statuses:
            cs = p.status.container_statuses[0]
            if not seen or seen[-1][1] != cs.restart_count:
                seen.append((time.monotonic(), cs.restart_count))
            waiting.add(((cs.state or {}).get("waiting") or {}).get("reason"))
        time.sleep(0.05)
    counts = [n for _, n in seen]
    assert counts[-1] >= 3 and "CrashLoopBackOff" in waiting
    gaps = [b[0] - a[0] for a, b in zip(seen[1:], seen[2:])]
    assert gaps[0] < gaps[-1] and gaps[-1] >= 0.9, gaps  # back-off doubles
    assert "CrashLoopBackOff" in c.cli("get", "pods", "crash", "-n", ns).stdout


def test_startup_probe_holds_readiness_back(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "sleep 2 && touch started && exec sleep 36000"]
    startupProbe: {exec: {command: [cat, started]}, periodSeconds: 1, failureThreshold: 30}
    readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
""")
    c.wait("slow Running", lambda: bool((p := c.get(ns, "slow")) and p.status.container_statuses))
    p = c.get(ns, "slow")
    assert p is not None and not p.ready and p.status.container_statuses[0].started is False  # type: ignore[index]
    c.wait("slow Ready", lambda: c.ready(ns, "slow"), timeout=10)
    p = c.get(ns, "slow")
    assert p is not None and p.status.container_statuses[0].started  # type: ignore[index]
    assert any(e.startswith("Unhealthy: Startup probe failed") for e in c.events(ns, "slow"))


def test_graceful_termination_prestop_sigterm_and_address_last(cluster: Lifecycle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c, ns = cluster, cluster.ns()
    mark = tmp_path / "prestop"
    c.apply_in(ns, f"""
apiVersion: v1
kind: Pod
metadata: {{name: drain}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: web
    image: {AGNHOST}
    args: [netexec, --http-port=8080, --delay-shutdown=2]
    env: [{{name: MARK, value: "{mark}"}}]
    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1, failureThreshold: 1}}
    lifecycle: {{preStop: {{exec: {{command: [sh, -c, "date +%s.%N > $MARK; sleep 1"]}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 2
  containers: [{{name: app, image: busybox, command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]}}]
""")
    for name in ("drain", "stubborn"):
        c.wait(f"{name} Ready", lambda n=name: c.ready(ns, n))
    pod = c.get(ns, "drain")
    assert pod is not None
    ip, sandbox = pod.status.pod_ip, pod_netns_name(c.node, ns, "drain", pod.metadata.uid or "")
    t0 = time.time()
    out = c.cli("delete", "pod", "drain", "-n", ns, "--wait=false")
    assert out.stdout == 'pod "drain" deleted\n'
    p = c.get(ns, "drain")
    assert p is not None and p.metadata.deletion_timestamp and p.metadata.deletion_grace_period_seconds == 10
    assert "Terminating" in c.cli("get", "pods", "drain", "-n", ns).stdout
    assert "Terminating (lasts" in c.cli("describe", "pod", "drain", "-n", ns).stdout
    c.wait("preStop ran", mark.exists, timeout=5)
    # after preStop, SIGTERM: the server keeps serving 2 s, /readyz says 503, Ready turns False
    c.wait("Ready False while terminating", lambda: (q := c.get(ns, "drain")) is not None and not q.ready, timeout=6)
    assert c.node_http(f"http://{ip}:8080/hostname") == 200  # still serving during the delay
    assert netns.exists(sandbox) and c.store.get(Pod, "drain", ns) is not None
    c.wait("drain removed", lambda: c.get(ns, "drain") is None, timeout=15)
    took = time.time() - t0
    assert 3.0 <= took < 9.0, took  # preStop 1 s + 2 s delay, well inside the 10 s grace
    assert not netns.exists(sandbox)
    assert not any(v.get("pod") == "drain" and v.get("namespace") == ns for v in _handles(c).values())
    assert any(e == "Killing: Stopping container web" for e in c.events(ns, "drain"))
    # a process that ignores SIGTERM is killed when the grace period (2 s) ends; delete waits for it
    t0 = time.monotonic()
    c.cli("delete", "pod", "stubborn", "-n", ns, "--timeout", "20")
    assert 1.8 <= time.monotonic() - t0 < 8 and c.get(ns, "stubborn") is None


def _handles(c: Lifecycle) -> dict:
    from podnet.ipam.allocator import IPAM
    return IPAM(c.store.kv).handles()


def test_force_delete_and_namespace_cascade(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  containers: [{name: app, image: busybox, command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  containers: [{name: app, image: busybox, command: [sleep, "36000"]}]
""")
    for name in ("a", "b"):
        c.wait(f"{name} Ready", lambda n=name: c.ready(ns, n))
    a = c.get(ns, "a")
    assert a is not None
    sandbox = pod_netns_name(c.node, ns, "a", a.metadata.uid or "")
    out = c.cli("delete", "pod", "a", "-n", ns, "--force", "--grace-period=0")
    assert out.stdout == 'pod "a" force deleted\n' and "Immediate deletion does not wait" in out.stderr
    assert c.get(ns, "a") is None  # gone from the store at once; the node stops it within 2 s
    c.wait("a's sandbox removed", lambda: not netns.exists(sandbox), timeout=8)
    b = c.get(ns, "b")
    assert b is not None
    sandbox = pod_netns_name(c.node, ns, "b", b.metadata.uid or "")
    c.cli("delete", "ns", ns, "--timeout", "20")
    assert c.store.get(Namespace, ns) is None and not netns.exists(sandbox)


def test_container_environment(cluster: Lifecycle) -> None:
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, """
apiVersion: v1
kind: Service
metadata: {name: web-svc}
spec:
  clusterIP: 10.96.7.7
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, selector: {app: web}}
""")
    c.apply_in(ns, """
apiVersion: v1
kind: Pod
metadata: {name: env, labels: {tier: front}}
spec:
  serviceAccountName: robot
  containers:
  - name: app
    image: busybox
    command: [sleep, "36000"]
    env:
    - {name: GREETING, value: hello}
    - {name: MESSAGE, value: "$(GREETING) from $(MY_POD_NAME) $$(KEPT)"}
    - {name: MY_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MY_SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: MY_TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
""")
    c.wait("env Ready", lambda: c.ready(ns, "env"))
    p = c.get(ns, "env")
    assert p is not None
    record = os.path.join(c.state, "nodes", c.node, "pods", f"{ns}_env", "pod.json")
    pid = json.load(open(record))["containers"][0]["pid"]
    env = dict(line.split("=", 1) for line in open(f"/proc/{pid}/environ").read().split("\0") if "=" in line)
    assert env["GREETING"] == "hello" and env["MY_POD_NAME"] == "env" and env["MY_NS"] == ns
    assert env["MESSAGE"] == "hello from $(MY_POD_NAME) $(KEPT)"  # only earlier variables expand
    assert env["MY_IP"] == p.status.pod_ip and env["MY_HOST_IP"] == "192.168.200.1"
    assert env["MY_NODE"] == c.node and env["MY_SA"] == "robot" and env["MY_TIER"] == "front"
    assert env["WEB_SVC_SERVICE_HOST"] == "10.96.7.7" and env["WEB_SVC_SERVICE_PORT"] == "80"
    assert env["WEB_SVC_SERVICE_PORT_HTTP"] == "80" and env["WEB_SVC_PORT"] == "tcp://10.96.7.7:80"
    assert env["WEB_SVC_PORT_53_UDP"] == "udp://10.96.7.7:53" and env["WEB_SVC_PORT_80_TCP_ADDR"] == "10.96.7.7"
    assert not any(k.startswith("HEADLESS_") for k in env)


def test_rolling_update_loses_no_request(cluster: Lifecycle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c, ns = cluster, cluster.ns()
    c.apply_in(ns, f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: {AGNHOST}
        args: [netexec, --http-port=8080, --delay-shutdown=2]
        readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  containers: [{{name: c, image: busybox, command: [sleep, "36000"]}}]
""")
    c.wait("3 web pods ready", lambda: sum(1 for p in c.store.list(Pod, ns) if p.name.startswith("web-") and p.ready) == 3
           and c.ready(ns, "client"), timeout=30)
    out = c.cli("rollout", "status", "deployment/web", "-n", ns, "--timeout", "20").stdout
    assert out.strip().endswith('deployment "web" successfully rolled out')
    endpoints = tmp_path / "endpoints"
    stop = threading.Event()

    def publish() -> None:  # what an EndpointSlice's ready endpoints are: Ready and not terminating
        while not stop.is_set():
            ips = sorted(p.status.pod_ip or "" for p in c.store.list(Pod, ns, None) if p.name.startswith("web-")
                         and p.ready and not p.metadata.deletion_timestamp)  # type: ignore[attr-defined]
            tmp = endpoints.with_suffix(".tmp")
            tmp.write_text("\n".join(ips))
            os.replace(tmp, endpoints)
            time.sleep(0.03)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    time.sleep(0.2)
    client = c.get(ns, "client")
    assert client is not None
    result = tmp_path / "result"
    loop = ("import sys,time,urllib.request\nok=bad=0;i=0;errs=[]\nwhile True:\n"
            " try: stop=open(sys.argv[2]).read()\n except OSError: stop=''\n if stop: break\n"
            " ips=[l for l in open(sys.argv[1]).read().split() if l]\n if not ips: time.sleep(0.01); continue\n"
            " ip=ips[i%len(ips)];i+=1\n try:\n  urllib.request.urlopen(f'http://{ip}:8080/hostname',timeout=2).read();ok+=1\n"
            " except Exception as e:\n  bad+=1;errs.append(f'{ip}: {e}')\n"
            "open(sys.argv[3],'w').write(f'{ok} {bad}\\n'+'\\n'.join(errs[:5]))\n")
    stop_file = tmp_path / "stop"
    proc = netns.popen_in(pod_netns_name(c.node, ns, "client", client.metadata.uid or ""),
                          ["/usr/bin/python3", "-c", loop, str(endpoints), str(stop_file), str(result)])
    try:
        time.sleep(0.5)
        before = {p.name for p in c.store.list(Pod, ns) if p.name.startswith("web-")}
        assert c.cli("set", "image", "deployment/web", f"web={AGNHOST[:-4]}2.40", "-n", ns).stdout == \
            "deployment.apps/web image updated\n"
        status = c.cli("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60", timeout=90).stdout
        assert status.strip().endswith('deployment "web" successfully rolled out')
        c.wait("old pods gone", lambda: not before & {p.name for p in c.store.list(Pod, ns)}, timeout=20)
    finally:
        stop_file.write_text("stop")
        proc.wait(timeout=10)
        stop.set()
        publisher.join()
    ok, bad = map(int, result.read_text().splitlines()[0].split())
    assert bad == 0 and ok > 50, result.read_text()
    history = c.cli("rollout", "history", "deployment/web", "-n", ns).stdout.splitlines()
    assert history[0] == "deployment.apps/web " and history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line] == ["1", "2"]
    rs = c.cli("get", "rs", "-n", ns).stdout.splitlines()
    assert rs[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert sorted(line.split()[1:4] for line in rs[1:]) == [["0", "0", "0"], ["3", "3", "3"]]
    deploy = c.cli("get", "deploy", "-n", ns).stdout.splitlines()
    assert deploy[1].split()[:4] == ["web", "3/3", "3", "3"]
    assert c.cli("rollout", "undo", "deployment/web", "-n", ns).stdout == "deployment.apps/web rolled back\n"
    c.cli("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60", timeout=90)
    assert all(p.spec.containers[0].image == AGNHOST for p in c.store.list(Pod, ns)  # type: ignore[attr-defined]
               if p.name.startswith("web-") and not p.metadata.deletion_timestamp)
    assert c.cli("scale", "deployment", "web", "--replicas", "1", "-n", ns).stdout == "deployment.apps/web scaled\n"
    c.wait("scaled to 1", lambda: sum(1 for p in c.store.list(Pod, ns) if p.name.startswith("web-")) == 1, timeout=20)
