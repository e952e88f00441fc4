"""Pure parts of the pod machinery: scheduler, IPAM liveness, CNI spec values (Deployments: test_rollout)."""
from __future__ import annotations

import itertools
import os

import pytest

from podnet.cni import spec
from podnet.controllers import ipamgc, scheduler
from podnet.model.core import Node, Pod
from podnet.workloads.images import UnknownImage, image_base, launch_for


def node(name: str, **labels: str) -> Node:
    return Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})


def pod(name: str, node_name: str | None = None, ns: str = "default", phase: str | None = None,
        selector: dict | None = None, image: str = "busybox", labels: dict | None = None) -> Pod:
    spec_: dict = {"containers": [{"name": "c", "image": image}]}
    if node_name:
        spec_["nodeName"] = node_name
    if selector:
        spec_["nodeSelector"] = selector
    d = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
         "spec": spec_}
    if phase:
        d["status"] = {"phase": phase}
    return Pod.model_validate(d)


def test_scheduler_fewest_pods_first_and_selector() -> None:
    nodes = [node("b"), node("a", disk="ssd"), node("c")]
    pods = [pod("x1", "a"), pod("x2", "a"), pod("x3", "b"), pod("done", "c", phase="Succeeded"),
            pod("p1"), pod("p2"), pod("p3"), pod("ssd", selector={"disk": "ssd"}), pod("nowhere", selector={"gpu": "1"})]
    got = {p.name: n for p, n in scheduler.schedule(pods, nodes)}
    # c has no live pods → p1; then b and c tie at 1 → b (name order); then c
    assert got == {"p1": "c", "p2": "b", "p3": "c", "ssd": "a"}
    assert scheduler.bind(pod("p1"), "c").spec.node_name == "c"


def test_scheduler_is_order_independent() -> None:
    nodes = [node("n1"), node("n2")]
    pods = [pod(f"p{i}") for i in range(5)] + [pod("old", "n1")]
    results = {tuple((p.name, n) for p, n in scheduler.schedule(list(perm), nodes))
               for perm in itertools.permutations(pods)}
    assert len(results) == 1


def test_ipam_liveness() -> None:
    handles = {"a": {"namespace": "default", "pod": "web", "podUID": "u-web", "node": "n1", "containerID": "1"},
               "b": {"namespace": "default", "pod": "gone", "podUID": "u-gone", "node": "n1", "containerID": "2"},
               "c": {"namespace": "default", "pod": "moved", "podUID": "u-moved", "node": "n1", "containerID": "3"},
               "old": {"namespace": "default", "pod": "web", "podUID": "u-old-web", "node": "n1", "containerID": "5"},
               "podman": {"namespace": "pm1", "pod": "pm1", "containerID": "4"}}
    web = pod("web", "n1").with_meta(uid="u-web")
    moved = pod("moved", "n2").with_meta(uid="u-moved")
    assert ipamgc.live_handles(handles, [web, moved]) == {"a", "podman"}


def test_cni_spec_values() -> None:
    with pytest.raises(spec.CniError) as e:
        spec.parse_env({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"})
    assert e.value.code == 4 and "CNI_NETNS" in e.value.msg
    with pytest.raises(spec.CniError) as e:
        spec.parse_env({})
    assert e.value.code == 4
    env = spec.parse_env({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x",
                          "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"})
    assert env.pod == ("default", "web") and spec.host_ifname(env) == "cali" + __import__("hashlib").sha1(
        b"default.web").hexdigest()[:11]
    for bad, field in ((b'{"cniVersion":"1.1.0","name":"n","nodeName":"x","mtu":0}', "mtu"),
                       (b'{"cniVersion":"1.1.0","nodeName":"x"}', "name"),
                       (b'{"cniVersion":"1.1.0","name":"n"}', "nodeName"),
                       (b'{"cniVersion":"1.1.0","name":"n","nodeName":"x","ipam":{"podCIDR":"10.244.0.0/99"}}',
                        "ipam.podCIDR")):
        with pytest.raises(spec.CniError) as e:
            spec.parse_config(bad)
        assert e.value.code == 7 and f"'{field}'" in e.value.msg
    with pytest.raises(spec.CniError) as e:
        spec.parse_config(b"[")
    assert e.value.code == 6
    with pytest.raises(spec.CniError) as e:
        spec.check_command_version("GC", "1.0.0")
    assert e.value.code == 1
    r = spec.add_result("0.4.0", host_if="cali1", host_mac="m", ifname="eth0", mac="m2", sandbox="/s",
                        address="10.0.0.1/32", mtu=1500)
    assert r["ips"][0]["version"] == "4" and "mtu" not in r["interfaces"][0]


def test_plugin_supported_versions_match_spec() -> None:
    from pathlib import Path
    src = (Path(spec.__file__).parent / "plugin.py").read_text()
    assert f"SUPPORTED_VERSIONS = {list(spec.SUPPORTED_VERSIONS)!r}".replace("'", '"') in src


def test_images() -> None:
    assert image_base("docker.io/library/nginx:1.25") == "nginx"
    web = pod("web", image="nginx")
    assert launch_for(web, web.spec.containers[0], "/pb").argv[-1] == "tcp:80"
    bb = Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"},
                             "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "36000"]}]}})
    assert launch_for(bb, bb.spec.containers[0], "/pb").argv == ("sleep", "36000")
    bad = pod("x", image="mystery")
    with pytest.raises(UnknownImage, match="mystery"):
        launch_for(bad, bad.spec.containers[0], "/pb")


def _install(d: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    from podnet.cni.install import install

    barrier.wait()
    try:
        install(f"{d}/bin", f"{d}/net.d", "n1", f"{d}/state")
        results.put("ok")
    except Exception as exc:
        results.put(repr(exc))


def test_concurrent_installs_of_the_plugin_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Agents (or install-cni runs) writing the same plugin and conflist at once: each writes
    its own temporary file and renames it into place, so none fails and the result is whole."""
    import json
    import multiprocessing

    from podnet.cni.install import plugin_source

    ctx = multiprocessing.get_context("fork")
    for i in range(3):
        d = str(tmp_path / str(i))
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_install, args=(d, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [results.get(timeout=5) for _ in procs] == ["ok"] * 6
        assert open(f"{d}/bin/podnet-cni").read() == plugin_source(os.path.join(d, "state", "nodes", "n1", "cni.sock"))
        assert json.load(open(f"{d}/net.d/10-podnet.conflist"))["plugins"][0]["nodeName"] == "n1"
        assert sorted(os.listdir(f"{d}/bin")) == ["podnet-cni"] and sorted(os.listdir(f"{d}/net.d")) == ["10-podnet.conflist"]


def test_a_plugin_that_does_not_answer_is_a_cni_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A hung plugin is reported like any CNI error (the pod runner then rolls back and
    retries), not as a subprocess exception escaping the runner."""
    from podnet.agent.cnicall import CniCallFailed, CniRuntime

    exe = tmp_path / "podnet-cni"
    exe.write_text("#!/bin/sh\nexec sleep 5\n")
    exe.chmod(0o755)
    rt = CniRuntime({"cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "podnet-cni"}]}, bin_dirs=(str(tmp_path),))
    with pytest.raises(CniCallFailed, match="did not answer within 0.3 s"):
        rt.call("DEL", "c1", timeout=0.3)
