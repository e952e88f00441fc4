"""podnet-cni under the real kernel, invoked exactly as a runtime does (exec, env, stdin)."""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os

import pytest

from podnet.agent.cnicall import CniCallFailed
from podnet.cni.handler import ADD_STEPS
from podnet.cni.spec import SUPPORTED_VERSIONS
from podnet.kernel import netns
from podnet.testing.cni_lab import Lab, links, ping

pytestmark = pytest.mark.kernel


def _add(lab: Lab, ns: str, cid: str, version: str = "1.1.0", **kw: object) -> dict:
    rt = lab.runtime(cniVersion=version)
    res = rt.call("ADD", cid, netns.path(ns), "eth0", **kw)  # type: ignore[arg-type]
    assert res is not None
    return res


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_each_version(lab: Lab, version: str) -> None:
    rt = lab.runtime(cniVersion=version)
    p1, p2 = lab.pod_ns(), lab.pod_ns()
    r1 = rt.call("ADD", "ctr1", netns.path(p1), "eth0", args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"})
    r2 = rt.call("ADD", "ctr2", netns.path(p2), "eth0")
    assert r1 and r2 and r1["cniVersion"] == version
    host_if = "cali" + hashlib.sha1(b"default.web").hexdigest()[:11]
    assert r1["interfaces"][0] == ({"name": host_if, "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1500} if version == "1.1.0"
                                   else {"name": host_if, "mac": "ee:ee:ee:ee:ee:ee"})
    assert r1["interfaces"][1]["name"] == "eth0" and r1["interfaces"][1]["sandbox"] == netns.path(p1)
    assert len(r1["interfaces"][1]["mac"]) == 17
    ip = r1["ips"][0]
    assert ip["address"].endswith("/32") and ip["gateway"] == "169.254.1.1" and ip["interface"] == 1
    assert ("version" in ip) == (version == "0.4.0")
    assert r1["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert r2["interfaces"][0]["name"] == "cali" + hashlib.sha1(b"ctr2").hexdigest()[:11]
    a1, a2 = (r["ips"][0]["address"].split("/")[0] for r in (r1, r2))
    assert a1 != a2 and ipaddress.ip_address(a1) in ipaddress.ip_network("10.244.0.0/16")
    # node → pod, pod → pod, the kernel state the design promises
    assert ping(lab.node_ns, a1) and ping(p1, a2)
    pod_routes = netns.run_in(p1, ["ip", "route"]).stdout
    assert "default via 169.254.1.1 dev eth0" in pod_routes and "169.254.1.1 dev eth0" in pod_routes
    node_routes = netns.run_in(lab.node_ns, ["ip", "route"]).stdout
    assert f"{a1} dev {host_if} scope link" in node_routes
    assert netns.run_in(lab.node_ns, ["cat", f"/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"]).stdout.strip() == "1"
    assert rt.call("CHECK", "ctr1", netns.path(p1), "eth0", prev_result=r1) is None
    assert rt.call("DEL", "ctr1", netns.path(p1), "eth0", prev_result=r1) is None
    assert rt.call("DEL", "ctr1", netns.path(p1), "eth0", prev_result=r1) is None  # idempotent
    with pytest.raises(CniCallFailed) as err:
        rt.call("CHECK", "ctr1", netns.path(p1), "eth0", prev_result=r1)
    assert err.value.code == 100 and "missing" in err.value.msg
    assert host_if not in links(lab.node_ns) and "eth0" not in links(p1)
    rt.call("DEL", "ctr2", netns.path(p2), "eth0")
    assert lab.ipam().handles() == {}
    assert links(lab.node_ns) == ["lo"]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_version(lab: Lab, version: str) -> None:
    res = lab.runtime(cniVersion=version).call("VERSION", ifname="")
    assert res == {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def test_status_and_gc(lab: Lab) -> None:
    rt = lab.runtime()
    assert rt.call("STATUS", ifname="") is None
    pods = [lab.pod_ns() for _ in range(3)]
    results = [rt.call("ADD", f"c{i}", netns.path(p), "eth0") for i, p in enumerate(pods)]
    rt.call("GC", ifname="", valid_attachments=[{"containerID": "c0", "ifname": "eth0"}])
    assert sorted(lab.ipam().handles()) == ["k8s-pod-network.c0.eth0"]
    with pytest.raises(CniCallFailed) as err:
        rt.call("GC", ifname="")  # no list: refuses instead of freeing everything
    assert err.value.code == 7 and "valid-attachments" in err.value.msg
    for v in ("0.4.0", "1.0.0"):
        with pytest.raises(CniCallFailed) as err:
            lab.runtime(cniVersion=v).call("STATUS", ifname="")
        assert err.value.code == 1
    for i, p in enumerate(pods):
        rt.call("DEL", f"c{i}", netns.path(p), "eth0", prev_result=results[i])
    assert lab.ipam().handles() == {}


def test_status_reports_exhausted_pool_and_add_fails_naming_it(lab: Lab) -> None:
    rt = lab.runtime(ipam={"type": "podnet-ipam", "podCIDR": "10.66.0.0/30"})
    pods = [lab.pod_ns() for _ in range(2)]
    rt.call("ADD", "x0", netns.path(pods[0]), "eth0")
    # fill the rest directly, then the next ADD must fail at once, naming the pool
    ipam = lab.ipam()
    usage = ipam.usage()[0]
    for i in range(usage.free):
        ipam.assign(f"filler{i}", "n1", {})
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "x1", netns.path(pods[1]), "eth0")
    assert err.value.code == 100 and "default-ipv4-ippool" in err.value.msg and "exhausted" in err.value.msg
    with pytest.raises(CniCallFailed) as err:
        rt.call("STATUS", ifname="")
    assert err.value.code == 50
    assert "eth0" not in links(pods[1])
    rt.call("DEL", "x0", netns.path(pods[0]), "eth0")
    for i in range(usage.free):
        ipam.release(f"filler{i}")


def test_bad_input_codes(lab: Lab) -> None:
    rt = lab.runtime()
    p = lab.pod_ns()
    with pytest.raises(CniCallFailed) as err:
        lab.runtime(mtu="big").call("ADD", "c", netns.path(p), "eth0")
    assert err.value.code == 7 and "'mtu'" in err.value.msg
    with pytest.raises(CniCallFailed) as err:
        lab.runtime(ipam={"type": "host-local"}).call("ADD", "c", netns.path(p), "eth0")
    assert err.value.code == 7 and "'ipam.type'" in err.value.msg
    with pytest.raises(CniCallFailed) as err:
        lab.runtime(cniVersion="9.9.9").call("ADD", "c", netns.path(p), "eth0")
    assert err.value.code == 1
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "c", "", "eth0")  # CNI_NETNS missing
    assert err.value.code == 4 and "CNI_NETNS" in err.value.msg
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "c", "/run/netns/does-not-exist-pt", "eth0")
    assert err.value.code == 3
    conf = rt.plugin_conf
    del conf["name"]
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "c", netns.path(p), "eth0", conf=conf)
    assert err.value.code == 7 and "'name'" in err.value.msg
    assert rt.call("DEL", "never-added", netns.path(p), "eth0") is None  # unknown container: success
    assert links(p) == ["lo"] and lab.ipam().handles() == {}


def test_bad_json_is_code_6(lab: Lab) -> None:
    import subprocess
    exe = os.path.join(lab.bin_dir, "podnet-cni")
    proc = subprocess.run([exe], input=b"{not json", capture_output=True,
                          env={"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
                               "CNI_PATH": lab.bin_dir})
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 6


@pytest.mark.parametrize("step", ADD_STEPS)
def test_failure_injection_leaves_nothing(lab: Lab, step: str) -> None:
    rt = lab.runtime()
    p = lab.pod_ns()
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "c1", netns.path(p), "eth0", env={"PODNET_CNI_FAIL_AFTER": step})
    assert f"after step {step}" in err.value.msg
    assert links(p) == ["lo"]
    assert links(lab.node_ns) == ["lo"]
    assert "10.244" not in netns.run_in(lab.node_ns, ["ip", "route"]).stdout
    assert netns.run_in(p, ["ip", "route"]).stdout == ""
    assert lab.ipam().handles() == {}
    assert all(not b.allocations for b in lab.ipam().blocks())
    # and the same ADD then succeeds
    res = rt.call("ADD", "c1", netns.path(p), "eth0")
    assert res and ping(lab.node_ns, res["ips"][0]["address"].split("/")[0])
    rt.call("DEL", "c1", netns.path(p), "eth0")


def test_del_when_netns_is_gone(lab: Lab) -> None:
    rt = lab.runtime()
    p = lab.pod_ns()
    res = rt.call("ADD", "c1", netns.path(p), "eth0")
    assert res
    netns.remove(p)
    assert rt.call("DEL", "c1", netns.path(p), "eth0", prev_result=res) is None
    assert lab.ipam().handles() == {}
    # the host veth dies with the namespace (asynchronously) or was deleted by DEL
    import time
    for _ in range(200):
        if links(lab.node_ns) == ["lo"]:
            break
        time.sleep(0.01)
    assert links(lab.node_ns) == ["lo"]


def test_in_process_fallback_without_agent(lab_inprocess: Lab) -> None:
    lab = lab_inprocess
    rt = lab.runtime()
    p = lab.pod_ns()
    res = rt.call("ADD", "c1", netns.path(p), "eth0")
    assert res and ping(lab.node_ns, res["ips"][0]["address"].split("/")[0])
    assert rt.call("CHECK", "c1", netns.path(p), "eth0", prev_result=res) is None
    rt.call("DEL", "c1", netns.path(p), "eth0", prev_result=res)
    assert lab.ipam().handles() == {} and links(lab.node_ns) == ["lo"]


def test_mtu_from_config(lab: Lab) -> None:
    rt = lab.runtime(mtu=1450)
    p = lab.pod_ns()
    res = rt.call("ADD", "c1", netns.path(p), "eth0")
    assert res and res["interfaces"][1]["mtu"] == 1450
    assert "mtu 1450" in netns.run_in(p, ["ip", "link", "show", "eth0"]).stdout
    rt.call("DEL", "c1", netns.path(p), "eth0")


def test_stale_del_never_touches_a_newer_incarnation(lab: Lab) -> None:
    """Same pod name, two sandboxes: the old one's late DEL must leave the new one working."""
    rt = lab.runtime()
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"}
    old_ns, new_ns = lab.pod_ns(), lab.pod_ns()
    old = rt.call("ADD", "old", netns.path(old_ns), "eth0", args=args)
    new = rt.call("ADD", "new", netns.path(new_ns), "eth0", args=args)  # replaces the stale host link
    assert old and new and old["interfaces"][0]["name"] == new["interfaces"][0]["name"]
    new_ip = new["ips"][0]["address"].split("/")[0]
    netns.remove(old_ns)  # the runtime already dropped the old sandbox
    rt.call("DEL", "old", netns.path(old_ns), "eth0", args=args, prev_result=old)
    assert ping(lab.node_ns, new_ip)
    assert sorted(lab.ipam().handles()) == ["k8s-pod-network.new.eth0"]
    rt.call("DEL", "new", netns.path(new_ns), "eth0", args=args, prev_result=new)
    assert links(lab.node_ns) == ["lo"] and lab.ipam().handles() == {}


def test_repeated_add_fails_without_harming_the_first(lab: Lab) -> None:
    rt = lab.runtime()
    p = lab.pod_ns()
    first = rt.call("ADD", "c1", netns.path(p), "eth0")
    assert first
    with pytest.raises(CniCallFailed) as err:
        rt.call("ADD", "c1", netns.path(p), "eth0")
    assert "already exists" in err.value.msg
    ip = first["ips"][0]["address"].split("/")[0]
    assert lab.ipam().handle("k8s-pod-network.c1.eth0")["ips"] == [ip]  # type: ignore[index]
    assert ping(lab.node_ns, ip)
    assert rt.call("CHECK", "c1", netns.path(p), "eth0", prev_result=first) is None
    rt.call("DEL", "c1", netns.path(p), "eth0", prev_result=first)
