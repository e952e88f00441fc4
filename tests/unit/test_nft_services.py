"""The service table renderer and its live updates, without root: a golden table, what each
kind of Service puts where (reject vs drop, Local chains, masquerade, affinity), and the live
table equal to a full render after every step of random change sequences, touching only the
Services that changed."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.services import (
    NO_EP_NODEPORTS,
    NO_EP_SERVICES,
    PRIO_MASQUERADE,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    SERVICE_TABLE,
    NodeContext,
    local_chain,
    render,
)
from podnet.dataplane.nft.services_live import LiveServiceTable
from podnet.kernel.nft.netlink import encode
from podnet.model import EndpointSlice, Service
from podnet.services.proxy import ProxyPlan, plan
from podnet.testing.service_objects import ep, service, slice_

DATA = Path(__file__).resolve().parents[1] / "data" / "nft"
UPDATE = os.environ.get("PODNET_UPDATE_GOLDEN") == "1"
CTX = NodeContext(("10.99.0.1",), ("10.244.0.0/16",), "10.96.0.0/12")


def cluster() -> tuple[list[Service], list[EndpointSlice]]:
    services = [
        service("web"),
        service("np", ip="10.96.0.30", type="NodePort", externalTrafficPolicy="Local", sessionAffinity="ClientIP",
                ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]),
        service("empty", ip="10.96.0.40", type="NodePort",
                ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30090}]),
        service("ext", ip="10.96.0.50", externalIPs=["192.168.5.5"]),
        service("itp", ip="10.96.0.60", internalTrafficPolicy="Local"),
        service("dns", ip="10.96.0.10", ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]),
    ]
    slices = [
        slice_("web-1", "web", [ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")]),
        slice_("np-1", "np", [ep("10.244.1.3", "n1"), ep("10.244.2.3", "n2")]),
        slice_("empty-1", "empty", []),
        slice_("ext-1", "ext", [ep("10.244.2.4", "n2")]),
        slice_("itp-1", "itp", [ep("10.244.2.5", "n2")]),
        slice_("dns-1", "dns", [ep("10.244.2.6", "n2")], port=53, port_name="dns", protocol="UDP"),
    ]
    return services, slices


def test_golden() -> None:
    services, slices = cluster()
    got = render(plan(services, slices, "n1"), CTX).to_json()
    path = DATA / "services-n1.json"
    if UPDATE or not path.exists():
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text()), f"{path} differs; PODNET_UPDATE_GOLDEN=1 rewrites it after review"


def _rules(table: Any, chain: str) -> list[str]:
    return [r.expr_json for r in table.chains[chain].rules]


def test_what_each_service_puts_where() -> None:
    services, slices = cluster()
    p = plan(services, slices, "n1")
    t = render(p, CTX)
    ips, nodeports = t.maps[SERVICE_IPS].elements, t.maps[SERVICE_NODEPORTS].elements
    no_ep, no_ep_np = t.maps[NO_EP_SERVICES].elements, t.maps[NO_EP_NODEPORTS].elements
    # ClusterIP → its service chain; a Service without endpoints → reject at once, ClusterIP and NodePort.
    assert ips[("10.96.0.20", "tcp", "80")][1].startswith("service-")
    assert no_ep[("10.96.0.40", "tcp", "80")] == ("goto", "reject-chain")
    assert no_ep_np[("tcp", "30090")] == ("goto", "reject-chain")
    assert ("10.96.0.40", "tcp", "80") not in ips
    # externalIPs and NodePorts → the external chain (Cluster policy: masquerade first).
    ext = ips[("192.168.5.5", "tcp", "80")][1]
    assert ext.startswith("external-") and '"jump":{"target":"mark-for-masquerade"}' in _rules(t, ext)[0]
    # NodePort with Local policy: pods and the node short-circuit, the rest to this node's endpoints.
    np_ext = nodeports[("tcp", "30080")][1]
    np_plan = p.services["default/np"]
    assert "@pod-cidrs" in _rules(t, np_ext)[0] and local_chain(np_plan, np_plan.ports[0]) in _rules(t, np_ext)[-1]
    # internalTrafficPolicy Local with the only endpoint elsewhere: the ClusterIP goes to a chain that drops.
    itp = ips[("10.96.0.60", "tcp", "80")][1]
    assert itp.startswith("local-") and '"drop":null' in _rules(t, itp)[0]
    # Affinity: a timeout set per endpoint, read in the service chain and updated in the endpoint chain.
    affinity = [s for s in t.sets.values() if s.name.startswith("affinity-")]
    assert len(affinity) == 2 and {s.timeout for s in affinity} == {10800} and all(not s.elements for s in affinity)
    # The UDP Service DNATs with its protocol; every ClusterIP is in cluster-ips (undefined ports reject).
    assert any('"dnat":{"addr":"10.244.2.6","port":53}' in r and '"udp"' in r
               for c in t.chains.values() for r in _rules(t, c.name))
    assert len(t.sets["cluster-ips"].elements) == 6
    # Masquerading runs before natOutgoing (srcnat 100); DNAT at dstnat, checks around it.
    assert t.chains["nat-postrouting"].base == ("nat", "postrouting", PRIO_MASQUERADE) and PRIO_MASQUERADE < 100
    assert t.chains["filter-prerouting"].base == ("filter", "prerouting", -110)
    assert t.chains["filter-prerouting-post-dnat"].base == ("filter", "prerouting", -90)


def test_the_whole_table_and_a_change_go_to_the_kernel_as_raw_netlink() -> None:
    """Every object and rule the renderer emits is one the netlink encoder covers (no
    libnftables listing on a change, whatever the table's size)."""
    services, slices = cluster()
    p = plan(services, slices, "n1")
    table = render(p, CTX)
    assert encode(table.to_json(), SERVICE_TABLE, table.key_info, 1) is not None
    live = LiveServiceTable(p, CTX)
    slices[1] = slice_("np-1", "np", [ep("10.244.1.3", "n1")])
    update = live.plan(plan(services, slices, "n1").services, CTX, ["default/np"])
    assert update is not None and encode(update.commands, SERVICE_TABLE, live.tracker.key_info, 1) is not None


def test_node_without_known_addresses_takes_nodeports_on_local_addresses_but_loopback() -> None:
    t = render(ProxyPlan("n1", {}), NodeContext())
    rule = _rules(t, "services")[1]
    assert '"fib"' in rule and "127.0.0.0" in rule
    assert len(t.chains["cluster-ips-check"].rules) == 1  # no service CIDR known: no drop rule


def test_a_change_touches_only_the_changed_services() -> None:
    services, slices = cluster()
    live = LiveServiceTable(plan(services, slices, "n1"), CTX)
    slices[0] = slice_("web-1", "web", [ep("10.244.1.2", "n1"), ep("10.244.2.9", "n2")])
    new = plan(services, slices, "n1")
    update = live.plan(new.services, CTX, ["default/web"])
    assert update is not None and not update.plan.full
    assert all("/web/" in c for c in update.plan.touched_chains)
    assert update.plan.chains_added == 1 and update.plan.chains_removed == 1 and update.plan.chains_rewritten == 1
    live.commit(update)
    assert live.tracker.snapshot() == render(new, CTX)
    # A changed node context cannot be planned live.
    assert live.plan(new.services, NodeContext(("10.99.0.2",), CTX.pod_cidrs, CTX.service_cidr)) is None


def test_two_services_claiming_one_external_address_render_in_full() -> None:
    a = service("a", ip="10.96.0.70", externalIPs=["192.168.5.5"])
    b = service("b", ip="10.96.0.71", externalIPs=["192.168.5.5"])
    slices = [slice_("a-1", "a", [ep("10.244.1.2")]), slice_("b-1", "b", [ep("10.244.1.3")])]
    live = LiveServiceTable(plan([a], slices, "n1"), CTX)
    assert live.plan(plan([a, b], slices, "n1").services, CTX) is None
    full = render(plan([a, b], slices, "n1"), CTX)
    assert full.maps[SERVICE_IPS].elements[("192.168.5.5", "tcp", "80")][1].count("default/a/") == 1


# --- random change sequences --------------------------------------------------------------------

_NAMES = ["a", "b", "c", "d"]
_OP = st.one_of(
    st.tuples(st.just("service"), st.sampled_from(_NAMES), st.sampled_from(["ClusterIP", "NodePort", "Local"]),
              st.booleans(), st.booleans()),
    st.tuples(st.just("endpoints"), st.sampled_from(_NAMES),
              st.lists(st.tuples(st.integers(2, 6), st.sampled_from(["n1", "n2"]), st.booleans()), max_size=4,
                       unique_by=lambda t: t[0])),
    st.tuples(st.just("delete"), st.sampled_from(_NAMES)),
)


def _apply(op: tuple[Any, ...], services: dict[str, Service], slices: dict[str, EndpointSlice]) -> None:
    name = op[1]
    index = _NAMES.index(name)
    if op[0] == "service":
        kind, affinity, external = op[2:]
        extra: dict[str, Any] = {"sessionAffinity": "ClientIP"} if affinity else {}
        if external:
            extra["externalIPs"] = [f"192.168.5.{index}"]
        if kind != "ClusterIP":
            extra.update(type="NodePort", externalTrafficPolicy="Cluster" if kind == "NodePort" else "Local",
                         ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080 + index}])
        services[name] = service(name, ip=f"10.96.1.{index + 1}", **extra)
    elif op[0] == "endpoints":
        slices[name] = slice_(f"{name}-1", name, [ep(f"10.244.{index}.{i}", node, ready) for i, node, ready in op[2]])
    else:
        services.pop(name, None)
        slices.pop(name, None)


@settings(max_examples=40, deadline=None)
@given(st.lists(_OP, min_size=1, max_size=25))
def test_live_updates_equal_a_full_render_after_every_step(ops: list[tuple[Any, ...]]) -> None:
    services: dict[str, Service] = {}
    slices: dict[str, EndpointSlice] = {}
    live = LiveServiceTable(plan([], [], "n1"), CTX)
    for op in ops:
        _apply(op, services, slices)
        want = plan(services.values(), slices.values(), "n1")
        update = live.plan(want.services, CTX, [f"default/{op[1]}"])
        assert update is not None
        before = live.tracker.snapshot()
        live.commit(update)
        full = render(want, CTX)
        assert live.tracker.snapshot() == full
        # the commands turn the old table into the new one: replayed on the old table as a diff
        assert plan_sync(full, before).empty == update.plan.empty
