"""Host ports without root: the scheduler's NodePorts filter, the node's forwards and their
``ip podnet-hostport`` table, and the FailedScheduling event of a pod no node fits."""
from __future__ import annotations

import json
from typing import Any

from podnet.controllers import scheduler
from podnet.dataplane.nft.hostports import HOSTPORT_MARK, HOSTPORT_TABLE, render_hostports
from podnet.model.core import Node, Pod
from podnet.services.hostports import HostPortKey, conflicts, node_mappings, wanted_host_ports

NODE_IP = "192.168.10.71"


def node(name: str, **labels: str) -> Node:
    return Node.model_validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})


def pod(name: str, *ports: dict[str, Any], node_name: str | None = None, ip: str | None = None,
        phase: str | None = None, host_network: bool = False, ns: str = "default") -> Pod:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox", "ports": list(ports)}]}
    if node_name:
        spec["nodeName"] = node_name
    if host_network:
        spec["hostNetwork"] = True
    status: dict[str, Any] = {"phase": phase or ("Running" if ip else "Pending")}
    if ip:
        status["podIP"] = ip
    return Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                               "spec": spec, "status": status})


def hp(port: int, host_ip: str | None = None, protocol: str = "TCP", container_port: int = 8080) -> dict[str, Any]:
    out: dict[str, Any] = {"containerPort": container_port, "hostPort": port, "protocol": protocol}
    if host_ip:
        out["hostIP"] = host_ip
    return out


def test_host_ports_overlap_on_protocol_port_and_address() -> None:
    any_tcp = HostPortKey("TCP", 80)
    assert any_tcp.overlaps(HostPortKey("TCP", 80, "10.0.0.1"))  # 0.0.0.0 holds every address
    assert HostPortKey("TCP", 80, "10.0.0.1").overlaps(any_tcp)
    assert not HostPortKey("TCP", 80, "10.0.0.1").overlaps(HostPortKey("TCP", 80, "127.0.0.1"))
    assert not any_tcp.overlaps(HostPortKey("UDP", 80)) and not any_tcp.overlaps(HostPortKey("TCP", 81))
    # an empty hostIP is 0.0.0.0; hostPort 0 is none; a hostNetwork pod's ports are host ports
    assert wanted_host_ports(pod("a", hp(80), {"containerPort": 9000})) == [any_tcp]
    assert wanted_host_ports(pod("h", {"containerPort": 53, "protocol": "UDP"}, host_network=True)) == [
        HostPortKey("UDP", 53)]
    assert conflicts([any_tcp], [HostPortKey("UDP", 80), HostPortKey("TCP", 80, NODE_IP)]) == [
        (any_tcp, HostPortKey("TCP", 80, NODE_IP))]


def test_conformance_same_port_different_host_ip_and_protocol_share_a_node() -> None:
    """[sig-network] HostPort: 54321 on 127.0.0.1/TCP, the node's IP/TCP and the node's IP/UDP."""
    pods = [pod("pod1", hp(54321, "127.0.0.1")), pod("pod2", hp(54321, NODE_IP)),
            pod("pod3", hp(54321, NODE_IP, "UDP"))]
    got = scheduler.plan(pods, [node("n1")])
    assert [(p.name, n) for p, n in got.bindings] == [("pod1", "n1"), ("pod2", "n1"), ("pod3", "n1")]
    assert got.unschedulable == []


def test_a_conflicting_pod_stays_pending_with_kube_schedulers_message() -> None:
    nodes = [node("n1"), node("n2"), node("n3", disk="ssd")]
    placed = [pod("a", hp(8080), node_name="n1", ip="10.244.1.2"), pod("b", hp(8080, NODE_IP), node_name="n2")]
    # n3 is free: the new pod goes there; the next one (same pass) finds every node taken
    got = scheduler.plan([*placed, pod("c", hp(8080)), pod("d", hp(8080))], nodes)
    assert [(p.name, n) for p, n in got.bindings] == [("c", "n3")]
    (pending,) = got.unschedulable
    assert pending.pod.name == "d"
    assert pending.message == "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports."
    # a specific address clashes with 0.0.0.0 only: 10.1.1.1 fits n2, where only NODE_IP is taken
    got = scheduler.plan([*placed, pod("c", hp(8080), node_name="n3"), pod("d", hp(8080, "10.1.1.1"))], nodes)
    assert [(p.name, n) for p, n in got.bindings] == [("d", "n2")]
    # another protocol, or a pod that is gone (Succeeded), does not hold the port
    done = pod("a", hp(8080), node_name="n1", phase="Succeeded")
    got = scheduler.plan([done, pod("e", hp(8080, protocol="UDP"))], [node("n1")])
    assert [(p.name, n) for p, n in got.bindings] == [("e", "n1")]
    # reasons are counted per node and sorted as kube-scheduler prints them
    sel = Pod.model_validate({**pod("f", hp(8080)).to_dict(), "spec": {
        "containers": [{"name": "c", "ports": [hp(8080)]}], "nodeSelector": {"disk": "ssd"}}})
    got = scheduler.plan([*placed, pod("c", hp(8080), node_name="n3"), sel], nodes)
    assert got.unschedulable[0].message == ("0/3 nodes are available: 1 node(s) didn't have free ports for the "
                                            "requested pod ports, 2 node(s) didn't match Pod's node affinity/selector.")
    assert scheduler.plan([pod("g")], []).unschedulable[0].message == "no nodes available to schedule pods"


def test_node_forwards_running_pods_and_reports_a_clash() -> None:
    pods = [pod("web", hp(8080, container_port=80), node_name="n1", ip="10.244.1.2"),
            pod("dns", hp(5353, NODE_IP, "UDP", 53), node_name="n1", ip="10.244.1.3"),
            pod("web-copy", hp(8080, NODE_IP), node_name="n1", ip="10.244.1.4"),  # bound by hand: clashes
            pod("elsewhere", hp(8080), node_name="n2", ip="10.244.2.2"),
            pod("starting", hp(9000), node_name="n1"),  # no address yet
            pod("host", {"containerPort": 7000}, node_name="n1", ip=NODE_IP, host_network=True)]
    forwards, problems = node_mappings(pods, "n1")
    assert [(m.owner, str(m.key), m.pod_ip, m.container_port) for m in forwards] == [
        ("default/web", "0.0.0.0:8080/TCP", "10.244.1.2", 80),
        ("default/dns", f"{NODE_IP}:5353/UDP", "10.244.1.3", 53)]
    assert problems == [f"default/web-copy: host port {NODE_IP}:8080/TCP is taken by default/web"]
    assert node_mappings(list(reversed(pods)), "n1") == (forwards, problems)  # order of the input does not matter


def _rules(table: Any, chain: str) -> list[tuple[str, Any]]:
    return [(r.comment.split(" ", 1)[1], json.loads(r.expr_json)) for r in table.chains[chain].rules]


def test_the_hostport_table() -> None:
    forwards, _ = node_mappings([pod("web", hp(8080, container_port=80), node_name="n1", ip="10.244.1.2"),
                                 pod("dns", hp(5353, NODE_IP, "UDP", 53), node_name="n1", ip="10.244.1.3")], "n1")
    table = render_hostports(forwards)
    assert (table.family, table.name) == (HOSTPORT_TABLE.family, HOSTPORT_TABLE.name)
    base = {n: (c.type, c.hook, c.prio) for n, c in table.chains.items() if c.hook}
    assert base == {"prerouting": ("nat", "prerouting", -95), "output": ("nat", "output", -95),
                    "postrouting": ("nat", "postrouting", 95)}
    rules = _rules(table, "hostports")
    texts = [t for t, _ in rules]
    assert texts == [
        "default/web 0.0.0.0:8080/tcp to 10.244.1.2:80: hairpin, masquerade",
        "default/web 0.0.0.0:8080/tcp to 10.244.1.2:80: from localhost, masquerade",
        "default/web 0.0.0.0:8080/tcp to 10.244.1.2:80",
        f"default/dns {NODE_IP}:5353/udp to 10.244.1.3:53: hairpin, masquerade",  # no localhost rule: one address
        f"default/dns {NODE_IP}:5353/udp to 10.244.1.3:53"]
    web_dnat, dns_dnat = rules[2][1], rules[4][1]
    assert {"fib": {"result": "type", "flags": ["daddr"]}} in [m["match"]["left"] for m in web_dnat if "match" in m]
    assert web_dnat[-1] == {"dnat": {"addr": "10.244.1.2", "port": 80}}
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": NODE_IP}} in dns_dnat
    assert {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}} in dns_dnat
    hairpin = rules[0][1]
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.244.1.2"}} in hairpin
    assert HOSTPORT_MARK == 0x2000 and "masquerade" in json.dumps(_rules(table, "postrouting"))
    assert render_hostports(list(reversed(forwards))) == table
    assert render_hostports([]).chains["hostports"].rules == ()


def test_the_control_loop_records_failed_scheduling() -> None:
    from podnet.agent.control import ControlLoop
    from podnet.model import Event
    from podnet.store.open import open_store_url

    store = open_store_url("memory://")
    store.create(node("n1"))
    store.create(pod("first", hp(8080)))
    loop = ControlLoop(store, gc_every=1e9)
    loop.reconcile(store.snapshot())
    store.create(pod("second", hp(8080)))
    loop.reconcile(store.snapshot())
    first, second = store.get(Pod, "first"), store.get(Pod, "second")
    assert isinstance(first, Pod) and isinstance(second, Pod)
    assert first.spec.node_name == "n1" and second.spec.node_name is None
    events = {(e.to_dict()["involvedObject"]["name"], e.to_dict()["reason"]): e.to_dict()["message"]
              for e in store.list(Event)}
    assert events[("second", "FailedScheduling")] == (
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.")
    store.delete(Pod, "first", grace_period_seconds=0)  # a terminating pod still holds its ports
    loop.reconcile(store.snapshot())
    second = store.get(Pod, "second")
    assert isinstance(second, Pod) and second.spec.node_name == "n1"  # the port is free again


def test_cni_port_mappings_are_parsed_checked_and_forwarded() -> None:
    import pytest

    from podnet.cni import spec
    from podnet.cni.install import conflist
    from podnet.services.hostports import attachment_mappings

    assert conflist("n1", "/var/lib/podnet")["plugins"][0]["capabilities"] == {"portMappings": True}

    def conf(mappings: Any) -> spec.NetConf:
        return spec.parse_config(json.dumps({"cniVersion": "1.0.0", "name": "podnet", "nodeName": "n1",
                                             "runtimeConfig": {"portMappings": mappings}}))

    got = conf([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": NODE_IP}]).port_mappings
    assert got == ({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                   {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": NODE_IP})
    assert spec.parse_config(b'{"cniVersion":"1.0.0","name":"n","nodeName":"x"}').port_mappings == ()
    for bad, field in (([{"hostPort": 0, "containerPort": 80}], "runtimeConfig.portMappings[0].hostPort"),
                       ([{"hostPort": 80, "containerPort": "80"}], "runtimeConfig.portMappings[0].containerPort"),
                       ([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}],
                        "runtimeConfig.portMappings[0].protocol"),
                       ([{"hostPort": 80, "containerPort": 80, "hostIP": "nowhere"}],
                        "runtimeConfig.portMappings[0].hostIP"),
                       ({"hostPort": 80}, "runtimeConfig.portMappings")):
        with pytest.raises(spec.CniError) as e:
            conf(bad)
        assert e.value.code == 7 and f"'{field}'" in e.value.msg
    handles = [
        {"node": "n1", "ips": ["10.244.1.9"], "containerID": "0123456789abcdef", "portMappings": list(got)},
        {"node": "n2", "ips": ["10.244.2.9"], "containerID": "ffff", "portMappings": list(got)},  # another node
        {"node": "n1", "ips": ["10.244.1.10"], "containerID": "aaaa"},  # no ports
    ]
    forwards = attachment_mappings(handles, "n1")
    assert [(m.owner, str(m.key), m.pod_ip, m.container_port) for m in forwards] == [
        ("cni/0123456789ab", "0.0.0.0:8080/TCP", "10.244.1.9", 80),
        ("cni/0123456789ab", f"{NODE_IP}:5353/UDP", "10.244.1.9", 53)]
    # a store pod holding the port first keeps it; the attachment is reported
    web = pod("web", hp(8080), node_name="n1", ip="10.244.1.2")
    taken, problems = node_mappings([web], "n1", forwards)
    assert [m.owner for m in taken] == ["default/web", "cni/0123456789ab"]
    assert problems == ["cni/0123456789ab: host port 0.0.0.0:8080/TCP is taken by default/web"]


def test_the_proxy_view_follows_this_nodes_pods_and_cni_attachments() -> None:
    from podnet.agent.policy_view import LiveView
    from podnet.agent.proxy import ProxyView
    from podnet.ipam.blocks import handle_key
    from podnet.store.memory import MemoryStore
    from podnet.store.resources import ResourceStore

    store = ResourceStore(MemoryStore())
    store.bootstrap()
    view = ProxyView(LiveView(store), "n1")

    def forwards() -> list[str]:
        view.refresh()
        return [f"{m.owner} {m.key}" for m in view.host_ports[0]]

    def put(p: Pod) -> None:
        store.apply([p])
        store.update_status(p)

    assert forwards() == [] and view.context_changed  # the first refresh reads everything
    put(pod("web", hp(8080), node_name="n1", ip="10.244.1.2"))
    put(pod("away", hp(9090), node_name="n2", ip="10.244.2.2"))
    assert forwards() == ["default/web 0.0.0.0:8080/TCP"]
    assert not view.context_changed  # pod writes leave the service table idle
    store.kv.create(handle_key("podnet.c0ffee.eth0"), {
        "node": "n1", "ips": ["10.244.1.9"], "containerID": "c0ffee", "network": "podnet",
        "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]})
    assert forwards() == ["default/web 0.0.0.0:8080/TCP", "cni/c0ffee 0.0.0.0:18080/TCP"]
    fresh = ProxyView(LiveView(store), "n1")  # a restarted proxy reads the same from a full load
    fresh.refresh()
    assert fresh.host_ports == view.host_ports
    store.kv.delete(handle_key("podnet.c0ffee.eth0"))
    store.delete(Pod, "web", "default", grace_period_seconds=0)
    assert forwards() == []
