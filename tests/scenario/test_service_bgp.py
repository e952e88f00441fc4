"""LoadBalancer addresses announced over BGP as Calico does: with `podnet up --router-bgp` the
lab router peers with every node (a top-of-rack router); once the default BGPConfiguration
lists `serviceLoadBalancerIPs` and `serviceClusterIPs`, the router learns the blocks from every
node and a Local Service's /32 only from the node holding its endpoint, and the external host
reaches the Service through those routes. No node routes the blocks in its own kernel."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from podnet.testing.leaks import Prefixes
from podnet.testing.service_lab import http_get

from test_s7_services import APP, Cluster

pytestmark = [pytest.mark.scenario, pytest.mark.kernel]

SERVICE = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: lb-pool}
spec: {cidr: 192.168.78.0/26, allowedUses: [LoadBalancer], nodeSelector: all()}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
"""

ANNOUNCE = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/12}]
  serviceLoadBalancerIPs: [{cidr: 192.168.78.0/26}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("svc-bgp")), prefixes.new())
    try:
        c.cli("up", "--nodes", "2", "--backend", "bgp", "--router-bgp", "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def _ip_route(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "route"], capture_output=True, text=True, check=True).stdout


def _route_block(table: str, prefix: str) -> str:
    """The lines of ``ip route`` output for ``prefix`` (a multipath route's next hops follow it,
    indented)."""
    lines = table.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == [prefix]:
            block = [line]
            for nexthop in lines[i + 1:]:
                if not nexthop[:1].isspace():
                    break
                block.append(nexthop)
            return "\n".join(block)
    return ""


def test_load_balancer_addresses_reach_the_router_over_bgp(cluster: Cluster) -> None:
    cluster.apply(APP.replace("REPLICAS", "1") + "---" + SERVICE)
    cluster.settled(1)
    st = cluster.status()
    router = st["topology"].router_netns
    external = st["topology"].externals[0].netns
    lb = cluster.service("web-lb").ingress_addresses
    assert lb, "the LoadBalancer got no address"
    replicas = cluster.web_pods()
    from podnet.model import Pod

    web = cluster.read(lambda store: [p for p in store.list(Pod) if p.labels.get("app") == "web"])
    owner = next(n["address"] for n in st["nodes"] if n["name"] == web[0].spec.node_name)
    others = [n["address"] for n in st["nodes"] if n["name"] != web[0].spec.node_name]
    # Nothing announced yet: the router has no way to the address.
    assert "192.168.78." not in _ip_route(router)
    assert http_get(external, lb[0], 8080, 1.0) not in replicas

    cluster.apply(ANNOUNCE)
    deadline = time.monotonic() + 30
    while True:
        table = _ip_route(router)
        aggregate, host = _route_block(table, "192.168.78.0/26"), _route_block(table, lb[0])
        if aggregate and host and all(a in aggregate for a in (owner, *others)):
            break
        assert time.monotonic() < deadline, f"the router did not learn the Service's routes:\n{table}"
        time.sleep(0.2)
    # The Local Service's /32 comes only from the node holding its endpoint; the block from all.
    assert owner in host and not any(a in host for a in others), host
    assert "10.96.0.0/12" in table
    assert http_get(external, lb[0], 8080, 2.0) in replicas
    # The nodes announce the blocks but never route them through their own kernels.
    for node in st["nodes"]:
        own = _ip_route(node["netns"])
        assert "10.96.0.0/12" not in own and "192.168.78." not in own, (node["name"], own)
