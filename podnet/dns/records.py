"""The cluster zone as CoreDNS's ``kubernetes`` plugin answers it, from Service, EndpointSlice
and Namespace values (the Kubernetes DNS-based service discovery specification, schema 1.1.0).

Pure: ``ZoneIndex.build`` turns the objects into a name → records table, ``LiveZone`` keeps
one current object by object (a change costs what changed, not the zone's size: each
Service's share of the zone is added and removed with reference counts, and every change
reports the names whose answers it touched), and ``ZoneIndex.lookup`` answers one question
with the specification's response codes:

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
MAX_CNAME_CHAIN = 8  # ExternalNames pointing at each other in a circle end here
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
    depends: tuple[str, ...] = ()  # the names whose records or existence this answer reflects


def absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _ready(conditions_ready: bool | None, terminating: bool | None) -> bool:
    return conditions_ready is not False and not terminating


Bucket = dict[str, None]  # a record set's data, in the order added (a dict: O(1) removal)


@dataclass
class ZoneIndex:
    """Every name of the zone with its records, and the names that exist without records.
    Each record and each name is counted once per Service (or base entry) that contributes
    it, so removing one Service's share leaves what another still holds (two Services
    backed by one pod share its PTR name)."""

    zone: str = DEFAULT_ZONE
    records: dict[str, dict[str, Bucket]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every existing name, empty non-terminals included
    namespaces: set[str] = field(default_factory=set)
    _record_refs: dict[tuple[str, str, str], int] = field(default_factory=dict, repr=False, compare=False)
    _name_refs: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def origin(self) -> str:
        return absolute(self.zone)

    @property
    def soa(self) -> Record:
        return Record(self.origin, "SOA", f"ns.dns.{self.origin} hostmaster.{self.origin} 1 7200 1800 86400 5")

    def _add(self, name: str, rtype: str, data: str) -> None:
        """Add a record and make its name and every ancestor inside the zone exist, once
        (for the scratch index ``service_records`` computes one Service's share in)."""
        name = absolute(name)
        self.records.setdefault(name, {}).setdefault(rtype, {})[data] = None
        self.names.update(self._with_ancestors(name))

    def _with_ancestors(self, name: str) -> list[str]:
        if not name.endswith(self.origin):
            return [name]
        labels = name[: -len(self.origin)].rstrip(".").split(".")
        return [".".join(labels[i:]) + "." + self.origin for i in range(len(labels))] + [name]

    # -- counted changes (each reports the names whose answers changed) ---------------------
    def _hold_record(self, name: str, rtype: str, data: str, touched: set[str]) -> None:
        key = (name, rtype, data)
        count = self._record_refs.get(key, 0)
        self._record_refs[key] = count + 1
        if not count:
            self.records.setdefault(name, {}).setdefault(rtype, {})[data] = None
            touched.add(name)

    def _release_record(self, name: str, rtype: str, data: str, touched: set[str]) -> None:
        key = (name, rtype, data)
        count = self._record_refs.get(key, 0)
        if count > 1:
            self._record_refs[key] = count - 1
            return
        self._record_refs.pop(key, None)
        types = self.records.get(name)
        if types is None or rtype not in types:
            return
        types[rtype].pop(data, None)
        if not types[rtype]:
            del types[rtype]
        if not types:
            del self.records[name]
        touched.add(name)

    def _hold_name(self, name: str, touched: set[str]) -> None:
        count = self._name_refs.get(name, 0)
        self._name_refs[name] = count + 1
        if not count:
            self.names.add(name)
            touched.add(name)

    def _release_name(self, name: str, touched: set[str]) -> None:
        count = self._name_refs.get(name, 0)
        if count > 1:
            self._name_refs[name] = count - 1
            return
        self._name_refs.pop(name, None)
        if name in self.names:
            self.names.discard(name)
            touched.add(name)

    def replace(self, old: ServiceRecords | None, new: ServiceRecords | None) -> set[str]:
        """Swap one Service's share of the zone for another (either may be None: created or
        deleted), touching only the records that differ; returns the names whose answers
        may have changed."""
        touched: set[str] = set()
        old_records = set(old.records) if old is not None else set()
        new_records = set(new.records) if new is not None else set()
        old_names = old.names if old is not None else frozenset()
        new_names = new.names if new is not None else frozenset()
        for name in new_names - old_names:
            self._hold_name(name, touched)
        for rec in new_records - old_records:
            self._hold_record(*rec, touched)
        for rec in old_records - new_records:
            self._release_record(*rec, touched)
        for name in old_names - new_names:
            self._release_name(name, touched)
        return touched

    def add_namespace(self, namespace: str) -> set[str]:
        ns = namespace.lower()
        touched: set[str] = set()
        if ns not in self.namespaces:
            self.namespaces.add(ns)
            for name in (f"{ns}.svc.{self.origin}", f"{ns}.pod.{self.origin}"):
                self._hold_name(name, touched)
        return touched

    def remove_namespace(self, namespace: str) -> set[str]:
        ns = namespace.lower()
        touched: set[str] = set()
        if ns in self.namespaces:
            self.namespaces.discard(ns)
            for name in (f"{ns}.svc.{self.origin}", f"{ns}.pod.{self.origin}"):
                self._release_name(name, touched)
        return touched

    @classmethod
    def empty(cls, zone: str = DEFAULT_ZONE) -> ZoneIndex:
        """The zone with no Service: its apex, ``svc``, ``pod``, the SOA, NS and version."""
        index = cls(zone=zone.lower().rstrip("."))
        origin = index.origin
        base = ServiceRecords(((f"dns-version.{origin}", "TXT", f'"{SCHEMA_VERSION}"'),
                               (origin, "SOA", index.soa.data), (origin, "NS", f"ns.dns.{origin}")),
                              frozenset({origin, f"svc.{origin}", f"pod.{origin}", f"dns-version.{origin}"}))
        index.replace(None, base)
        return index

    @classmethod
    def build(cls, services: Iterable[Service], slices: Iterable[EndpointSlice], namespaces: Iterable[str],
              zone: str = DEFAULT_ZONE) -> ZoneIndex:
        """The whole zone from scratch (the first sync; ``LiveZone`` keeps it current)."""
        by_service = slices_by_service(slices)
        parts = (service_records(svc, by_service.get(f"{svc.namespace or 'default'}/{svc.name}", []), zone)
                 for svc in services)
        return cls.assemble(parts, namespaces, zone)

    @classmethod
    def assemble(cls, parts: Iterable[ServiceRecords], namespaces: Iterable[str], zone: str = DEFAULT_ZONE) -> ZoneIndex:
        """The same index as ``build``, from per-Service records computed earlier."""
        index = cls.empty(zone)
        for ns in namespaces:
            index.add_namespace(ns)
        for part in parts:
            index.replace(None, part)
        return index

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

    # -- questions -------------------------------------------------------------------------
    def ours(self, name: str) -> bool:
        name = absolute(name)
        return name == self.origin or name.endswith("." + self.origin)

    def lookup(self, qname: str, qtype: str, _depth: int = 0) -> Answer:
        name = absolute(qname)
        if not self.ours(name):
            found = self.records.get(name, {}).get("PTR") if qtype in ("PTR", "ANY") else None
            if found and name.endswith(".arpa."):
                return Answer(answer=tuple(Record(name, "PTR", d) for d in found), depends=(name,))
            return Answer(forward=True, depends=(name,))
        pod = self._pod_address(name)
        if pod is not None:
            rtype = "AAAA" if ":" in pod else "A"
            return Answer(answer=(Record(name, rtype, pod),)) if qtype == rtype else self._nodata(name)
        if name not in self.names:
            return Answer(rcode="NXDOMAIN", authority=(self.soa,), depends=(name,))
        types = self.records.get(name, {})
        if "CNAME" in types and qtype != "CNAME":
            target = next(iter(types["CNAME"]))
            cname = Record(name, "CNAME", target)
            if self.ours(target) and _depth < MAX_CNAME_CHAIN:
                inner = self.lookup(target, qtype, _depth + 1)
                return Answer(rcode=inner.rcode, answer=(cname, *inner.answer), authority=inner.authority,
                              depends=(name, *inner.depends))
            if self.ours(target):  # a loop of ExternalNames: the chain as far as it goes
                return Answer(answer=(cname,), depends=(name,))
            return Answer(answer=(cname,), chase=target, depends=(name,))
        wanted = list(types) if qtype == "ANY" else [qtype]
        answer = tuple(Record(name, t, d) for t in wanted for d in types.get(t, ()))
        if not answer:
            return self._nodata(name)
        targets = tuple(dict.fromkeys(r.data.split()[3] for r in answer if r.rtype == "SRV"))
        return Answer(answer=answer, additional=self._glue(targets), depends=(name, *targets))

    def _nodata(self, name: str) -> Answer:
        return Answer(authority=(self.soa,), depends=(name,))

    def _glue(self, targets: tuple[str, ...]) -> tuple[Record, ...]:
        """The addresses of SRV targets, as CoreDNS adds them."""
        return tuple(Record(target, t, d) for target in targets for t in ("A", "AAAA")
                     for d in self.records.get(target, {}).get(t, ()))

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


def namespaced(namespace: str | None, name: str) -> str:
    """``namespace/name``, the key objects are kept by (no namespace: ``default``)."""
    return f"{namespace or 'default'}/{name}"


@dataclass
class LiveZone:
    """The zone kept current one watch event at a time, as CoreDNS's informers keep their
    caches: a Service, EndpointSlice or Namespace added, changed or deleted recomputes that
    one Service's records and swaps them into the index, so a change among 10,000 Services
    costs what one costs. Every method returns the names whose answers may have changed (what
    an answer cache must forget)."""

    index: ZoneIndex = field(default_factory=ZoneIndex.empty)
    services: dict[str, Service] = field(default_factory=dict)  # namespace/name
    slices: dict[str, EndpointSlice] = field(default_factory=dict)  # namespace/slice name
    slices_of: dict[str, dict[str, EndpointSlice]] = field(default_factory=dict)  # namespace/service → its slices
    parts: dict[str, ServiceRecords] = field(default_factory=dict)  # namespace/service → its records

    @classmethod
    def empty(cls, zone: str = DEFAULT_ZONE) -> LiveZone:
        return cls(index=ZoneIndex.empty(zone))

    def set_service(self, svc: Service) -> set[str]:
        key = namespaced(svc.namespace, svc.name)
        self.services[key] = svc
        return self._refresh(key)

    def delete_service(self, namespace: str | None, name: str) -> set[str]:
        key = namespaced(namespace, name)
        self.services.pop(key, None)
        return self._refresh(key)

    def set_slice(self, sl: EndpointSlice) -> set[str]:
        key = namespaced(sl.namespace, sl.name)
        before = self._detach(key)
        self.slices[key] = sl
        owner = self._owner(sl)
        if owner is not None:
            self.slices_of.setdefault(owner, {})[key] = sl
        touched: set[str] = set()
        for service in dict.fromkeys((before, owner)):  # the label may have moved it to another Service
            if service is not None:
                touched |= self._refresh(service)
        return touched

    def delete_slice(self, namespace: str | None, name: str) -> set[str]:
        key = namespaced(namespace, name)
        before = self._detach(key)
        self.slices.pop(key, None)
        return self._refresh(before) if before is not None else set()

    def _detach(self, key: str) -> str | None:
        """Take a slice out of its Service's list; returns that Service's key."""
        owner = self._owner(self.slices.get(key))
        if owner is not None:
            mine = self.slices_of.get(owner, {})
            mine.pop(key, None)
            if not mine:
                self.slices_of.pop(owner, None)
        return owner

    def set_namespace(self, name: str) -> set[str]:
        return self.index.add_namespace(name)

    def delete_namespace(self, name: str) -> set[str]:
        return self.index.remove_namespace(name)

    @staticmethod
    def _owner(sl: EndpointSlice | None) -> str | None:
        return namespaced(sl.namespace, sl.service_name) if sl is not None and sl.service_name else None

    def _refresh(self, key: str) -> set[str]:
        """Recompute one Service's records from its object and slices, and swap them in."""
        svc = self.services.get(key)
        new = (service_records(svc, list(self.slices_of.get(key, {}).values()), self.index.zone)
               if svc is not None else None)
        old = self.parts.pop(key, None)
        if new is not None:
            self.parts[key] = new
        if old == new:
            return set()
        return self.index.replace(old, new)
