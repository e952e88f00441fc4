"""Service allocation at apply time, as kube-apiserver does it: ClusterIP, nodePorts,
healthCheckNodePort and LoadBalancer addresses, in the write's own transaction.

The pure planner (``services.admission.admit``) is driven directly; the store tests check
that a refused apply writes nothing, that deletes free what they held, that the state
survives a reopen of the SQLite store, and that concurrent applies in several processes never
hand out one value twice."""
from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from podnet.errors import ValidationError
from podnet.manifest import load_text, with_source
from podnet.model import IPPool, Namespace, Service
from podnet.services.admission import Change, admit
from podnet.services.allocation import CLUSTER_IPS, CONFIG_KEY, LB_IPS, NODE_PORTS, Allocations, static_band
from podnet.store.open import open_store_url
from podnet.store.resources import ResourceStore

CIDR = ipaddress.ip_network("10.96.0.0/12")


def svc(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return Service.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec}).to_dict()


def lb_pool(name: str = "lb", cidr: str = "192.168.200.0/30", **spec: Any) -> dict[str, Any]:
    return IPPool.model_validate({"metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": 30,
                                                                      "allowedUses": ["LoadBalancer"], **spec}}).to_dict()


class Cluster:
    """The allocation keys as the store would hold them, fed through ``admit`` like the store does."""

    def __init__(self, **extra: dict[str, Any]) -> None:
        self.keys: dict[str, dict[str, Any]] = dict(extra)
        self.services: dict[str, dict[str, Any]] = {}
        self.rng = random.Random(7)

    def write(self, *values: dict[str, Any]) -> list[dict[str, Any]]:
        changes = [Change(v["metadata"]["name"], v, self.services.get(v["metadata"]["name"])) for v in values]
        out = admit(changes, self.keys, self.rng)
        self._commit(out)
        for value in out.values:
            assert value is not None
            self.services[value["metadata"]["name"]] = value
        return [v for v in out.values if v is not None]

    def delete(self, name: str) -> None:
        self._commit(admit([Change(name, None, self.services.pop(name))], self.keys, self.rng))

    def _commit(self, out: Any) -> None:
        self.keys.update(out.puts)
        for key in out.deletes:
            del self.keys[key]

    def taken(self, prefix: str) -> dict[str, str]:
        return {k[len(prefix):]: v["service"] for k, v in self.keys.items() if k.startswith(prefix)}


def refused(cluster: Cluster, *values: dict[str, Any]) -> str:
    before = dict(cluster.keys)
    with pytest.raises(ValidationError) as info:
        cluster.write(*values)
    assert cluster.keys == before  # nothing taken
    return str(info.value)


# -- ClusterIP ---------------------------------------------------------------------------------
def test_cluster_ips_come_from_the_dynamic_band_and_are_echoed_as_the_api_server_does() -> None:
    cluster = Cluster()
    band = static_band(CIDR.num_addresses, 16, 256)
    values = cluster.write(*(svc(f"s{i}") for i in range(50)))
    ips = [v["spec"]["clusterIP"] for v in values]
    assert len(set(ips)) == 50
    for value, ip in zip(values, ips):
        offset = int(ipaddress.ip_address(ip)) - int(CIDR.network_address)
        assert band <= offset < CIDR.num_addresses - 1
        spec = value["spec"]
        assert spec["clusterIPs"] == [ip] and spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
        assert spec["sessionAffinity"] == "None" and spec["internalTrafficPolicy"] == "Cluster"
        assert spec["ports"][0]["targetPort"] == 80 and value["status"] == {"loadBalancer": {}}
    assert cluster.taken(CLUSTER_IPS) == {ip: f"default/s{i}" for i, ip in enumerate(ips)}


def test_the_reserved_addresses_are_never_picked_but_may_be_asked_for() -> None:
    cluster = Cluster(**{CONFIG_KEY: {"serviceCIDR": "10.0.0.0/28"}})  # 14 addresses, all in the static band
    values = cluster.write(*(svc(f"s{i}") for i in range(12)))
    picked = {v["spec"]["clusterIP"] for v in values}
    assert "10.0.0.1" not in picked and "10.0.0.10" not in picked and len(picked) == 12
    assert "range 10.0.0.0/28 is full" in refused(cluster, svc("more"))
    assert cluster.write(svc("kubernetes", clusterIP="10.0.0.1"), svc("kube-dns", namespace="kube-system",
                                                                       clusterIP="10.0.0.10"))


def test_a_requested_cluster_ip_is_honoured_or_refused_in_the_api_servers_words() -> None:
    cluster = Cluster()
    (value,) = cluster.write(svc("a", clusterIP="10.96.0.50"))
    assert value["spec"]["clusterIP"] == "10.96.0.50"
    assert "failed to allocate IP 10.96.0.50: provided IP is already allocated" in refused(
        cluster, svc("b", clusterIP="10.96.0.50"))
    assert "is not in the valid range. The range of valid IPs is 10.96.0.0/12" in refused(
        cluster, svc("b", clusterIP="10.200.0.1"))
    assert "not in the valid range" in refused(cluster, svc("b", clusterIP="10.96.0.0"))  # the network address


def test_headless_and_external_name_services_take_no_address() -> None:
    cluster = Cluster()
    headless, external = cluster.write(svc("db", clusterIP="None", selector={"app": "db"}, ports=None),
                                       svc("ext", type="ExternalName", externalName="db.example.com", ports=None))
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    assert "clusterIP" not in external["spec"] and "ipFamilies" not in external["spec"]
    assert cluster.taken(CLUSTER_IPS) == {}


def test_cluster_ip_is_immutable_but_a_reapply_without_it_keeps_it() -> None:
    cluster = Cluster()
    (first,) = cluster.write(svc("a"))
    (again,) = cluster.write(svc("a"))  # the manifest has no clusterIP: the allocated one stays
    assert again == first
    message = refused(cluster, svc("a", clusterIP="10.96.0.77"))
    assert "spec.clusterIP" in message and "may not change once set" in message
    assert "may not change once set" in refused(cluster, svc("a", clusterIP="None"))


def test_type_changes_release_what_the_new_type_does_not_use() -> None:
    cluster = Cluster()
    cluster.write(svc("a", type="NodePort"))
    assert len(cluster.taken(CLUSTER_IPS)) == 1 and len(cluster.taken(NODE_PORTS)) == 1
    (clusterip,) = cluster.write(svc("a"))
    assert cluster.taken(NODE_PORTS) == {} and "nodePort" not in clusterip["spec"]["ports"][0]
    cluster.write(svc("a", type="ExternalName", externalName="x.example.com", ports=None))
    assert cluster.taken(CLUSTER_IPS) == {}
    (back,) = cluster.write(svc("a"))  # leaving ExternalName allocates again
    assert list(cluster.taken(CLUSTER_IPS)) == [back["spec"]["clusterIP"]]


def test_unsupported_families_are_refused() -> None:
    cluster = Cluster()
    assert "IPv6 is not configured on this cluster" in refused(cluster, svc("a", ipFamilies=["IPv6"]))
    assert "not configured for dual-stack" in refused(cluster, svc("a", ipFamilyPolicy="RequireDualStack"))
    (value,) = cluster.write(svc("a", ipFamilyPolicy="PreferDualStack"))
    assert value["spec"]["ipFamilies"] == ["IPv4"]


# -- node ports --------------------------------------------------------------------------------
def test_node_ports_are_allocated_per_port_number_and_explicit_ones_checked() -> None:
    cluster = Cluster()
    (dns,) = cluster.write(svc("dns", type="NodePort", ports=[
        {"name": "udp", "port": 53, "protocol": "UDP"}, {"name": "tcp", "port": 53}, {"name": "web", "port": 80,
                                                                                         "nodePort": 30080}]))
    udp, tcp, web = (p["nodePort"] for p in dns["spec"]["ports"])
    assert udp == tcp != web == 30080  # one node port per service port number, as initNodePorts
    assert 30086 <= udp <= 32767  # the dynamic band first
    assert dns["spec"]["externalTrafficPolicy"] == "Cluster"
    message = refused(cluster, svc("other", type="NodePort", ports=[{"port": 81, "nodePort": 30080}]))
    assert "spec.ports[0].nodePort: 30080: provided port is already allocated" in message
    message = refused(cluster, svc("twice", type="NodePort", ports=[{"name": "a", "port": 81, "nodePort": 30090},
                                                                      {"name": "b", "port": 82, "nodePort": 30090,
                                                                       "protocol": "UDP"}]))
    assert "spec.ports[1].nodePort: 30090: provided port is already allocated" in message


def test_node_ports_survive_a_reapply_and_are_matched_by_port_name() -> None:
    cluster = Cluster()
    (first,) = cluster.write(svc("a", type="NodePort", ports=[{"name": "http", "port": 80}, {"name": "x", "port": 81}]))
    ports = {p["name"]: p["nodePort"] for p in first["spec"]["ports"]}
    (again,) = cluster.write(svc("a", type="NodePort", ports=[{"name": "x", "port": 8081}, {"name": "http", "port": 80}]))
    assert {p["name"]: p["nodePort"] for p in again["spec"]["ports"]} == ports
    (moved,) = cluster.write(svc("a", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30999}]))
    assert cluster.taken(NODE_PORTS) == {"30999": "default/a"} and moved["spec"]["ports"][0]["nodePort"] == 30999


def test_health_check_node_port_only_for_load_balancer_with_local_policy() -> None:
    cluster = Cluster()
    (local,) = cluster.write(svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    hc = local["spec"]["healthCheckNodePort"]
    assert hc != local["spec"]["ports"][0]["nodePort"] and cluster.taken(NODE_PORTS)[str(hc)] == "default/lb"
    (same,) = cluster.write(svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    assert same["spec"]["healthCheckNodePort"] == hc
    (cluster_policy,) = cluster.write(svc("lb", type="LoadBalancer"))
    assert "healthCheckNodePort" not in cluster_policy["spec"] and str(hc) not in cluster.taken(NODE_PORTS)
    assert "30050: provided port is already allocated" in refused(cluster, svc(
        "x", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30050,
        ports=[{"port": 80, "nodePort": 30050}]))


def test_allocate_load_balancer_node_ports_false_takes_only_explicit_ones() -> None:
    cluster = Cluster()
    (value,) = cluster.write(svc("lb", type="LoadBalancer", allocateLoadBalancerNodePorts=False,
                                 ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]))
    assert "nodePort" not in value["spec"]["ports"][0] and cluster.taken(NODE_PORTS) == {"30081": "default/lb"}


# -- LoadBalancer addresses ----------------------------------------------------------------------
def test_load_balancer_addresses_come_from_the_pool_into_status() -> None:
    cluster = Cluster(**{"/registry/ippools/lb": lb_pool()})
    a, b = cluster.write(svc("a", type="LoadBalancer"), svc("b", type="LoadBalancer"))
    assert a["status"] == {"loadBalancer": {"ingress": [{"ip": "192.168.200.1", "ipMode": "VIP"}]}}
    assert b["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.200.2"
    (c,) = cluster.write(svc("c", type="LoadBalancer"))
    assert c["status"] == {"loadBalancer": {}}  # the /30 is full: pending, as MetalLB leaves it
    cluster.delete("a")
    assert cluster.taken(LB_IPS) == {"192.168.200.2": "default/b"}
    (c,) = cluster.write(svc("c", type="LoadBalancer"))
    assert c["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.200.1"


def test_requested_load_balancer_ip_and_foreign_classes() -> None:
    cluster = Cluster(**{"/registry/ippools/lb": lb_pool(), "/registry/ippools/pods": IPPool.model_validate(
        {"metadata": {"name": "pods"}, "spec": {"cidr": "10.244.0.0/16"}}).to_dict()})
    (a,) = cluster.write(svc("a", type="LoadBalancer", loadBalancerIP="192.168.200.2"))
    assert a["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.200.2"
    assert "provided IP is already allocated" in refused(cluster, svc("b", type="LoadBalancer",
                                                                        loadBalancerIP="192.168.200.2"))
    assert "in no IPPool with allowedUses [LoadBalancer]" in refused(cluster, svc("b", type="LoadBalancer",
                                                                                   loadBalancerIP="10.244.0.9"))
    (other,) = cluster.write(svc("o", type="LoadBalancer", loadBalancerClass="example.com/other"))
    assert other["status"] == {"loadBalancer": {}} and "default/o" not in cluster.taken(LB_IPS).values()
    assert "may not change once set" in refused(cluster, svc("o", type="LoadBalancer"))
    (plain,) = cluster.write(svc("a"))  # no longer a LoadBalancer: the address goes back
    assert plain["status"] == {"loadBalancer": {}} and cluster.taken(LB_IPS) == {}


def test_a_manual_pool_serves_only_requested_addresses() -> None:
    cluster = Cluster(**{"/registry/ippools/lb": lb_pool(assignmentMode="Manual")})
    (auto,) = cluster.write(svc("a", type="LoadBalancer"))
    assert auto["status"] == {"loadBalancer": {}}
    (asked,) = cluster.write(svc("b", type="LoadBalancer", loadBalancerIP="192.168.200.1"))
    assert asked["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.168.200.1"


def test_deleting_frees_everything_the_service_held() -> None:
    cluster = Cluster(**{"/registry/ippools/lb": lb_pool()})
    cluster.write(svc("a", type="LoadBalancer", externalTrafficPolicy="Local"), svc("b", type="NodePort"))
    cluster.delete("a")
    assert "default/a" not in {**cluster.taken(CLUSTER_IPS), **cluster.taken(NODE_PORTS),
                               **cluster.taken(LB_IPS)}.values()
    assert len(cluster.taken(NODE_PORTS)) == 1 and len(cluster.taken(CLUSTER_IPS)) == 1


def test_allocations_round_trip_through_store_values() -> None:
    cluster = Cluster(**{"/registry/ippools/lb": lb_pool()})
    cluster.write(svc("a", type="LoadBalancer"), svc("b", type="NodePort"))
    allocs = Allocations.from_values(cluster.keys)
    assert allocs.writes(Allocations.from_values(cluster.keys)) == ({}, [])
    assert set(allocs.lb_ips) == {"192.168.200.1"} and len(allocs.node_ports) == 2


# -- through the store ---------------------------------------------------------------------------
MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  ports:
  - port: 80
    nodePort: {node_port}
"""


def applied(store: ResourceStore, text: str, filename: str = "svc.yaml") -> list[Any]:
    return store.apply([with_source(item) for item in load_text(text, filename)])


def allocation_keys(store: ResourceStore) -> dict[str, str]:
    return {k: v["service"] for k, v in store.snapshot().raw.items() if k.startswith("/podnet/services/")
            and k != CONFIG_KEY}


def test_a_refused_apply_is_located_and_writes_nothing() -> None:
    store = open_store_url("memory://")
    applied(store, MANIFEST.format(name="a", node_port=30080))
    before, revision = allocation_keys(store), store.revision()
    text = MANIFEST.format(name="b", node_port=30081) + "---\n" + MANIFEST.format(name="c", node_port=30080)
    with pytest.raises(ValidationError) as info:
        applied(store, text, "two.yaml")
    assert str(info.value.problems[0]).startswith("two.yaml:11:1: Service/c: spec.ports[0].nodePort: 30080: "
                                                  "provided port is already allocated")
    assert store.revision() == revision and allocation_keys(store) == before  # b's allocations did not leak
    assert store.get(Service, "b") is None


def test_reapply_is_unchanged_and_namespace_delete_frees() -> None:
    store = open_store_url("memory://")
    store.apply([Namespace.model_validate({"metadata": {"name": "team"}})])
    value = svc("web", namespace="team", type="LoadBalancer", externalTrafficPolicy="Local")
    store.apply([IPPool.model_validate(lb_pool())])
    ((first, action),) = store.apply([Service.model_validate(value)])
    assert action == "created" and first.ingress_addresses == ["192.168.200.1"]
    ((again, action),) = store.apply([Service.model_validate(value)])
    assert action == "unchanged" and again.spec == first.spec
    assert len(allocation_keys(store)) == 4  # clusterIP, nodePort, healthCheckNodePort, LB address
    store.delete(Namespace, "team")
    assert allocation_keys(store) == {}


def test_create_update_and_delete_go_through_admission_too() -> None:
    store = open_store_url("memory://")
    created = store.create(Service.model_validate(svc("a", type="NodePort")))
    assert created.spec.cluster_ip and created.spec.ports and created.spec.ports[0].node_port
    updated = store.update(Service.model_validate(svc("a")))
    assert updated.spec.cluster_ip == created.spec.cluster_ip and not updated.spec.ports[0].node_port  # type: ignore[index]
    assert set(allocation_keys(store).values()) == {"default/a"} and len(allocation_keys(store)) == 1
    store.delete(Service, "a")
    assert allocation_keys(store) == {}


def test_allocation_state_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/store.db"
    store = open_store_url(url)
    ((a, _),) = store.apply([Service.model_validate(svc("a", type="NodePort"))])
    store.close()
    store = open_store_url(url)
    clash = svc("b", type="NodePort", clusterIP=a.spec.cluster_ip)
    with pytest.raises(ValidationError, match="provided IP is already allocated"):
        store.apply([Service.model_validate(clash)])
    store.close()


WRITER = textwrap.dedent("""
    import json, sys, time
    from podnet.model import Service
    from podnet.store.open import open_store_url
    store = open_store_url(sys.argv[1], bootstrap=False)
    worker, count, start = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, start - time.time()))  # every writer starts at once
    for i in range(count):
        kind = ("ClusterIP", "NodePort", "LoadBalancer")[i % 3]
        svc = Service.model_validate({"metadata": {"name": f"w{worker}-s{i}"},
                                      "spec": {"type": kind, "ports": [{"port": 80}]}})
        store.apply([svc])
    store.close()
    print("done")
""")


def test_concurrent_applies_in_many_processes_never_share_an_address_or_port(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/store.db"
    store = open_store_url(url)
    store.apply([IPPool.model_validate(lb_pool(cidr="192.168.200.0/26", blockSize=26))])
    workers, each = 4, 15
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(w), str(each), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for w in range(workers)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done", err
    services = [s for s in store.list(Service) if isinstance(s, Service)]
    assert len(services) == workers * each
    ips = [s.spec.cluster_ip for s in services]
    ports = [p.node_port for s in services for p in s.spec.ports or () if p.node_port]
    lbs = [ip for s in services for ip in s.ingress_addresses]
    assert len(set(ips)) == len(ips) and len(set(ports)) == len(ports) == workers * each * 2 // 3
    assert len(set(lbs)) == len(lbs) == workers * each // 3
    keys = allocation_keys(store)
    owners = {f"default/{s.name}" for s in services}
    assert set(keys.values()) == owners and len(keys) == len(ips) + len(ports) + len(lbs)  # no leak, no orphan
    store.close()


def test_up_records_the_service_cidr_and_creates_the_kubernetes_service() -> None:
    from podnet.cluster.lifecycle import register_services
    from podnet.errors import PodnetError
    from podnet.services.cluster import service_config

    store = open_store_url("memory://")
    register_services(store, service_config("10.100.0.0/16", "10.244.0.0/16"))
    kubernetes = store.get(Service, "kubernetes")
    assert isinstance(kubernetes, Service) and kubernetes.spec.cluster_ip == "10.100.0.1"
    assert kubernetes.spec.selector is None and kubernetes.spec.ports[0].port == 443  # type: ignore[index]
    ((web, _),) = store.apply([Service.model_validate(svc("web"))])
    assert ipaddress.ip_address(web.spec.cluster_ip) in ipaddress.ip_network("10.100.0.0/16")  # type: ignore[arg-type]
    register_services(store, service_config("10.100.0.0/16"))  # again: nothing changes
    with pytest.raises(PodnetError, match="cannot change the service CIDR"):
        register_services(store, service_config("10.101.0.0/16"))
    with pytest.raises(PodnetError, match="overlaps the pod CIDR"):
        service_config("10.244.0.0/12", "10.244.0.0/16")
    with pytest.raises(PodnetError, match="too small"):
        service_config("10.96.0.0/29")


def test_a_service_stored_without_its_allocation_key_gets_it_on_the_next_apply() -> None:
    store = open_store_url("memory://")
    value = svc("old", clusterIP="10.96.0.99")
    ((stored, _),) = store.apply([Service.model_validate(value)])
    store.kv.delete(CLUSTER_IPS + "10.96.0.99")  # as if written before allocation keys existed
    ((again, action),) = store.apply([Service.model_validate(value)])
    assert action == "unchanged" and allocation_keys(store) == {CLUSTER_IPS + "10.96.0.99": "default/old"}
