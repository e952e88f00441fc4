"""The cluster zone as CoreDNS's ``kubernetes`` plugin answers it, from Service, EndpointSlice
and Namespace values (the Kubernetes DNS-based service discovery specification, schema 1.1.0).

Pure: ``ZoneIndex.build`` turns the objects into a name → records table once per change, and
``ZoneIndex.lookup`` answers one question from it with the specification's response codes:

- ``<svc>.<ns>.svc.<zone>``: A = the ClusterIP; headless: one A per ready endpoint (no ready
  endpoint: the name does not exist); ExternalName: a CNAME (followed by the server);
- ``<hostname>.<svc>.<ns>.svc.<zone>``: a headless endpoint (its hostname, else its dashed IP);
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV for named ports (headless: one per endpoint,
  pointing at its own name); the Service name itself answers SRV for every port, as CoreDNS;
- PTR for ClusterIPs and for every ready endpoint (``<host>.<svc>.<ns>.svc.<zone>``, which also
  answers A, for ClusterIP Services too, as CoreDNS); ``<a-b-c-d>.<ns>.pod.<zone>`` A echoes the address
  (CoreDNS ``pods insecure``, kubeadm's default); ``dns-version.<zone>`` TXT;
- a name that exists without records of the asked type is NOERROR with no answer (AAAA of an
  IPv4 Service); a name that does not exist is NXDOMAIN; both carry the zone's SOA.

Names are compared case-insensitively; every record has the configured TTL (5 s by default)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from podnet.model import EndpointSlice, Service

SCHEMA_VERSION = "1.1.0"
DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 5
Rcode = Literal["NOERROR", "NXDOMAIN"]


@dataclass(frozen=True)
class Record:
    """One resource record in presentation form: owner name (absolute, lower case), type, data."""

    name: str
    rtype: str
    data: str


@dataclass(frozen=True)
class Answer:
    """What the zone says to one question. ``forward``: the name is not ours (ask upstream);
    ``chase``: a CNAME target outside the zone whose addresses the server should add."""

    rcode: Rcode = "NOERROR"
    answer: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    forward: bool = False
    chase: str | None = None


def absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _ready(conditions_ready: bool | None, terminating: bool | None) -> bool:
    return conditions_ready is not False and not terminating


@dataclass
class ZoneIndex:
    """Every name of the zone with its records, and the names that exist without records."""

    zone: str = DEFAULT_ZONE
    records: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every existing name, empty non-terminals included
    namespaces: frozenset[str] = frozenset()

    @property
    def origin(self) -> str:
        return absolute(self.zone)

    @property
    def soa(self) -> Record:
        return Record(self.origin, "SOA", f"ns.dns.{self.origin} hostmaster.{self.origin} 1 7200 1800 86400 5")

    def _add(self, name: str, rtype: str, data: str) -> None:
        name = absolute(name)
        bucket = self.records.setdefault(name, {}).setdefault(rtype, [])
        if data not in bucket:
            bucket.append(data)
        if name.endswith(self.origin):  # every ancestor inside the zone exists (as a non-terminal)
            labels = name[: -len(self.origin)].rstrip(".").split(".")
            for i in range(len(labels)):
                self.names.add(".".join(labels[i:]) + "." + self.origin)
        self.names.add(name)

    @classmethod
    def build(cls, services: Iterable[Service], slices: Iterable[EndpointSlice], namespaces: Iterable[str],
              zone: str = DEFAULT_ZONE) -> ZoneIndex:
        index = cls(zone=zone.lower().rstrip("."), namespaces=frozenset(n.lower() for n in namespaces))
        origin = index.origin
        index.names |= {origin, f"svc.{origin}", f"pod.{origin}"}
        for ns in index.namespaces:
            index.names |= {f"{ns}.svc.{origin}", f"{ns}.pod.{origin}"}
        index._add(f"dns-version.{origin}", "TXT", f'"{SCHEMA_VERSION}"')
        index._add(origin, "SOA", index.soa.data)
        index._add(origin, "NS", f"ns.dns.{origin}")
        by_service = slices_by_service(slices)
        for svc in services:
            index._add_service(svc, by_service.get(f"{svc.namespace or 'default'}/{svc.name}", []))
        return index

    def merge(self, part: ServiceRecords) -> None:
        """Add one Service's records, computed before (``service_records``)."""
        for name, rtype, data in part.records:
            bucket = self.records.setdefault(name, {}).setdefault(rtype, [])
            if data not in bucket:
                bucket.append(data)
        self.names |= part.names

    def _add_service(self, svc: Service, slices: list[EndpointSlice]) -> None:
        ns = (svc.namespace or "default").lower()
        fqdn = f"{svc.name.lower()}.{ns}.svc.{self.origin}"
        spec = svc.spec
        if spec.type == "ExternalName":
            if spec.external_name:
                self._add(fqdn, "CNAME", absolute(spec.external_name))
            return
        ports = [(p.name, p.protocol.lower(), p.port) for p in spec.ports or ()]
        if not spec.headless:
            for ip in spec.cluster_ips or ([spec.cluster_ip] if spec.cluster_ip else []):
                self._add(fqdn, "AAAA" if ":" in ip else "A", ip)
                self._add(reverse_name(ip), "PTR", fqdn)
            weight = max(1, 100 // max(1, len(ports)))
            for name, proto, port in ports:
                self._add(fqdn, "SRV", f"0 {weight} {port} {fqdn}")
                if name:
                    self._add(f"_{name}._{proto}.{fqdn}", "SRV", f"0 100 {port} {fqdn}")
            for ip, host, _ in _ready_endpoints(slices):
                # CoreDNS answers an endpoint's own name and its PTR for any Service, so a pod
                # behind a ClusterIP resolves backwards to <host>.<svc>.<ns>.svc too.
                self._add(f"{host}.{fqdn}", "AAAA" if ":" in ip else "A", ip)
                self._add(reverse_name(ip), "PTR", f"{host}.{fqdn}")
            return
        self._add_headless(fqdn, slices)

    def _add_headless(self, fqdn: str, slices: list[EndpointSlice]) -> None:
        endpoints = _ready_endpoints(slices)
        if not endpoints:
            return  # no ready endpoint: the name does not exist (NXDOMAIN)
        weight = max(1, 100 // len(endpoints))
        for ip, host, slice_ports in endpoints:
            rtype = "AAAA" if ":" in ip else "A"
            target = f"{host}.{fqdn}"
            self._add(fqdn, rtype, ip)
            self._add(target, rtype, ip)
            self._add(reverse_name(ip), "PTR", target)
            for name, proto, port in slice_ports:
                self._add(fqdn, "SRV", f"0 {weight} {port} {target}")
                if name:
                    self._add(f"_{name}._{proto}.{fqdn}", "SRV", f"0 {weight} {port} {target}")

    @classmethod
    def assemble(cls, parts: Iterable[ServiceRecords], namespaces: Iterable[str], zone: str = DEFAULT_ZONE) -> ZoneIndex:
        """The same index as ``build``, from per-Service records computed earlier: a change
        to one Service among thousands recomputes only its own records."""
        index = cls.build([], [], namespaces, zone)
        for part in parts:
            index.merge(part)
        return index

    # -- questions -------------------------------------------------------------------------
    def ours(self, name: str) -> bool:
        name = absolute(name)
        return name == self.origin or name.endswith("." + self.origin)

    def lookup(self, qname: str, qtype: str) -> Answer:
        name = absolute(qname)
        if not self.ours(name):
            found = self.records.get(name, {}).get("PTR") if qtype in ("PTR", "ANY") else None
            if found and name.endswith(".arpa."):
                return Answer(answer=tuple(Record(name, "PTR", d) for d in found))
            return Answer(forward=True)
        pod = self._pod_address(name)
        if pod is not None:
            rtype = "AAAA" if ":" in pod else "A"
            return Answer(answer=(Record(name, rtype, pod),)) if qtype == rtype else self._nodata()
        if name not in self.names:
            return Answer(rcode="NXDOMAIN", authority=(self.soa,))
        types = self.records.get(name, {})
        if "CNAME" in types and qtype != "CNAME":
            target = types["CNAME"][0]
            cname = Record(name, "CNAME", target)
            if self.ours(target):
                inner = self.lookup(target, qtype)
                return Answer(rcode=inner.rcode, answer=(cname, *inner.answer), authority=inner.authority)
            return Answer(answer=(cname,), chase=target)
        wanted = list(types) if qtype == "ANY" else [qtype]
        answer = tuple(Record(name, t, d) for t in wanted for d in types.get(t, ()))
        if not answer:
            return self._nodata()
        return Answer(answer=answer, additional=self._glue(answer))

    def _nodata(self) -> Answer:
        return Answer(authority=(self.soa,))

    def _glue(self, answer: tuple[Record, ...]) -> tuple[Record, ...]:
        """The addresses of SRV targets, as CoreDNS adds them."""
        out: list[Record] = []
        for rec in answer:
            if rec.rtype == "SRV":
                target = rec.data.split()[3]
                for t in ("A", "AAAA"):
                    out += [Record(target, t, d) for d in self.records.get(target, {}).get(t, ())]
        return tuple(dict.fromkeys(out))

    def _pod_address(self, name: str) -> str | None:
        """``a-b-c-d.<ns>.pod.<zone>`` → a.b.c.d (any namespace label, as ``pods insecure``)."""
        labels = name[: -len(self.origin)].rstrip(".").split(".")
        if len(labels) != 3 or labels[2] != "pod":
            return None
        text = labels[0]
        for candidate in (text.replace("-", "."), text.replace("-", ":")):
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue
        return None


def _ready_endpoints(slices: list[EndpointSlice]) -> list[tuple[str, str, list[tuple[str | None, str, int]]]]:
    """(address, host label, the slice's ports) of every ready, not terminating endpoint."""
    out: list[tuple[str, str, list[tuple[str | None, str, int]]]] = []
    for sl in slices:
        slice_ports = [(p.name or None, (p.protocol or "TCP").lower(), p.port) for p in sl.ports or () if p.port]
        for ep in sl.endpoints:
            if _ready(ep.conditions.ready, ep.conditions.terminating):
                ip = ep.addresses[0]
                out.append((ip, (ep.hostname or dashed(ip)).lower(), slice_ports))
    return out


@dataclass(frozen=True)
class ServiceRecords:
    """One Service's share of the zone: its records and the names they make exist."""

    records: tuple[tuple[str, str, str], ...]
    names: frozenset[str]


def service_records(svc: Service, slices: list[EndpointSlice], zone: str = DEFAULT_ZONE) -> ServiceRecords:
    scratch = ZoneIndex(zone=zone.lower().rstrip("."))
    scratch._add_service(svc, slices)
    records = tuple((name, rtype, data) for name, types in scratch.records.items()
                    for rtype, datas in types.items() for data in datas)
    return ServiceRecords(records, frozenset(scratch.names))


def slices_by_service(slices: Iterable[EndpointSlice]) -> dict[str, list[EndpointSlice]]:
    """``namespace/service`` → its slices (by the ``kubernetes.io/service-name`` label)."""
    out: dict[str, list[EndpointSlice]] = {}
    for sl in slices:
        if sl.service_name:
            out.setdefault(f"{sl.namespace or 'default'}/{sl.service_name}", []).append(sl)
    return out
