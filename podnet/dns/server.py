"""The cluster DNS server: ``python -m podnet.dns.server`` in the ``coredns`` pods.

It answers the cluster zone from a ``ZoneIndex`` rebuilt whenever the informers (list + watch
of Services, EndpointSlices and Namespaces through the API server with the pod's ServiceAccount
token, as CoreDNS does with client-go) report a change, and forwards every other name to the
upstream resolvers of its own resolv.conf (``forward . /etc/resolv.conf``). While the API
server cannot be reached it keeps answering from what it last knew; before the first sync it
answers SERVFAIL. Wire format by dnspython; UDP answers that do not fit (512 bytes, or the
client's EDNS size) are truncated with TC so the client retries over TCP.

Answers to the same question are the same bytes until the index changes, so they are cached
by (question, EDNS size) and only the ID is rewritten: the hot path is a dictionary lookup.

Serves Prometheus metrics on 9153 (CoreDNS's names), ``/health`` on 8080 and ``/ready`` on
8181 (ready once every informer has listed), as the CoreDNS pod's probes expect."""
from __future__ import annotations

import argparse
import gc
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

if TYPE_CHECKING:
    from podnet.apiclient import ApiClient

from .records import (
    DEFAULT_TTL,
    DEFAULT_ZONE,
    Answer,
    Record,
    ServiceRecords,
    ZoneIndex,
    service_records,
    slices_by_service,
)

log = logging.getLogger("podnet.dns")
UDP_DEFAULT = 512
UPSTREAM_TIMEOUT = 2.0


class Metrics:
    """CoreDNS's metric names (plugin/metrics, plugin/forward, plugin/kubernetes)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
                                ["server", "zone", "proto", "family", "type"], registry=self.registry)
        self.responses = Counter("coredns_dns_responses", "Counter of response status codes.",
                                 ["server", "zone", "rcode"], registry=self.registry)
        self.duration = Histogram("coredns_dns_request_duration_seconds", "Histogram of the time each request took.",
                                  ["server", "zone", "type"], registry=self.registry,
                                  buckets=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
                                           0.256, 0.512, 1.024, 2.048))
        self.forwarded = Counter("coredns_forward_requests", "Counter of requests made per upstream.", ["to"],
                                 registry=self.registry)
        self.rebuilds = Counter("podnet_dns_zone_rebuilds", "Times the cluster zone was rebuilt from the API.",
                                registry=self.registry)


class DnsHandler:
    """Turns one query (wire bytes) into one response (wire bytes)."""

    def __init__(self, index: Callable[[], ZoneIndex | None], upstreams: Sequence[str], ttl: int = DEFAULT_TTL,
                 metrics: Metrics | None = None, server: str = "dns://:53") -> None:
        self.index = index
        self.upstreams = list(upstreams)
        self.ttl = ttl
        self.metrics = metrics
        self.server = server
        self._cache: dict[tuple[bytes, int], tuple[bytes, str]] = {}
        self._cache_of: ZoneIndex | None = None

    def handle(self, wire: bytes, proto: str) -> bytes:
        started = time.perf_counter()
        index = self.index()
        max_size = 65535 if proto == "tcp" else UDP_DEFAULT
        key = _cache_key(wire)
        if index is not None and key is not None and proto == "udp":
            if self._cache_of is not index:
                self._cache, self._cache_of = {}, index
            hit = self._cache.get(key)
            if hit is not None:
                self._count(hit[1], "cached", started, proto)
                return wire[:2] + hit[0][2:]
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.edns >= 0 and proto == "udp":
            max_size = max(UDP_DEFAULT, min(query.payload, 65535))
        if not query.question:
            return _formerr(wire)
        question = query.question[0]
        qtype = dns.rdatatype.to_text(question.rdtype)
        if index is None:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            out = response.to_wire()
        else:
            answer = index.lookup(question.name.to_text(), qtype)
            if answer.forward:
                out = self._forward(query, wire)
            else:
                out = self._render(query, answer, index, max_size)
                if key is not None and proto == "udp" and answer.chase is None:
                    self._cache[key] = (out, qtype)
        self._count(qtype, "answered", started, proto, out)
        return out

    def _count(self, qtype: str, how: str, started: float, proto: str, out: bytes | None = None) -> None:
        m = self.metrics
        if m is None:
            return
        zone = "." if how == "forwarded" else f"{DEFAULT_ZONE}."
        m.requests.labels(self.server, zone, proto, "1", qtype).inc()
        if out is not None and len(out) >= 4:
            m.responses.labels(self.server, zone, dns.rcode.to_text(dns.rcode.Rcode(out[3] & 0x0F))).inc()
        m.duration.labels(self.server, zone, qtype).observe(time.perf_counter() - started)

    def _render(self, query: dns.message.Message, answer: Answer, index: ZoneIndex, max_size: int) -> bytes:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if answer.rcode == "NXDOMAIN":
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.answer += self._rrsets(answer.answer)
        if answer.chase is not None:
            response.answer += self._chase(answer.chase, query.question[0].rdtype)
        response.authority += self._rrsets(answer.authority)
        response.additional += self._rrsets(answer.additional)
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def _rrsets(self, records: Sequence[Record]) -> list[dns.rrset.RRset]:
        grouped: dict[tuple[str, str], list[str]] = {}
        for rec in records:
            grouped.setdefault((rec.name, rec.rtype), []).append(rec.data)
        return [dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rtype, datas)
                for (name, rtype), datas in grouped.items()]

    def _chase(self, target: str, rdtype: int) -> list[dns.rrset.RRset]:
        """An ExternalName's target outside the zone: its records from upstream."""
        if rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return []
        sub = dns.message.make_query(target, dns.rdatatype.RdataType(rdtype))
        reply = self._ask(sub)
        return list(reply.answer) if reply is not None else []

    def _forward(self, query: dns.message.Message, wire: bytes) -> bytes:
        reply = self._ask(query)
        if reply is None:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        reply.id = query.id
        return reply.to_wire()

    def _ask(self, query: dns.message.Message) -> dns.message.Message | None:
        for upstream in self.upstreams:
            host, _, port = upstream.partition(":")
            try:
                if self.metrics is not None:
                    self.metrics.forwarded.labels(f"{host}:{port or 53}").inc()
                reply, _ = dns.query.udp_with_fallback(query, host, timeout=UPSTREAM_TIMEOUT, port=int(port or 53))
                return reply
            except (dns.exception.DNSException, OSError) as exc:
                log.warning("upstream %s: %s", upstream, exc)
        return None


def _cache_key(wire: bytes) -> tuple[bytes, int] | None:
    """The query without its ID (and the flags byte that only says RD), or None when it is
    not a plain one-question query."""
    if len(wire) < 12 or struct.unpack("!H", wire[4:6])[0] != 1 or wire[2] & 0xF8:
        return None
    return wire[2:], 0


def _formerr(wire: bytes) -> bytes:
    if len(wire) < 2:
        return b""
    return wire[:2] + bytes([0x80, dns.rcode.FORMERR]) + b"\x00" * 8


# -- the shell ---------------------------------------------------------------------------------
class ZoneSource:
    """The current ZoneIndex, rebuilt when an informer changes. Parsed objects and each
    Service's records are kept by resourceVersion, so a rebuild after one change parses and
    computes only what changed and merges the rest."""

    def __init__(self, zone: str = DEFAULT_ZONE, debounce: float = 0.02) -> None:
        self.zone = zone
        self.debounce = debounce
        self.current: ZoneIndex | None = None
        self.metrics: Metrics | None = None
        self._parsed: dict[tuple[str, str, str], Any] = {}
        self._records: dict[tuple[str, str, tuple[tuple[str, str], ...]], ServiceRecords] = {}

    def __call__(self) -> ZoneIndex | None:
        return self.current

    def _model(self, cls: Any, obj: dict[str, Any], parsed: dict[tuple[str, str, str], Any]) -> Any:
        meta = obj.get("metadata") or {}
        key = (cls.KIND, f"{meta.get('namespace')}/{meta.get('name')}", str(meta.get("resourceVersion", "")))
        model = self._parsed.get(key) if key[2] else None
        if model is None:
            model = _parse(cls, obj)
        parsed[key] = model
        return model

    def rebuild(self, services: list[dict[str, Any]], slices: list[dict[str, Any]], namespaces: list[dict[str, Any]]) -> None:
        from podnet.model import EndpointSlice, Service

        parsed: dict[tuple[str, str, str], Any] = {}
        svcs = [m for m in (self._model(Service, o, parsed) for o in services) if m is not None]
        eps = [m for m in (self._model(EndpointSlice, o, parsed) for o in slices) if m is not None]
        self._parsed = parsed
        by_service = slices_by_service(eps)
        records: dict[tuple[str, str, tuple[tuple[str, str], ...]], ServiceRecords] = {}
        for svc in svcs:
            key_ns = f"{svc.namespace or 'default'}/{svc.name}"
            mine = by_service.get(key_ns, [])
            key = (key_ns, svc.metadata.resource_version or "",
                   tuple(sorted((sl.name, sl.metadata.resource_version or "") for sl in mine)))
            part = self._records.get(key) if key[1] else None
            records[key] = part if part is not None else service_records(svc, mine, self.zone)
        self._records = records
        names = [str(o.get("metadata", {}).get("name", "")) for o in namespaces]
        self.current = ZoneIndex.assemble(records.values(), names, self.zone)
        if self.metrics is not None:
            self.metrics.rebuilds.inc()


def _parse(cls: Any, obj: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(obj)
    except ValueError as exc:  # one odd object must not take the zone down
        log.warning("skipping %s %s: %s", cls.KIND, obj.get("metadata", {}).get("name"), exc)
        return None


def upstreams_from(resolv_conf: str) -> list[str]:
    try:
        with open(resolv_conf) as f:
            return [line.split()[1] for line in f if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return []


def serve_udp(sock: socket.socket, handler: DnsHandler, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            wire, peer = sock.recvfrom(65535)
        except OSError:
            continue
        out = handler.handle(wire, "udp")
        if out:
            try:
                sock.sendto(out, peer)
            except OSError:
                pass


def serve_tcp(sock: socket.socket, handler: DnsHandler, stop: threading.Event) -> None:
    def one(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            while True:
                head = _read(conn, 2)
                if not head:
                    return
                wire = _read(conn, struct.unpack("!H", head)[0])
                if not wire:
                    return
                out = handler.handle(wire, "tcp")
                conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
        finally:
            conn.close()

    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _probe_server(port: int, path: str, ok: Callable[[], bool]) -> ThreadingHTTPServer:
    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            good = self.path.split("?")[0] == path and ok()
            body = b"OK" if good else b"not ready"
            self.send_response(200 if good else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("0.0.0.0", port), Probe)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run(args: argparse.Namespace, stop: threading.Event) -> None:
    from prometheus_client import start_http_server

    from podnet.apiclient import ApiClient

    source = ZoneSource(args.zone)
    metrics = Metrics()
    source.metrics = metrics
    client = ApiClient.in_cluster()
    upstreams = args.upstream or upstreams_from(args.resolv_conf)
    handler = DnsHandler(source, upstreams, args.ttl, metrics)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.listen, args.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.listen, args.port))
    tcp.listen(128)
    for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
        threading.Thread(target=target, args=(sock, handler, stop), daemon=True).start()
    start_http_server(args.metrics_port, registry=metrics.registry)
    _probe_server(args.health_port, "/health", lambda: True)
    _probe_server(args.ready_port, "/ready", lambda: source.current is not None)
    log.info("cluster DNS for %s on %s:%d, upstreams %s", args.zone, args.listen, args.port, upstreams)
    follow_api(client, source, stop)


def follow_api(client: ApiClient, source: ZoneSource, stop: threading.Event) -> None:
    """Until ``stop``: list + watch Services, EndpointSlices and Namespaces (client-go's
    informers) and rebuild the zone after each burst of changes. While the API server cannot
    be reached the informers keep what they had, so the zone keeps answering from it."""
    from podnet.apiclient import Informer, resource_path

    informers = [Informer(client, resource_path("services")),
                 Informer(client, resource_path("endpointslices", group_version="discovery.k8s.io/v1")),
                 Informer(client, resource_path("namespaces"))]
    changed = threading.Event()
    for inf in informers:
        inf.on_change = lambda _event: changed.set()
        inf.start(stop)
    while not stop.is_set():
        if changed.wait(0.5) and all(inf.synced.is_set() for inf in informers):
            changed.clear()
            stop.wait(source.debounce)  # a burst of changes: one rebuild
            source.rebuild(*(inf.items() for inf in informers))
            # The zone is a large, long-lived, acyclic object graph: left to the cyclic
            # collector, its full passes stall answers and rebuilds by hundreds of ms at
            # 10,000 Services. Freezing moves it out of the collector's sight (an old zone is
            # still freed by reference counting when the next one replaces it).
            gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="podnet-dns", description=__doc__.splitlines()[0])
    ap.add_argument("--zone", default=DEFAULT_ZONE)
    ap.add_argument("--listen", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    ap.add_argument("--upstream", action="append", default=[],
                    help="a resolver for other names, ADDRESS or ADDRESS:PORT (repeatable)")
    ap.add_argument("--resolv-conf", default="/etc/resolv.conf", help="upstreams when --upstream is not given")
    ap.add_argument("--metrics-port", type=int, default=9153)
    ap.add_argument("--health-port", type=int, default=8080)
    ap.add_argument("--ready-port", type=int, default=8181)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    try:
        run(args, stop)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
