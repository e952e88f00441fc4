"""Service, Endpoints and EndpointSlice validation as kube-apiserver's ValidateService does it,
each refusal located at the field's line in the manifest; IPPool allowedUses LoadBalancer."""
from __future__ import annotations

import textwrap

import pydantic
import pytest

from podnet.errors import ValidationError
from podnet.ipam.allocator import IPAM
from podnet.manifest import load_text
from podnet.model import EndpointSlice, IPPool, Service
from podnet.model.registry import lookup_resource
from podnet.store.memory import MemoryStore

HEAD = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n"


def refusal(spec: str) -> tuple[str, int, str]:
    """(field path, line, message) of the one problem in a Service whose spec is ``spec``."""
    with pytest.raises(ValidationError) as info:
        load_text(HEAD + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n", "svc.yaml")
    (problem,) = info.value.problems
    assert problem.location is not None and problem.location.file == "svc.yaml"
    return problem.field_path, problem.location.line, problem.message


@pytest.mark.parametrize("spec,path,line,words", [
    ("ports:\n- port: 80\nexternalTrafficPolicy: Local\n", "spec.externalTrafficPolicy", 8,
     "may only be set for externally-accessible services"),
    ("ports:\n- port: 80\n- port: 81\n  name: b\n", "spec.ports[0].name", 7, "required when the Service has more"),
    ("ports:\n- name: a\n  port: 80\n- name: a\n  port: 81\n", "spec.ports[1].name", 9, "duplicate port name 'a'"),
    ("type: ExternalName\nexternalName: db.example.com\nclusterIP: 10.96.0.5\n", "spec.clusterIP", 8,
     "may not be set for ExternalName"),
    ("type: ExternalName\nexternalName: Not_DNS\n", "spec.externalName", 7, "lower-case DNS name"),
    ("type: NodePort\nclusterIP: None\nports:\n- port: 80\n", "spec.clusterIP", 7, "may not be set to 'None'"),
    ("type: NodePort\nports:\n- port: 80\n  nodePort: 80\n", "spec.ports[0].nodePort", 9,
     "provided port is not in the valid range. The range of valid ports is 30000-32767"),
    ("type: ExternalName\nexternalName: a.b\nports:\n- port: 80\n  nodePort: 30080\n", "spec.ports[0].nodePort", 10,
     "may not be set when type is ExternalName"),
    ("type: NodePort\nports:\n- port: 80\nhealthCheckNodePort: 30100\n", "spec.healthCheckNodePort", 9,
     "only be set when type is 'LoadBalancer' and externalTrafficPolicy is 'Local'"),
    ("ports:\n- port: 80\nsessionAffinity: ClientIP\nsessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 86401\n",
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 11, "less than or equal to 86400"),
    ("ports:\n- port: 80\nsessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 60\n", "spec.sessionAffinityConfig",
     8, "must not be set when sessionAffinity is None"),
    ("ports:\n- port: 80\nloadBalancerClass: example.com/lb\n", "spec.loadBalancerClass", 8,
     "may only be used when type is 'LoadBalancer'"),
    ("ports:\n- port: 80\nallocateLoadBalancerNodePorts: false\n", "spec.allocateLoadBalancerNodePorts", 8,
     "may only be used when type is 'LoadBalancer'"),
    ("ports:\n- port: 80\nclusterIP: 10.96.0.5\nclusterIPs: [10.96.0.6]\n", "spec.clusterIPs[0]", 9,
     "must match clusterIP"),
    ("ports:\n- port: 80\nipFamilyPolicy: SingleStack\nipFamilies: [IPv4, IPv6]\n", "spec.ipFamilies", 9,
     "only one family"),
    ("ports:\n- port: 80\nexternalIPs: [203.0.113.300]\n", "spec.externalIPs[0]", 8, "not a valid IP address"),
])
def test_refused_at_the_field_and_its_line(spec: str, path: str, line: int, words: str) -> None:
    got_path, got_line, message = refusal(spec)
    assert (got_path, got_line) == (path, line) and words in message


@pytest.mark.parametrize("spec", [
    {"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
    {"externalIPs": ["203.0.113.10"], "externalTrafficPolicy": "Local", "ports": [{"port": 80}]},
    {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100, "ports": [{"port": 80}]},
    {"type": "ExternalName", "externalName": "db.example.com."},
    {"clusterIP": "None", "selector": {"app": "db"}},
    {"ports": [{"port": 80, "targetPort": "http"}], "sessionAffinity": "ClientIP",
     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
    {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "allocateLoadBalancerNodePorts": False,
     "ports": [{"name": "a", "port": 53, "protocol": "UDP", "nodePort": 30053},
               {"name": "b", "port": 53, "protocol": "TCP", "nodePort": 30053}]},
])
def test_valid_services_are_accepted(spec: dict) -> None:
    assert Service.model_validate({"metadata": {"name": "s"}, "spec": spec})


def test_endpoints_kinds_and_their_short_names() -> None:
    assert lookup_resource("ep").KIND == "Endpoints"  # type: ignore[union-attr]
    assert lookup_resource("endpointslice") is EndpointSlice
    assert lookup_resource("endpointslices.discovery.k8s.io") is EndpointSlice
    good = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"name": "", "port": 80}]}
    assert EndpointSlice.model_validate(good).endpoints[0].conditions.ready is None
    with pytest.raises(pydantic.ValidationError, match="not an IPv4 address"):
        EndpointSlice.model_validate({**good, "endpoints": [{"addresses": ["fd00::1"]}]})
    with pytest.raises(pydantic.ValidationError, match="exactly one address"):
        EndpointSlice.model_validate({**good, "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}]})


def pool(**spec: object) -> IPPool:
    return IPPool.model_validate({"metadata": {"name": "lb"}, "spec": {"cidr": "192.168.200.0/26", **spec}})


def test_load_balancer_pools_follow_calicos_rules() -> None:
    assert pool(allowedUses=["LoadBalancer"]).spec.allows("LoadBalancer")
    assert pool().spec.allows("Workload") and not pool().spec.allows("LoadBalancer")
    for spec, words in [({"allowedUses": ["LoadBalancer", "Workload"]}, "cannot be combined with Workload"),
                        ({"allowedUses": ["LoadBalancer"], "vxlanMode": "Always"}, "ipipMode and vxlanMode Never"),
                        ({"allowedUses": ["LoadBalancer"], "nodeSelector": "zone == 'a'"}, "must use all()"),
                        ({"allowedUses": ["LoadBalancer"], "disableBGPExport": True}, "exported over BGP")]:
        with pytest.raises(pydantic.ValidationError, match=words):
            pool(**spec)


def test_pod_ipam_never_hands_out_load_balancer_addresses() -> None:
    kv = MemoryStore()
    lb = pool(allowedUses=["LoadBalancer"])
    kv.create("/registry/ippools/lb", lb.to_dict())
    ipam = IPAM(kv, default_cidr="10.244.0.0/16")
    got = ipam.assign("h1", "node-1", {})
    assert got.ip.startswith("10.244.") and [p.name for p in ipam.pools()] == ["default-ipv4-ippool"]
