"""The cluster DNS server answering over real UDP and TCP sockets on loopback (no API server:
its zone is built from the objects here), table-driven against the DNS specification for
Kubernetes: record types, NXDOMAIN vs NOERROR-without-data, SRV for named ports, PTR, pod
records, ExternalName, truncation and forwarding."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from podnet.dns.records import ZoneIndex
from podnet.dns.server import DnsHandler, serve_tcp, serve_udp
from podnet.model import EndpointSlice, Service


def svc(name: str, ns: str = "default", **spec: Any) -> Service:
    return Service.model_validate({"metadata": {"name": name, "namespace": ns}, "spec": spec})


def eps(service: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], ns: str = "default") -> EndpointSlice:
    return EndpointSlice.model_validate({
        "metadata": {"name": f"{service}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints})


def ep(ip: str, ready: bool = True, hostname: str | None = None, terminating: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready, "terminating": terminating}}
    if hostname:
        out["hostname"] = hostname
    return out


SERVICES = [
    svc("web", clusterIP="10.96.0.20", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                               {"name": "dns", "port": 53, "protocol": "UDP"}]),
    svc("plain", clusterIP="10.96.0.21", ports=[{"port": 8080}]),
    svc("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
    svc("empty", clusterIP="None", ports=[{"port": 80}]),
    svc("ext", type="ExternalName", externalName="web.default.svc.cluster.local"),
    svc("many", clusterIP="None", ports=[{"port": 80}]),
    svc("api", ns="prod", clusterIP="10.96.0.30", ports=[{"port": 443}]),
]
SLICES = [
    eps("db", [ep("10.244.1.5", hostname="db-0"), ep("10.244.2.6"), ep("10.244.3.7", ready=False),
               ep("10.244.3.8", terminating=True)], [{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    eps("empty", [ep("10.244.1.9", ready=False)], [{"port": 80, "protocol": "TCP"}]),
    eps("many", [ep(f"10.244.9.{i}") for i in range(1, 60)], [{"port": 80, "protocol": "TCP"}]),
    eps("web", [ep("10.244.4.2"), ep("10.244.4.3", ready=False)], [{"name": "http", "port": 80, "protocol": "TCP"}]),
    eps("plain", [ep("10.244.4.2", hostname="p0")], [{"port": 8080, "protocol": "TCP"}]),
]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    index = ZoneIndex.build(SERVICES, SLICES, ["default", "prod", "kube-system"])
    handler = DnsHandler(lambda: index, upstreams=[])
    stop = threading.Event()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
        threading.Thread(target=target, args=(sock, handler, stop), daemon=True).start()
    yield "127.0.0.1", port
    stop.set()
    udp.close()
    tcp.close()


def ask(server: tuple[str, int], name: str, rdtype: str, proto: str = "udp") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if proto == "udp":
        return dns.query.udp(query, server[0], port=server[1], timeout=2)
    return dns.query.tcp(query, server[0], port=server[1], timeout=2)


def values(msg: dns.message.Message, rdtype: str) -> set[str]:
    want = dns.rdatatype.from_text(rdtype)
    return {r.to_text() for rrset in msg.answer if rrset.rdtype == want for r in rrset}


Z = "cluster.local."
CASES = [
    # (name, type, rcode, expected answers of that type)
    (f"web.default.svc.{Z}", "A", "NOERROR", {"10.96.0.20"}),
    (f"WEB.Default.SVC.{Z}", "A", "NOERROR", {"10.96.0.20"}),  # case-insensitive
    (f"web.default.svc.{Z}", "AAAA", "NOERROR", set()),  # IPv4-only: no data, not NXDOMAIN
    (f"web.default.svc.{Z}", "TXT", "NOERROR", set()),
    (f"_http._tcp.web.default.svc.{Z}", "SRV", "NOERROR", {f"0 100 80 web.default.svc.{Z}"}),
    (f"_dns._udp.web.default.svc.{Z}", "SRV", "NOERROR", {f"0 100 53 web.default.svc.{Z}"}),
    (f"_http._udp.web.default.svc.{Z}", "SRV", "NXDOMAIN", set()),
    (f"_http._tcp.plain.default.svc.{Z}", "SRV", "NXDOMAIN", set()),  # unnamed port: no SRV name
    (f"plain.default.svc.{Z}", "SRV", "NOERROR", {f"0 100 8080 plain.default.svc.{Z}"}),
    ("20.0.96.10.in-addr.arpa.", "PTR", "NOERROR", {f"web.default.svc.{Z}"}),
    (f"db.default.svc.{Z}", "A", "NOERROR", {"10.244.1.5", "10.244.2.6"}),  # ready, not terminating
    (f"db-0.db.default.svc.{Z}", "A", "NOERROR", {"10.244.1.5"}),
    (f"10-244-2-6.db.default.svc.{Z}", "A", "NOERROR", {"10.244.2.6"}),
    (f"_pg._tcp.db.default.svc.{Z}", "SRV", "NOERROR", {f"0 50 5432 db-0.db.default.svc.{Z}",
                                                         f"0 50 5432 10-244-2-6.db.default.svc.{Z}"}),
    ("5.1.244.10.in-addr.arpa.", "PTR", "NOERROR", {f"db-0.db.default.svc.{Z}"}),
    (f"10-244-3-7.db.default.svc.{Z}", "A", "NXDOMAIN", set()),  # not ready
    # a ClusterIP Service's endpoints: their own names and PTRs (one per Service they back)
    (f"10-244-4-2.web.default.svc.{Z}", "A", "NOERROR", {"10.244.4.2"}),
    (f"p0.plain.default.svc.{Z}", "A", "NOERROR", {"10.244.4.2"}),
    ("2.4.244.10.in-addr.arpa.", "PTR", "NOERROR", {f"10-244-4-2.web.default.svc.{Z}", f"p0.plain.default.svc.{Z}"}),
    (f"10-244-4-3.web.default.svc.{Z}", "A", "NXDOMAIN", set()),  # not ready
    (f"empty.default.svc.{Z}", "A", "NXDOMAIN", set()),  # headless without a ready endpoint
    (f"ext.default.svc.{Z}", "A", "NOERROR", {"10.96.0.20"}),  # in-zone CNAME followed
    (f"nope.default.svc.{Z}", "A", "NXDOMAIN", set()),
    (f"api.prod.svc.{Z}", "A", "NOERROR", {"10.96.0.30"}),
    (f"api.default.svc.{Z}", "A", "NXDOMAIN", set()),
    (f"default.svc.{Z}", "A", "NOERROR", set()),  # a namespace: exists, no records
    (f"kube-system.svc.{Z}", "A", "NOERROR", set()),
    (f"nons.svc.{Z}", "A", "NXDOMAIN", set()),
    (f"svc.{Z}", "A", "NOERROR", set()),
    (f"10-244-1-5.default.pod.{Z}", "A", "NOERROR", {"10.244.1.5"}),
    (f"10-244-1-5.default.pod.{Z}", "AAAA", "NOERROR", set()),
    (f"not-an-ip.default.pod.{Z}", "A", "NXDOMAIN", set()),
    (f"dns-version.{Z}", "TXT", "NOERROR", {'"1.1.0"'}),
    (Z, "SOA", "NOERROR", {f"ns.dns.{Z} hostmaster.{Z} 1 7200 1800 86400 5"}),
]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("name, rdtype, rcode, expected", CASES)
def test_answers_as_the_specification_says(server: tuple[str, int], proto: str, name: str, rdtype: str,
                                           rcode: str, expected: set[str]) -> None:
    msg = ask(server, name, rdtype, proto)
    assert dns.rcode.to_text(msg.rcode()) == rcode
    assert msg.flags & dns.flags.AA
    assert values(msg, rdtype) == expected
    if not expected and rdtype != "CNAME":  # negative answers carry the SOA (negative caching)
        assert any(r.rdtype == dns.rdatatype.SOA for r in msg.authority)
    assert all(rrset.ttl == 5 for rrset in msg.answer)


def test_external_name_answers_its_cname(server: tuple[str, int]) -> None:
    msg = ask(server, f"ext.default.svc.{Z}", "CNAME")
    assert values(msg, "CNAME") == {f"web.default.svc.{Z}"}


def test_srv_answers_carry_the_targets_addresses(server: tuple[str, int]) -> None:
    msg = ask(server, f"_pg._tcp.db.default.svc.{Z}", "SRV")
    glue = {(rrset.name.to_text(), r.to_text()) for rrset in msg.additional for r in rrset}
    assert (f"db-0.db.default.svc.{Z}", "10.244.1.5") in glue


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(server: tuple[str, int]) -> None:
    udp = ask(server, f"many.default.svc.{Z}", "A")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(server, f"many.default.svc.{Z}", "A", "tcp")
    assert not tcp.flags & dns.flags.TC and len(values(tcp, "A")) == 59
    edns = dns.message.make_query(f"many.default.svc.{Z}", "A", use_edns=0, payload=4096)
    big = dns.query.udp(edns, server[0], port=server[1], timeout=2)
    assert not big.flags & dns.flags.TC and len(values(big, "A")) == 59


def test_repeated_questions_get_their_own_ids(server: tuple[str, int]) -> None:
    for _ in range(3):
        query = dns.message.make_query(f"web.default.svc.{Z}", "A")
        reply = dns.query.udp(query, server[0], port=server[1], timeout=2)
        assert reply.id == query.id and values(reply, "A") == {"10.96.0.20"}


def test_other_names_go_upstream_and_fail_without_one(server: tuple[str, int]) -> None:
    msg = ask(server, "example.org.", "A")
    assert dns.rcode.to_text(msg.rcode()) == "SERVFAIL"


def test_forwarding_relays_the_upstream_answer() -> None:
    """A second server stands upstream for a name outside the zone."""
    upstream_index = ZoneIndex.build([svc("web", clusterIP="10.96.0.99", ports=[{"port": 80}])], [], ["default"],
                                     zone="internet.test")
    stop = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    threading.Thread(target=serve_udp, args=(sock, DnsHandler(lambda: upstream_index, []), stop),
                     daemon=True).start()
    handler = DnsHandler(lambda: ZoneIndex.build([], [], ["default"]),
                         upstreams=[f"127.0.0.1:{sock.getsockname()[1]}"])
    try:
        query = dns.message.make_query("web.default.svc.internet.test.", "A")
        reply = dns.message.from_wire(handler.handle(query.to_wire(), "udp"))
    finally:
        stop.set()
        sock.close()
    assert reply.id == query.id and values(reply, "A") == {"10.96.0.99"}


def test_a_relist_reconciles_to_exactly_what_a_full_build_holds() -> None:
    """A full list (the first sync, or a relist after the watch expired) is diffed against
    what the server holds: afterwards it holds exactly what a fresh build would."""
    from podnet.dns.server import ZoneSource

    def as_objects(version: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        services = [{**s.to_dict(), "metadata": {**s.to_dict()["metadata"], "resourceVersion": str(version)}}
                    for s in SERVICES]
        slices = [{**sl.to_dict(), "metadata": {**sl.to_dict()["metadata"], "resourceVersion": str(version)}}
                  for sl in SLICES]
        return services, slices

    source = ZoneSource()
    namespaces = [{"metadata": {"name": n}} for n in ("default", "prod", "kube-system")]
    services, slices = as_objects(1)
    source.rebuild(services, slices, namespaces)
    changed = [s for s in services if s["metadata"]["name"] != "web"]  # web deleted
    changed.append({"metadata": {"name": "new", "namespace": "prod", "resourceVersion": "2"},
                    "spec": {"clusterIP": "10.96.0.77", "ports": [{"name": "h", "port": 81}]}})
    slices = [sl for sl in slices if sl["metadata"]["name"] != "db-x"]  # db lost its endpoints
    source.rebuild(changed, slices, namespaces)
    fresh = ZoneIndex.build([Service.model_validate(o) for o in changed],
                            [EndpointSlice.model_validate(o) for o in slices], ["default", "prod", "kube-system"])
    assert source.current is not None
    assert source.current.names == fresh.names
    assert {k: {t: sorted(d) for t, d in v.items()} for k, v in source.current.records.items()} == \
        {k: {t: sorted(d) for t, d in v.items()} for k, v in fresh.records.items()}
    assert source.current.lookup(f"web.default.svc.{Z}", "A").rcode == "NXDOMAIN"
    assert source.current.lookup(f"db.default.svc.{Z}", "A").rcode == "NXDOMAIN"


def test_watch_events_change_the_answers_and_the_cache_forgets_only_what_changed() -> None:
    """Events applied one by one (as the informers deliver them) to a source whose handler has
    answers cached: the changed name answers anew at once, an untouched one stays cached, and
    the zone ends equal to a fresh build of what remains."""
    from podnet.dns.server import ZoneSource

    def obj(model: Service | EndpointSlice, version: int) -> dict[str, Any]:
        doc = model.to_dict()
        return {**doc, "metadata": {**doc["metadata"], "resourceVersion": str(version)}}

    def a(handler: DnsHandler, name: str) -> tuple[str, set[str]]:
        query = dns.message.make_query(name, "A")
        reply = dns.message.from_wire(handler.handle(query.to_wire(), "udp"))
        assert reply.id == query.id
        return dns.rcode.to_text(reply.rcode()), values(reply, "A")

    source = ZoneSource()
    handler = DnsHandler(source, upstreams=[])
    assert dns.message.from_wire(handler.handle(dns.message.make_query(f"web.default.svc.{Z}", "A").to_wire(),
                                                "udp")).rcode() == dns.rcode.SERVFAIL  # before the first list
    source.rebuild([obj(s, 1) for s in SERVICES], [obj(sl, 1) for sl in SLICES],
                   [{"metadata": {"name": n}} for n in ("default", "prod", "kube-system")])
    assert a(handler, f"web.default.svc.{Z}") == ("NOERROR", {"10.96.0.20"})
    assert a(handler, f"api.prod.svc.{Z}") == ("NOERROR", {"10.96.0.30"})
    assert a(handler, f"new.default.svc.{Z}") == ("NXDOMAIN", set())
    assert a(handler, f"ext.default.svc.{Z}") == ("NOERROR", {"10.96.0.20"})  # a CNAME to web
    cached_api = handler._cache.copy()
    source.apply("Service", "MODIFIED", obj(svc("web", clusterIP="10.96.0.21", ports=[{"port": 80}]), 2))
    source.apply("Service", "ADDED", obj(svc("new", clusterIP="10.96.0.40", ports=[{"port": 80}]), 3))
    source.apply("EndpointSlice", "DELETED", obj(SLICES[0], 1))  # db-x: db loses its endpoints
    assert a(handler, f"web.default.svc.{Z}") == ("NOERROR", {"10.96.0.21"})
    assert a(handler, f"ext.default.svc.{Z}") == ("NOERROR", {"10.96.0.21"})  # drawn from web: forgotten too
    assert a(handler, f"new.default.svc.{Z}") == ("NOERROR", {"10.96.0.40"})
    assert a(handler, f"db.default.svc.{Z}") == ("NXDOMAIN", set())
    api_keys = [k for k in cached_api if b"\x03api\x04prod" in k[0]]
    assert api_keys and all(handler._cache.get(k) == cached_api[k] for k in api_keys)  # untouched: still cached
    source.apply("Service", "DELETED", obj(SERVICES[-1], 1))  # api.prod
    assert a(handler, f"api.prod.svc.{Z}") == ("NXDOMAIN", set())
    remaining = [s for s in SERVICES if s.name not in ("web", "api")] + [
        svc("web", clusterIP="10.96.0.21", ports=[{"port": 80}]), svc("new", clusterIP="10.96.0.40", ports=[{"port": 80}])]
    fresh = ZoneIndex.build(remaining, SLICES[1:], ["default", "prod", "kube-system"])
    assert source.current is not None and source.current.names == fresh.names
    assert {k: {t: set(d) for t, d in v.items()} for k, v in source.current.records.items()} == \
        {k: {t: set(d) for t, d in v.items()} for k, v in fresh.records.items()}


def test_answers_cached_while_changes_land_are_never_left_stale() -> None:
    """One thread asks (filling the cache) while another changes the Service those answers
    come from: once the changes stop, every answer is the last state's, never a stale one."""
    from podnet.dns.server import ZoneSource

    source = ZoneSource()
    handler = DnsHandler(source, upstreams=[])
    source.rebuild([], [], [{"metadata": {"name": "default"}}])
    names = [f"web.default.svc.{Z}", f"ext.default.svc.{Z}", f"_http._tcp.web.default.svc.{Z}"]
    source.apply("Service", "ADDED", {"metadata": {"name": "ext", "namespace": "default", "resourceVersion": "1"},
                                      "spec": {"type": "ExternalName", "externalName": names[0]}})
    done = threading.Event()

    def ask_all() -> None:
        while not done.is_set():
            for name in names:
                handler.handle(dns.message.make_query(name, "A").to_wire(), "udp")

    asker = threading.Thread(target=ask_all)
    asker.start()
    try:
        for version in range(2, 302):
            spec: dict[str, Any] = {"clusterIP": f"10.96.1.{version % 250 + 1}",
                                    "ports": [{"name": "http" if version % 3 else "web", "port": 80}]}
            source.apply("Service", "MODIFIED" if version > 2 else "ADDED",
                         {"metadata": {"name": "web", "namespace": "default", "resourceVersion": str(version)},
                          "spec": spec})
    finally:
        done.set()
        asker.join()
    last = "10.96.1.52"  # 301 % 250 + 1
    for name, rdtype, expected in [(names[0], "A", {last}), (names[1], "A", {last}), (names[2], "SRV", {f"0 100 80 {names[0]}"})]:
        reply = dns.message.from_wire(handler.handle(dns.message.make_query(name, rdtype).to_wire(), "udp"))
        assert values(reply, rdtype) == expected, name
