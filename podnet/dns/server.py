"""The cluster DNS server: ``python -m podnet.dns.server`` in the ``coredns`` pods.

It answers the cluster zone from a ``ZoneIndex`` that the informers (list + watch of
Services, EndpointSlices and Namespaces through the API server with the pod's ServiceAccount
token, as CoreDNS does with client-go) change event by event, each event costing what its
object costs (``LiveZone``), and forwards every other name to the
upstream resolvers of its own resolv.conf (``forward . /etc/resolv.conf``). While the API
server cannot be reached it keeps answering from what it last knew; before the first sync it
answers SERVFAIL. Wire format by dnspython; UDP answers that do not fit (512 bytes, or the
client's EDNS size) are truncated with TC so the client retries over TCP.

Answers to the same question are the same bytes until the names they are drawn from change,
so they are cached by (question, EDNS size) and only the ID is rewritten: the hot path is a
dictionary lookup. A change forgets only the answers drawn from the names it touched.

Serves Prometheus metrics on 9153 (CoreDNS's names), ``/health`` on 8080 and ``/ready`` on
8181 (ready once every informer has listed), as the CoreDNS pod's probes expect."""
from __future__ import annotations

import argparse
import functools
import gc
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal

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
    LiveZone,
    Record,
    ZoneIndex,
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
        self.rebuilds = Counter("podnet_dns_zone_rebuilds", "Times the cluster zone was reconciled with a full list.",
                                registry=self.registry)
        self.updates = Counter("podnet_dns_zone_updates", "Watch events applied to the cluster zone one by one.",
                               registry=self.registry)


MAX_CACHED_ANSWERS = 100_000  # then the cache starts over (questions for names nobody has are endless)


class DnsHandler:
    """Turns one query (wire bytes) into one response (wire bytes).

    Answers are cached per question (the query without its ID). Each cached answer remembers
    the names it was computed from (``Answer.depends``); a ``ZoneSource`` tells the handler
    which names a change touched and only the answers drawn from them are forgotten. Lookups
    that miss the cache run under the source's lock, so they never see half of a change and
    never cache an answer a change has already made stale."""

    def __init__(self, index: Callable[[], ZoneIndex | None], upstreams: Sequence[str], ttl: int = DEFAULT_TTL,
                 metrics: Metrics | None = None, server: str = "dns://:53") -> None:
        self.index = index
        self.upstreams = list(upstreams)
        self.ttl = ttl
        self.metrics = metrics
        self.server = server
        self._cache: dict[tuple[bytes, int], tuple[bytes, str]] = {}
        self._cached_by_name: dict[str, set[tuple[bytes, int]]] = {}
        self._cache_of: ZoneIndex | None = None
        if isinstance(index, ZoneSource):
            self._lock = index.lock
            index.listeners.append(self.forget)
        else:
            self._lock = threading.RLock()

    def forget(self, names: Iterable[str]) -> None:
        """Drop the cached answers drawn from ``names`` (called with the lock held)."""
        for name in names:
            for key in self._cached_by_name.pop(name, ()):
                self._cache.pop(key, None)

    def handle(self, wire: bytes, proto: str) -> bytes:
        started = time.perf_counter()
        max_size = 65535 if proto == "tcp" else UDP_DEFAULT
        key = _cache_key(wire) if proto == "udp" else None
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None and self._cache_of is self.index():
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
        with self._lock:
            index = self.index()
            answer = index.lookup(question.name.to_text(), qtype) if index is not None else None
            out = None
            if index is not None and answer is not None and not answer.forward and answer.chase is None:
                out = self._render(query, answer, index, max_size)
                if key is not None:
                    self._remember(index, key, out, qtype, answer.depends)
        if answer is None:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            out = response.to_wire()
        elif answer.forward:
            out = self._forward(query, wire)
        elif out is None and index is not None:  # a CNAME to a name outside: asked upstream, not cached
            out = self._render(query, answer, index, max_size)
        assert out is not None
        self._count(qtype, "answered", started, proto, out)
        return out

    def _remember(self, index: ZoneIndex, key: tuple[bytes, int], out: bytes, qtype: str,
                  depends: tuple[str, ...]) -> None:
        if self._cache_of is not index or len(self._cache) >= MAX_CACHED_ANSWERS:
            self._cache, self._cached_by_name, self._cache_of = {}, {}, index
        self._cache[key] = (out, qtype)
        for name in depends:
            self._cached_by_name.setdefault(name, set()).add(key)

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
Kind = Literal["Service", "EndpointSlice", "Namespace"]


class ZoneSource:
    """The current zone, kept by a ``LiveZone`` that the informers' events change one object
    at a time (a watch event costs what its object costs, not the zone's size). A full list
    (the first sync, or a relist after the watch expired) is diffed against what the zone
    holds: only objects whose resourceVersion moved are parsed and recomputed. Every change
    runs under ``lock`` and tells ``listeners`` (the answer caches) the names it touched."""

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        self.zone = zone
        self.lock = threading.RLock()
        self.listeners: list[Callable[[set[str]], None]] = []
        self.metrics: Metrics | None = None
        self.current: ZoneIndex | None = None  # None until the first full list
        self._live = LiveZone.empty(zone)
        self._versions: dict[tuple[Kind, str], str] = {}  # (kind, namespace/name) → resourceVersion held

    def __call__(self) -> ZoneIndex | None:
        return self.current

    def apply(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of one object."""
        with self.lock:
            touched = self._apply(kind, event_type, obj)
            if touched:
                self._tell(touched)
            if self.metrics is not None:
                self.metrics.updates.inc()

    def rebuild(self, services: list[dict[str, Any]], slices: list[dict[str, Any]],
                namespaces: list[dict[str, Any]]) -> None:
        """Make the zone hold exactly these objects (a full list): objects gone are deleted,
        new or changed ones applied, the rest left as they are."""
        with self.lock:
            touched: set[str] = set()
            lists: tuple[tuple[Kind, list[dict[str, Any]]], ...] = (
                ("Namespace", namespaces), ("Service", services), ("EndpointSlice", slices))
            for kind, objs in lists:
                listed = {(kind, _key(o)) for o in objs}
                for held_kind, key in [k for k in self._versions if k[0] == kind and k not in listed]:
                    namespace, _, name = key.rpartition("/")
                    touched |= self._delete(held_kind, namespace or None, name)
                for obj in objs:
                    touched |= self._apply(kind, "MODIFIED", obj)
            self.current = self._live.index
            if touched:
                self._tell(touched)
            if self.metrics is not None:
                self.metrics.rebuilds.inc()

    def _tell(self, touched: set[str]) -> None:
        for listener in self.listeners:
            listener(touched)

    def _apply(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> set[str]:
        meta = obj.get("metadata") or {}
        key = _key(obj)
        if event_type == "DELETED":
            return self._delete(kind, meta.get("namespace"), str(meta.get("name", "")))
        if event_type not in ("ADDED", "MODIFIED"):
            return set()
        version = str(meta.get("resourceVersion") or "")
        if version and self._versions.get((kind, key)) == version:
            return set()  # already held (a relist, or an event the list already had)
        if kind == "Namespace":
            self._versions[(kind, key)] = version
            return self._live.set_namespace(str(meta.get("name", "")))
        from podnet.model import EndpointSlice, Service

        model = _parse(Service if kind == "Service" else EndpointSlice, obj)
        if model is None:  # one odd object must not take the zone down: it is left out
            return self._delete(kind, meta.get("namespace"), str(meta.get("name", "")))
        self._versions[(kind, key)] = version
        if kind == "Service":
            return self._live.set_service(model)
        return self._live.set_slice(model)

    def _delete(self, kind: Kind, namespace: str | None, name: str) -> set[str]:
        self._versions.pop((kind, f"{namespace}/{name}" if namespace else name), None)
        if kind == "Namespace":
            return self._live.delete_namespace(name)
        if kind == "Service":
            return self._live.delete_service(namespace, name)
        return self._live.delete_slice(namespace, name)


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name", ""))


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
    informers) and apply each event to the zone as it arrives, on the informer's own thread.
    Once every informer has listed, a (re)list makes the zone hold exactly the lists. While
    the API server cannot be reached the informers keep what they had, so the zone keeps
    answering from it."""
    from podnet.apiclient import Informer, WatchEvent, resource_path

    informers: dict[Kind, Informer] = {
        "Service": Informer(client, resource_path("services")),
        "EndpointSlice": Informer(client, resource_path("endpointslices", group_version="discovery.k8s.io/v1")),
        "Namespace": Informer(client, resource_path("namespaces"))}

    def reconcile() -> None:
        source.rebuild(informers["Service"].items(), informers["EndpointSlice"].items(),
                       informers["Namespace"].items())
        # The zone is a large, long-lived, acyclic object graph: left to the cyclic collector,
        # its full passes stall answers by hundreds of ms at 10,000 Services. Freezing moves
        # what exists now out of the collector's sight (what a later change replaces is still
        # freed by reference counting).
        gc.freeze()

    def changed(kind: Kind, event: WatchEvent | None) -> None:
        with source.lock:  # the lists are read under the lock: no event can slip in between
            if not all(inf.synced.is_set() for inf in informers.values()):
                return
            try:
                if event is None or source.current is None:
                    reconcile()
                else:
                    source.apply(kind, event.type, event.object)
            except Exception:  # the informer's thread must live on: start over from the lists
                log.exception("applying a %s event failed; reconciling with the full lists", kind)
                try:
                    reconcile()
                except Exception:  # the zone keeps answering from what it had
                    log.exception("reconciling failed; the zone keeps what it had")

    for kind, inf in informers.items():
        inf.on_change = functools.partial(changed, kind)
        inf.start(stop)
    stop.wait()


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
