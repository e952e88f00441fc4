"""The lab router as a top-of-rack BGP speaker (``podnet up --router-bgp``).

Calico clusters on bare metal peer each node with its rack's router; that is how Service
addresses announced per the BGPConfiguration (``serviceLoadBalancerIPs`` …) reach the outside.
Here the router namespace, which already joins the node segments to the external one, runs its
own BIRD in AS 64513: one eBGP session per node on the node's segment, every route learned
installed in its kernel (ECMP over the nodes announcing it), nothing announced back. Each node
gets a ``BGPPeer`` naming its segment's gateway, so the nodes' side is planned like any peer."""
from __future__ import annotations

import os
from typing import Any

from podnet.kernel.bird import Bird
from podnet.model import BGPPeer

from .topology import Topology

ROUTER_AS = 64513
NODE_AS = 64512  # the cluster's default AS (routing/facts.py DEFAULT_AS)


def run_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "router-bgp")


def peer_resources(topo: Topology) -> list[BGPPeer]:
    """A node-specific BGPPeer per node: its segment's router address, AS 64513."""
    return [BGPPeer.model_validate({
        "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": f"lab-router-{n.name}"},
        "spec": {"node": n.name, "peerIP": n.gateway, "asNumber": ROUTER_AS}}) for n in topo.nodes]


def router_config(topo: Topology, node_as: int = NODE_AS) -> str:
    """BIRD 2 configuration of the router: learn from every node, install with ECMP, announce nothing."""
    router_id = topo.segments[0].gateway
    out = [f"# BIRD 2 configuration of the lab router (AS {ROUTER_AS}), rendered by podnet.",
           f"router id {router_id};", "", "protocol device { scan time 1; }", "",
           "protocol kernel {", "  ipv4 { import none; export all; };", "  merge paths on;", "}", "",
           "template bgp rack_node {", f"  local as {ROUTER_AS};", "  direct;", "  connect delay time 1;",
           "  connect retry time 2;", "  error wait time 1, 5;", "  ipv4 { import all; export none; };", "}"]
    for n in topo.nodes:
        name = "node_" + n.name.replace("-", "_")
        out += ["", f"protocol bgp {name} from rack_node {{", f"  description \"node {n.name}\";",
                f"  local {n.gateway} as {ROUTER_AS};", f"  neighbor {n.address} as {node_as};", "}"]
    return "\n".join(out) + "\n"


def start(state_dir: str, topo: Topology) -> dict[str, Any]:
    """Start the router's BIRD; returns what ``stop`` needs."""
    bird = Bird(run_dir(state_dir), netns=topo.router_netns)
    bird.apply(router_config(topo))
    return {"run_dir": bird.run_dir, "netns": topo.router_netns, "as": ROUTER_AS}


def stop(record: dict[str, Any] | None) -> list[str]:
    if not record:
        return []
    return ["bird on the lab router"] if Bird(record["run_dir"], netns=record["netns"]).stop() else []


def routes(record: dict[str, Any]) -> str:
    """The router's BGP routes as BIRD shows them (``birdc show route``)."""
    return Bird(record["run_dir"], netns=record["netns"]).birdc("show", "route")
