"""LoadBalancer addresses on the underlay without BGP (host-gw), the MetalLB layer-2 way: one
node holds each address and answers ARP for it, the external host reaches the Service through
the router's connected segment, and when that node is excluded from load balancers the
address moves to another node, announced with gratuitous ARP, and traffic follows."""
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
metadata: {name: lb-segment}
spec: {cidr: 192.168.10.240/29, blockSize: 29, allowedUses: [LoadBalancer], nodeSelector: all()}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
"""
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefixes: Prefixes) -> Iterator[Cluster]:
    c = Cluster(str(tmp_path_factory.mktemp("svc-l2")), prefixes.new())
    try:
        c.cli("up", "--nodes", "2", "--backend", "host-gw", "--prefix", c.prefix, timeout=180)
        yield c
    finally:
        c.cli("down", check=False, timeout=120)


def holders(cluster: Cluster, address: str) -> list[str]:
    """The nodes whose underlay device holds ``address`` as a podnet LoadBalancer address."""
    out = []
    for node in cluster.status()["nodes"]:
        shown = subprocess.run(["ip", "-n", node["netns"], "-4", "addr", "show", "dev", "eth0"],
                               capture_output=True, text=True, check=True).stdout
        if any(f"inet {address}/32" in line and line.rstrip().endswith("eth0:lb") for line in shown.splitlines()):
            out.append(node["name"])
    return out


def wait_for(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_one_node_answers_and_the_address_moves_when_it_is_excluded(cluster: Cluster) -> None:
    cluster.apply(APP.replace("REPLICAS", "2") + "---" + SERVICE)
    cluster.settled(2)
    lb = cluster.service("web-lb").ingress_addresses
    assert lb and lb[0].startswith("192.168.10.24"), lb
    address = lb[0]
    wait_for("one node takes the address", lambda: len(holders(cluster, address)) == 1)
    first = holders(cluster, address)[0]
    external = cluster.status()["topology"].externals[0].netns
    replicas = cluster.web_pods()
    assert http_get(external, address, 8080, 2.0) in replicas

    cluster.cli("label", "node", first, f"{EXCLUDE}=")
    # Each node's agent reacts to the label on its own, so for a moment both may hold it (as
    # with MetalLB's speakers): wait until exactly one other node does.
    wait_for("the address moves to one other node",
             lambda: len(h := holders(cluster, address)) == 1 and h != [first])
    t0 = time.monotonic()
    while http_get(external, address, 8080, 1.0) not in replicas:  # the router's ARP entry moves
        assert time.monotonic() - t0 < 5, "traffic did not follow the address"
    cluster.cli("label", "node", first, f"{EXCLUDE}-")
