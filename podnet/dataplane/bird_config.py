"""BGP plan -> BIRD 2 configuration text.

Shaped like Calico's generated bird.cfg: a static blackhole per own block, a kernel protocol
exporting BGP and static routes (marked ``proto bird``), one BGP protocol per peer named
Mesh_/Node_/Global_<address>. Timers are short so a new node converges in about a second
(``connect delay time 1`` and ``device scan time 1``: BIRD's loop otherwise parks for 3 s)."""
from __future__ import annotations

from podnet.routing.plan import BgpNeighbor, BgpPlan


def _neighbor_block(n: BgpNeighbor, plan: BgpPlan) -> str:
    lines = [f"protocol bgp {n.name} from podnet_peer {{",
             f"  description \"{n.peer_type}{' ' + n.node if n.node else ''}\";",
             f"  neighbor {n.address} as {n.as_number};"]
    if n.as_number != plan.as_number:
        lines.append("  multihop;" if not n.direct else "  direct;")
        # To another AS (a top-of-rack router) only what this node itself holds: its blocks and
        # the Service prefixes it announces, so a Local Service's /32 comes only from nodes
        # with an endpoint and the router's ECMP paths lead straight to the owners.
        lines.append("  ipv4 { import all; export where source = RTS_STATIC; next hop self; };")
    elif n.direct:
        lines.append("  direct;")
        lines.append("  ipv4 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; gateway direct; };")
    else:
        lines.append("  multihop;")
        lines.append("  ipv4 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; gateway recursive; };")
    if n.rr_client:
        lines.append("  rr client;")
        if plan.rr_cluster_id:
            lines.append(f"  rr cluster id {plan.rr_cluster_id};")
    if n.passive:
        lines.append("  passive on;  # the peer connects to us")
    lines.append("}")
    return "\n".join(lines)


def render_bird_config(plan: BgpPlan, node: str, log_path: str | None = None) -> str:
    """The whole bird.conf for one node. Deterministic: same plan, same text."""
    out = [f"# BIRD 2 configuration for node {node}, rendered by podnet. Do not edit: it is replaced.",
           f"router id {plan.router_id};"]
    if log_path:
        out.append(f"log \"{log_path}\" {{ info, remote, warning, error, auth, fatal, bug }};")
    no_kernel = ", ".join(plan.no_kernel)
    service_blocks = ", ".join(f"{b}+" for b in plan.service_blocks)
    out += [
        "",
        "protocol device { scan time 1; }",
        "",
        "filter podnet_kernel_export {",
        f"  if net ~ [ {no_kernel} ] then reject;  # routed by podnet over VXLAN" if plan.no_kernel else
        "  # every learned block goes to the kernel",
        *([f"  if net ~ [ {service_blocks} ] then reject;  # Service addresses: the service proxy answers them"]
          if plan.service_blocks else []),
        "  if source ~ [ RTS_BGP, RTS_STATIC ] then accept;",
        "  reject;",
        "}",
        "",
        "protocol kernel {",
        "  ipv4 { import none; export filter podnet_kernel_export; };",
        "  merge paths on;",
        "}",
        "",
        "protocol static podnet_blocks {",
        "  ipv4;",
    ]
    out += [f"  route {b} blackhole;" for b in plan.announce]
    out.append("}")
    if plan.services:  # announced to peers only: the kernel filter above keeps them out
        out += ["", "protocol static podnet_services {", "  ipv4;"]
        out += [f"  route {p} blackhole;" for p in plan.services]
        out.append("}")
    out += [
        "",
        "template bgp podnet_peer {",
        f"  local {plan.local_address} as {plan.as_number};",
        "  connect delay time 1;",
        "  connect retry time 2;",
        "  error wait time 1, 5;",
        "  graceful restart on;",
        "}",
    ]
    for n in plan.neighbors:
        out += ["", _neighbor_block(n, plan)]
    return "\n".join(out) + "\n"
