"""ResourceStore: typed Kubernetes/Calico objects over a raw Store, with API-server semantics.

What the API server would do is done here, so every caller (CLI, agents, controllers) gets it
the same way: keys ``/registry/<plural>/[<namespace>/]<name>``; server-set metadata (uid,
creationTimestamp, generation; resourceVersion is the key's mod_revision, never stored);
namespaced objects default to namespace ``default`` and need that namespace to exist; every
Namespace carries ``kubernetes.io/metadata.name``; status is a subresource (``update`` and
``apply`` keep the stored status, ``update_status`` changes only it).

Multi-object writes (``apply``, ``delete_many``) are one transaction guarded by a compare on
every key they read, retried a few times on conflict: all or nothing, no lost update.

Deletion is graceful where the API server makes it so: a Pod bound to a node gets
``deletionTimestamp`` (now + its grace period) and ``deletionGracePeriodSeconds`` and stays
until its node's agent, having stopped its processes, deletes it with grace period 0; a
Namespace turns ``Terminating``, its other objects go at once, its pods gracefully, and the
namespace itself goes with its last pod.
"""
from __future__ import annotations

import builtins
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, cast

from ..errors import AlreadyExists, Conflict, NotFound, PodnetError
from ..model import KINDS, Ingress, Namespace, Pod, Resource, Service
from ..services import admission as service_admission
from ..services import ingress_admission, pod_admission
from .api import Compare, Delete, Put, Record, Store

REGISTRY = "/registry/"
NAME_LABEL = "kubernetes.io/metadata.name"
BOOTSTRAP_NAMESPACES = ("default", "kube-system")
PROTECTED_NAMESPACES = ("default", "kube-system")
#: metadata the server owns: ignored in what users send, kept from what is stored.
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                 "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
#: annotations that record where an object came from, not what it is: a difference in them
#: alone is written (so citations stay right) but reported as "unchanged".
PROVENANCE_ANNOTATIONS = ("podnet.io/source", "kubectl.kubernetes.io/last-applied-configuration")
ATTEMPTS = 8

Action = Literal["created", "configured", "unchanged"]
WatchType = Literal["ADDED", "MODIFIED", "DELETED"]
Ref = Resource | tuple[type[Resource], str, str | None]
R = TypeVar("R", bound=Resource)

_BY_PLURAL: dict[str, type[Resource]] = {cls.PLURAL: cls for cls in KINDS}
#: What the API server's admission does per kind, inside the write's transaction: ``admit``
#: gets the kind's changes and the values under ``READS``, and returns the values to store
#: and the keys of its own to put and delete, or raises (nothing is written).
ADMISSIONS: dict[type[Resource], Any] = {Service: service_admission, Ingress: ingress_admission, Pod: pod_admission}
#: (kind, key, value asked for or None for a deletion, stored value or None)
Change = tuple[type[Resource], str, dict[str, Any] | None, dict[str, Any] | None]


class Matcher(Protocol):
    def matches(self, labels: Mapping[str, str]) -> bool: ...


# -- keys ----------------------------------------------------------------------------------------
def _check_kind(cls: type[Resource]) -> None:
    if _BY_PLURAL.get(cls.PLURAL) is not cls:
        raise PodnetError(f"{cls.__name__} is not a kind the store knows",
                          hint="register it in podnet.model.registry.KINDS")


def key_for(cls: type[Resource], name: str, namespace: str | None = None) -> str:
    """The store key of one object (namespaced kinds default to namespace ``default``)."""
    _check_kind(cls)
    if cls.NAMESPACED:
        return f"{REGISTRY}{cls.PLURAL}/{namespace or 'default'}/{name}"
    return f"{REGISTRY}{cls.PLURAL}/{name}"


def prefix_for(cls: type[Resource], namespace: str | None = None) -> str:
    """The key prefix of a kind, or of a kind in one namespace."""
    _check_kind(cls)
    if cls.NAMESPACED and namespace:
        return f"{REGISTRY}{cls.PLURAL}/{namespace}/"
    return f"{REGISTRY}{cls.PLURAL}/"


def kind_of_key(key: str) -> type[Resource] | None:
    if not key.startswith(REGISTRY):
        return None
    return _BY_PLURAL.get(key[len(REGISTRY):].split("/", 1)[0])


def decode(record: Record, cls: type[Resource] | None = None) -> Resource:
    """A stored record as its typed value, with resourceVersion = the record's mod_revision."""
    cls = cls or kind_of_key(record.key)
    if cls is None:
        raise PodnetError(f"store key {record.key!r} is not a resource key")
    return _from_dict(cls, record.value, record.mod_revision)


def _from_dict(cls: type[Resource], value: dict[str, Any], revision: int) -> Resource:
    value = {**value, "metadata": {**value["metadata"], "resourceVersion": str(revision)}}
    return cls.model_validate(value)


# -- value shaping -------------------------------------------------------------------------------
_META_ATTRS = {"uid": "uid", "resourceVersion": "resource_version", "generation": "generation",
               "creationTimestamp": "creation_timestamp", "managedFields": "managed_fields",
               "selfLink": "self_link", "deletionTimestamp": "deletion_timestamp",
               "deletionGracePeriodSeconds": "deletion_grace_period_seconds"}


def _typed(obj: Resource, cls: type[Resource], stored: dict[str, Any], revision: int, admitted: bool = False) -> Resource:
    """The stored value as a typed object, reusing the already validated input ``obj`` when the
    stored value is that input plus server metadata (validating 10,000 objects twice would
    double the cost of a large apply); anything with a stored status, or that an admission
    changed, is decoded in full."""
    if admitted or "status" in stored:
        return _from_dict(cls, stored, revision)
    meta = stored["metadata"]
    changes: dict[str, Any] = {attr: meta.get(name) for name, attr in _META_ATTRS.items()}
    changes.update(resource_version=str(revision), namespace=meta.get("namespace"), labels=meta.get("labels", {}))
    update: dict[str, Any] = {"metadata": obj.metadata.model_copy(update=changes)}
    if "status" in cls.model_fields:
        update["status"] = _default_status(cls)
    return obj.model_copy(update=update)


_DEFAULT_STATUS: dict[type[Resource], Any] = {}


def _default_status(cls: type[Resource]) -> Any:
    """A kind's empty status, made once (values are frozen, so sharing one is safe)."""
    if cls not in _DEFAULT_STATUS:
        _DEFAULT_STATUS[cls] = cls.model_fields["status"].get_default(call_default_factory=True)
    return _DEFAULT_STATUS[cls]


def _desired(obj: Resource) -> tuple[type[Resource], str, dict[str, Any]]:
    """What a user's object asks for: normalised, without server-owned metadata and status."""
    cls = type(obj)
    _check_kind(cls)
    if not obj.metadata.name:
        raise PodnetError(f"{cls.KIND} has no metadata.name", hint="give every object a name")
    value = obj.to_dict()
    value.pop("status", None)
    meta = value["metadata"]
    for name in SERVER_FIELDS:
        meta.pop(name, None)
    if cls.NAMESPACED:
        meta["namespace"] = obj.metadata.namespace or "default"
    else:
        meta.pop("namespace", None)  # ignored for cluster-scoped kinds, as the API server does
    if cls is Namespace:
        meta["labels"] = {**meta.get("labels", {}), NAME_LABEL: obj.metadata.name}
    return cls, key_for(cls, obj.metadata.name, meta.get("namespace")), value


def _comparable(value: dict[str, Any], drop_provenance: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in value.items() if k != "status"}
    meta = {k: v for k, v in value["metadata"].items() if k not in SERVER_FIELDS}
    if drop_provenance and "annotations" in meta:
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k not in PROVENANCE_ANNOTATIONS}
    out["metadata"] = meta
    return out


def _spec_part(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("metadata", "status")}


def _merge(desired: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The new stored value: the user's fields, the server's metadata and the stored status."""
    value = dict(desired)
    meta = dict(desired["metadata"])
    for name in SERVER_FIELDS:
        if name in stored["metadata"]:
            meta[name] = stored["metadata"][name]
    generation = stored["metadata"].get("generation", 1)
    meta["generation"] = generation + 1 if _spec_part(desired) != _spec_part(stored) else generation
    value["metadata"] = meta
    if "status" in stored:
        value["status"] = stored["status"]
    return value


def _merge_admitted(value: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``_merge``, except that a status the admission set replaces the stored one."""
    new = _merge(value, stored)
    if "status" in value:
        new["status"] = value["status"]
    return new


@dataclass(frozen=True)
class Snapshot:
    """Every object at one revision, for pure planners: ``objects[KIND]`` is sorted by
    (namespace, name); ``raw`` holds the keys outside ``/registry/`` (IPAM blocks, affinities).
    Kinds of two API groups may share a name (v1 Node and Calico's Node, the two
    NetworkPolicies): ``of`` and ``get`` answer by class, never by kind name alone."""

    revision: int
    objects: Mapping[str, tuple[Resource, ...]] = field(default_factory=dict)
    raw: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    _by_class: dict[type[Resource], tuple[Resource, ...]] = field(init=False, repr=False, compare=False)
    _index: dict[tuple[type[Resource], str | None, str], Resource] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_class: dict[type[Resource], builtins.list[Resource]] = {}
        for objs in self.objects.values():
            for o in objs:
                by_class.setdefault(type(o), []).append(o)
        object.__setattr__(self, "_by_class", {cls: tuple(objs) for cls, objs in by_class.items()})
        index = {(type(o), o.metadata.namespace, o.metadata.name): o for objs in self.objects.values() for o in objs}
        object.__setattr__(self, "_index", index)

    def of(self, cls: type[R]) -> tuple[R, ...]:
        return cast(tuple[R, ...], self._by_class.get(cls, ()))

    def get(self, cls: type[R], name: str, namespace: str | None = None) -> R | None:
        ns = (namespace or "default") if cls.NAMESPACED else None
        return cast(R | None, self._index.get((cls, ns, name)))


class ResourceStore:
    """Typed objects over a raw ``Store`` (``kv``; IPAM uses it directly for its own keys)."""

    def __init__(self, kv: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.kv = kv
        self._clock = clock or (lambda: datetime.now(UTC))

    def revision(self) -> int:
        return self.kv.revision()

    def close(self) -> None:
        self.kv.close()

    # -- reads ---------------------------------------------------------------------------------
    def get(self, cls: type[Resource], name: str, namespace: str | None = None) -> Resource | None:
        record = self.kv.get(key_for(cls, name, namespace))
        return None if record is None else decode(record, cls)

    def list(self, cls: type[Resource], namespace: str | None = None,
             selector: Matcher | None = None) -> builtins.list[Resource]:
        """Objects of a kind sorted by (namespace, name); ``namespace`` None = all namespaces.

        The selector is tried on the stored labels first, so only matching objects pay for
        validation into typed values."""
        records, _ = self.kv.list(prefix_for(cls, namespace))
        if selector is not None:
            records = [r for r in records if selector.matches(r.value["metadata"].get("labels") or {})]
        return _sorted(decode(r, cls) for r in records)

    def snapshot(self) -> Snapshot:
        records, revision = self.kv.list("")
        objects: dict[str, builtins.list[Resource]] = {}
        raw: dict[str, dict[str, Any]] = {}
        for record in records:
            cls = kind_of_key(record.key)
            if cls is None:
                raw[record.key] = record.value
            else:
                objects.setdefault(cls.KIND, []).append(decode(record, cls))
        return Snapshot(revision, {k: tuple(_sorted(v)) for k, v in objects.items()}, raw)

    def watch(self, from_revision: int, timeout: float | None = None,
              kinds: Sequence[type[Resource]] | None = None) -> Iterator[tuple[WatchType, Resource]]:
        """Changes with revision ≥ ``from_revision``, in order, as (ADDED|MODIFIED|DELETED, object).

        A DELETED object is its last state with resourceVersion = the deletion's revision. To
        resume, watch from the last object's resourceVersion + 1 (or from the same revision
        to be sure not to miss the rest of a multi-object transaction). Raises ``Compacted``:
        then ``snapshot()`` again and watch from its revision + 1.
        """
        wanted = {cls.KIND for cls in kinds} if kinds else None
        for event in self.kv.watch(REGISTRY, from_revision, timeout):
            cls = kind_of_key(event.key)
            if cls is None or (wanted is not None and cls.KIND not in wanted):
                continue
            if event.type == "DELETE":
                assert event.prev_value is not None
                yield "DELETED", _from_dict(cls, event.prev_value, event.revision)
            else:
                assert event.value is not None
                yield ("ADDED" if event.version == 1 else "MODIFIED"), _from_dict(cls, event.value, event.revision)

    # -- single-object writes ------------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        """Create; keeps ``status`` as given (components create objects with what they know).
        ``AlreadyExists`` if it exists; ``NotFound`` if its namespace does not."""
        if not obj.metadata.name and obj.metadata.generate_name:
            obj = obj.with_meta(name=obj.metadata.generate_name + _random_suffix())
        cls, key, value = _desired(obj)
        status = obj.to_dict().get("status")
        if status is not None:
            value["status"] = status
        for _ in range(ATTEMPTS):
            compares = [Compare(key, 0)]
            self._namespace_guard(cls, value, compares)
            (admitted,), guards, writes = self._admit([(cls, key, value, None)])
            new = self._stamp(admitted or value)
            result = self.kv.txn(compares + guards, [Put(key, new), *writes])
            if result.succeeded:
                return _from_dict(cls, new, result.revision)
            if key in result.failed_keys:
                raise AlreadyExists(f'{cls.resource_name()} "{obj.metadata.name}" already exists'
                                    + _in_ns(cls, value), hint="use apply or update to change it")
            # else the namespace changed under us (relabelled, or deleted): check it again
        raise _too_busy([key])

    def update(self, obj: Resource, check_version: bool = True) -> Resource:
        """Replace what a user owns (spec, labels, annotations); keep server metadata and status.

        With ``check_version`` and a ``metadata.resourceVersion`` on ``obj``, the update happens
        only if the object is still at that version (else ``Conflict``)."""
        cls, key, value = _desired(obj)
        expected = _version_of(obj) if check_version else None
        for _ in range(ATTEMPTS):
            record = self._existing(cls, key, value)
            if expected is not None and record.mod_revision != expected:
                raise _stale(cls, value, expected, record.mod_revision)
            (admitted,), guards, writes = self._admit([(cls, key, value, record.value)])
            new = _merge_admitted(admitted or value, record.value)
            result = self.kv.txn([Compare(key, record.mod_revision), *guards], [Put(key, new), *writes])
            if result.succeeded:
                return _from_dict(cls, new, result.revision)
        raise _too_busy([key])

    def update_status(self, obj: Resource, check_version: bool = False) -> Resource:
        """Set only ``status`` (the status subresource): for agents and controllers reporting."""
        cls, key, value = _desired(obj)
        status = obj.to_dict().get("status")
        expected = _version_of(obj) if check_version else None
        for _ in range(ATTEMPTS):
            record = self._existing(cls, key, value)
            if expected is not None and record.mod_revision != expected:
                raise _stale(cls, value, expected, record.mod_revision)
            new = {k: v for k, v in record.value.items() if k != "status"}
            if status is not None:
                new["status"] = status
            if new == record.value:
                return decode(record, cls)
            result = self.kv.txn([Compare(key, record.mod_revision)], [Put(key, new)])
            if result.succeeded:
                return _from_dict(cls, new, result.revision)
        raise _too_busy([key])

    def delete(self, cls: type[Resource], name: str, namespace: str | None = None,
               grace_period_seconds: int | None = None, uid: str | None = None) -> bool:
        """Delete one object (a Namespace takes its objects with it); False if it was absent
        (or, with ``uid``, is another incarnation). See ``delete_many`` for grace periods."""
        return self.delete_many([(cls, name, namespace)], grace_period_seconds=grace_period_seconds,
                                uid=uid)[0] is not None

    # -- multi-object writes -------------------------------------------------------------------
    def apply(self, objs: Sequence[Resource], dry_run: bool = False) -> builtins.list[tuple[Resource, Action]]:
        """Create or update every object in one transaction: all or nothing.

        Returns (stored object, "created" | "configured" | "unchanged") in input order.
        "unchanged" means spec, labels and annotations already matched (server metadata and
        status are not compared). Raises ``NotFound`` (nothing written) if an object's
        namespace neither exists nor is created by this apply. ``dry_run``: every check and
        the same answer, nothing written (kubectl's ``--dry-run=server``).
        """
        prepared = [_desired(o) for o in objs]
        _refuse_duplicates(prepared)
        keys = [key for _, key, _ in prepared]
        creating_ns = {value["metadata"]["name"] for cls, _, value in prepared if cls is Namespace}
        needed_ns: dict[str, builtins.list[str]] = {}
        for cls, _, value in prepared:
            ns = value["metadata"].get("namespace")
            if ns is not None and ns not in creating_ns:
                needed_ns.setdefault(ns, []).append(f"{cls.KIND} {ns}/{value['metadata']['name']}")
        ns_keys = [key_for(Namespace, ns) for ns in needed_ns]
        for _ in range(ATTEMPTS):
            current = self._read_many(keys + ns_keys)
            missing = [ns for ns, k in zip(needed_ns, ns_keys) if k not in current]
            if missing:
                raise _missing_namespaces(missing, needed_ns)
            for cls, key, value in prepared:
                ns_key = key_for(Namespace, value["metadata"].get("namespace") or "")
                if key not in current and ns_key in current:
                    _refuse_terminating(current[ns_key], cls, value["metadata"]["name"])
            compares = [Compare(k, current[k].mod_revision if k in current else 0) for k in keys + ns_keys]
            admitted, guards, writes = self._admit([(cls, key, value, current[key].value if key in current else None)
                                                    for cls, key, value in prepared])
            puts: builtins.list[Put | Delete] = []
            plan: builtins.list[tuple[type[Resource], dict[str, Any], Action, int | None]] = []
            for (cls, key, value), admitted_value in zip(prepared, admitted):
                value = admitted_value or value
                record = current.get(key)
                if record is None:
                    new = self._stamp(value)
                    puts.append(Put(key, new))
                    plan.append((cls, new, "created", None))
                    continue
                if _comparable(value) == _comparable(record.value) and \
                        value.get("status", record.value.get("status")) == record.value.get("status"):
                    plan.append((cls, record.value, "unchanged", record.mod_revision))
                    continue
                new = _merge_admitted(value, record.value)
                puts.append(Put(key, new))
                same = _comparable(value, True) == _comparable(record.value, True)
                plan.append((cls, new, "unchanged" if same else "configured", None))
            if (puts or writes) and not dry_run:  # writes alone: an admission recording what a stored object already holds
                result = self.kv.txn(compares + guards, puts + writes)
                if not result.succeeded:
                    continue
                revision = result.revision
            else:
                revision = 0
            return [(_typed(obj, cls, value, rev or revision, admitted_value is not None), action)
                    for obj, (cls, value, action, rev), admitted_value in zip(objs, plan, admitted)]
        raise _too_busy(keys)

    def delete_many(self, refs: Sequence[Ref], missing_ok: bool = True, grace_period_seconds: int | None = None,
                    uid: str | None = None) -> builtins.list[Resource | None]:
        """Delete objects in one transaction, gracefully where the API server does.

        A Pod on a node is marked (``deletionTimestamp`` = now + grace, grace =
        ``grace_period_seconds`` or its ``terminationGracePeriodSeconds``, default 30) unless
        the grace is 0, it is unscheduled or it has finished; a second delete may only shorten
        the grace. A Namespace is marked Terminating and takes its objects along (its pods
        gracefully); it is removed with its last pod. With ``uid``, only that incarnation of an
        object counts as present.

        Returns, per ref, the deleted or marked object (resourceVersion = the transaction's
        revision) or None if it was absent. With ``missing_ok=False`` an absent object raises
        ``NotFound`` and nothing is deleted. ``default`` and ``kube-system`` may not be deleted.
        """
        targets = [_ref_key(r) for r in refs]
        for cls, name, _ in targets:
            if cls is Namespace and name in PROTECTED_NAMESPACES:
                raise PodnetError(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        keys = [key for _, _, key in targets]
        for _ in range(ATTEMPTS):
            current = self._read_many(keys)
            if uid is not None:
                current = {k: r for k, r in current.items() if r.value["metadata"].get("uid") == uid}
            absent = [f"{cls.resource_name()} \"{name}\"" for cls, name, key in targets if key not in current]
            if absent and not missing_ok:
                raise NotFound(f"{', '.join(absent)} not found; nothing was deleted",
                               hint="check the names and namespaces (podnet get …), or ignore missing objects")
            plan = _DeletionPlan(self._clock(), grace_period_seconds)
            for cls, _, key in targets:
                if key in current:
                    plan.add(cls, current[key])
            for ns, record in plan.terminating_namespaces():
                for key, inner in self._namespace_contents([ns]).items():
                    if key not in plan.seen:
                        plan.add(kind_of_key(key) or Namespace, inner, grace=None)
                plan.settle_namespace(record, self._pods_in(ns))
            for ns in plan.namespaces_losing_pods():
                ns_record = self.kv.get(key_for(Namespace, ns))
                if ns_record is not None and ns_record.value["metadata"].get("deletionTimestamp"):
                    plan.settle_namespace(ns_record, self._pods_in(ns))
            if not plan.ops:
                return [decode(current[key], cls) if key in current else None for cls, _, key in targets]
            _, guards, writes = self._admit_deletions({k: plan.seen[k] for k in plan.removed})
            result = self.kv.txn([*(Compare(k, r.mod_revision) for k, r in plan.seen.items()), *guards],
                                 [*plan.ops, *writes])
            if result.succeeded:
                # A create in the namespace may have committed between our read and our txn
                # (it guards on the namespace key, which only our txn changes): sweep it up.
                self._sweep(plan.removed_namespaces)
                return [_result(plan, key, current[key], result.revision, cls) if key in current else None
                        for cls, _, key in targets]
        raise _too_busy(keys)

    def _pods_in(self, namespace: str) -> builtins.list[Record]:
        from ..model import Pod

        return self.kv.list(prefix_for(Pod, namespace))[0]

    def bootstrap(self) -> None:
        """Make sure the namespaces ``default`` and ``kube-system`` exist (idempotent)."""
        for name in BOOTSTRAP_NAMESPACES:
            if self.kv.get(key_for(Namespace, name)) is None:
                try:
                    self.create(Namespace.model_validate({"metadata": {"name": name}}))
                except AlreadyExists:
                    pass

    # -- internals -----------------------------------------------------------------------------
    def _admit(self, changes: Sequence[Change]) -> tuple[builtins.list[dict[str, Any] | None], builtins.list[Compare],
                                                         builtins.list[Put | Delete]]:
        """Run each kind's admission over its changes: (per change the value to store, or None
        where no admission changed it; guards on the admission's keys; its writes)."""
        values: builtins.list[dict[str, Any] | None] = [None] * len(changes)
        guards: builtins.list[Compare] = []
        writes: builtins.list[Put | Delete] = []
        for cls, admission in ADMISSIONS.items():
            mine = [i for i, change in enumerate(changes) if change[0] is cls]
            if not mine:
                continue
            records = {r.key: r for prefix in admission.READS for r in self.kv.list(prefix)[0]}
            outcome = admission.admit([admission.Change(changes[i][1], changes[i][2], changes[i][3]) for i in mine],
                                      {k: r.value for k, r in records.items()})
            for i, value in zip(mine, outcome.values):
                values[i] = value
            guards += [Compare(k, records[k].mod_revision if k in records else 0) for k in outcome.puts]
            guards += [Compare(k, records[k].mod_revision) for k in outcome.deletes]
            writes += [Put(k, v) for k, v in outcome.puts.items()] + [Delete(k) for k in outcome.deletes]
        return values, guards, writes

    def _admit_deletions(self, doomed: Mapping[str, Record]) -> tuple[builtins.list[dict[str, Any] | None],
                                                                      builtins.list[Compare], builtins.list[Put | Delete]]:
        changes: builtins.list[Change] = []
        for key, record in doomed.items():
            cls = kind_of_key(key)
            if cls in ADMISSIONS:
                changes.append((cls, key, None, record.value))
        return self._admit(changes) if changes else ([], [], [])

    def _stamp(self, value: dict[str, Any]) -> dict[str, Any]:
        """Server metadata of a new object."""
        meta = {**value["metadata"], "uid": str(uuid.uuid4()), "generation": 1,
                "creationTimestamp": self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {**value, "metadata": meta}

    def _namespace_guard(self, cls: type[Resource], value: dict[str, Any], compares: builtins.list[Compare]) -> None:
        """For a namespaced object: check its namespace exists and guard on it in the txn."""
        ns = value["metadata"].get("namespace")
        if ns is None:
            return
        ns_key = key_for(Namespace, ns)
        record = self.kv.get(ns_key)
        if record is None:
            raise _missing_namespaces([ns], {ns: [f"{cls.KIND} {ns}/{value['metadata']['name']}"]})
        _refuse_terminating(record, cls, value["metadata"]["name"])
        compares.append(Compare(ns_key, record.mod_revision))

    def _existing(self, cls: type[Resource], key: str, value: dict[str, Any]) -> Record:
        record = self.kv.get(key)
        if record is None:
            raise NotFound(f'{cls.resource_name()} "{value["metadata"]["name"]}" not found' + _in_ns(cls, value),
                           hint="create it first (podnet apply -f …)")
        return record

    def _read_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Current records of ``keys``: one prefix list where many keys share a parent, else gets."""
        groups: dict[str, builtins.list[str]] = {}
        for key in keys:
            groups.setdefault(key.rpartition("/")[0] + "/", []).append(key)
        found: dict[str, Record] = {}
        for prefix, members in groups.items():
            if len(members) > 8:
                wanted = set(members)
                found.update((r.key, r) for r in self.kv.list(prefix)[0] if r.key in wanted)
            else:
                for key in members:
                    record = self.kv.get(key)
                    if record is not None:
                        found[key] = record
        return found

    def _namespace_contents(self, namespaces: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        for ns in namespaces:
            for cls in KINDS:
                if cls.NAMESPACED:
                    found.update((r.key, r) for r in self.kv.list(prefix_for(cls, ns))[0])
        return found

    def _sweep(self, namespaces: Sequence[str]) -> None:
        for _ in range(ATTEMPTS):
            leftovers = self._namespace_contents(namespaces)
            if not leftovers:
                return
            _, guards, writes = self._admit_deletions(leftovers)
            self.kv.txn([*(Compare(k, r.mod_revision) for k, r in leftovers.items()), *guards],
                        [*(Delete(k) for k in leftovers), *writes])


def _random_suffix() -> str:
    """Five characters as the API server appends to ``generateName`` (its safe alphabet)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))


def _sorted(objs: Iterable[Resource]) -> builtins.list[Resource]:
    """By (namespace, name), as kubectl lists (key order differs: '/' sorts after '-')."""
    return sorted(objs, key=lambda o: (o.metadata.namespace or "", o.metadata.name))


def _ref_key(ref: Ref) -> tuple[type[Resource], str, str]:
    if isinstance(ref, Resource):
        cls, name, ns = type(ref), ref.metadata.name, ref.metadata.namespace
    else:
        cls, name, ns = ref
    return cls, name, key_for(cls, name, ns)


def _at(record: Record, revision: int) -> Record:
    return Record(record.key, record.value, record.create_revision, revision, record.version)


def _version_of(obj: Resource) -> int | None:
    rv = obj.metadata.resource_version
    if not rv:
        return None
    try:
        return int(rv)
    except ValueError:
        raise PodnetError(f"{type(obj).KIND} {obj.ref}: metadata.resourceVersion {rv!r} is not a podnet revision",
                          hint="get the object again, or remove resourceVersion") from None


def _in_ns(cls: type[Resource], value: dict[str, Any]) -> str:
    return f' in namespace "{value["metadata"]["namespace"]}"' if cls.NAMESPACED else ""


def _stale(cls: type[Resource], value: dict[str, Any], expected: int, actual: int) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {cls.resource_name()} "{value["metadata"]["name"]}": the object has been '
        f"modified (resourceVersion {expected} → {actual})",
        hint="get the latest version, apply your changes to it, and try again",
    )


def _too_busy(keys: Sequence[str]) -> Conflict:
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return Conflict(f"{shown} kept changing under concurrent writers ({ATTEMPTS} attempts); nothing was written",
                    hint="try again")


def _missing_namespaces(missing: Sequence[str], users: Mapping[str, Sequence[str]]) -> NotFound:
    parts = []
    for ns in missing:
        who = users.get(ns, [])
        shown = ", ".join(who[:3]) + (f" and {len(who) - 3} more" if len(who) > 3 else "")
        parts.append(f'namespaces "{ns}" not found (needed by {shown})')
    return NotFound(
        "; ".join(parts) + "; nothing was applied",
        hint="create the namespace first (apiVersion: v1, kind: Namespace) or include it in the same apply",
    )


def _refuse_duplicates(prepared: Sequence[tuple[type[Resource], str, dict[str, Any]]]) -> None:
    seen: dict[str, int] = {}
    for i, (cls, key, value) in enumerate(prepared):
        if key in seen:
            meta = value["metadata"]
            what = f"{cls.KIND} {meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
            raise PodnetError(f"{what} appears twice (objects {seen[key] + 1} and {i + 1}); nothing was applied",
                              hint="keep one definition of each object")
        seen[key] = i


# -- graceful deletion -----------------------------------------------------------------------
def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _refuse_terminating(ns_record: Record, cls: type[Resource], name: str) -> None:
    if ns_record.value["metadata"].get("deletionTimestamp"):
        ns = ns_record.value["metadata"]["name"]
        raise PodnetError(f'{cls.resource_name()} "{name}" is forbidden: unable to create new content in namespace '
                          f"{ns} because it is being terminated",
                          hint="wait until the namespace is gone, then create it again")


def pod_grace_period(pod: dict[str, Any], requested: int | None) -> int:
    """The API server's grace period for deleting ``pod`` (its manifest form): the request's,
    else terminationGracePeriodSeconds (30); 0 for a pod no node runs or that has finished."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    grace = spec.get("terminationGracePeriodSeconds")
    return 30 if grace is None else int(grace)


class _DeletionPlan:
    """What one ``delete_many`` transaction does to each object it read: remove it, or mark
    it (a pod's deletionTimestamp, a namespace's Terminating phase), or leave it."""

    def __init__(self, now: datetime, grace: int | None) -> None:
        self.now, self.grace = now, grace
        self.seen: dict[str, Record] = {}
        self.ops: builtins.list[Put | Delete] = []
        self.marked: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()
        self.removed_namespaces: builtins.list[str] = []
        self._namespaces: builtins.list[tuple[str, Record]] = []
        self._losing: set[str] = set()

    def add(self, cls: type[Resource], record: Record, grace: int | None | Literal["request"] = "request") -> None:
        self.seen[record.key] = record
        value = record.value
        if cls is Namespace:
            if not value["metadata"].get("deletionTimestamp"):
                self._namespaces.append((value["metadata"]["name"], record))
            return
        if cls.KIND == "Pod":
            self._pod(record, self.grace if grace == "request" else grace)
        else:
            self._remove(record)

    def _remove(self, record: Record, pod: bool = False) -> None:
        self.ops.append(Delete(record.key))
        self.removed.add(record.key)
        if pod:  # its namespace may be Terminating and waiting for exactly this
            self._losing.add(record.value["metadata"].get("namespace") or "default")

    def _mark(self, record: Record, meta: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        value = {**record.value, **(extra or {}), "metadata": meta}
        self.ops.append(Put(record.key, value))
        self.marked[record.key] = value

    def _pod(self, record: Record, requested: int | None) -> None:
        meta = dict(record.value["metadata"])
        grace = pod_grace_period(record.value, requested)
        if meta.get("deletionTimestamp"):
            pending = meta.get("deletionGracePeriodSeconds")
            if not pending:
                self._remove(record, pod=True)
            elif requested is not None and grace < pending:  # only a shorter grace period is taken
                if grace == 0:
                    self._remove(record, pod=True)
                    return
                then = datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                meta["deletionTimestamp"] = _rfc3339(then - timedelta(seconds=pending - grace))
                meta["deletionGracePeriodSeconds"] = grace
                self._mark(record, meta)
            return
        if grace == 0:
            self._remove(record, pod=True)
            return
        meta["deletionTimestamp"] = _rfc3339(self.now + timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        meta["generation"] = meta.get("generation", 1) + 1
        self._mark(record, meta)

    def terminating_namespaces(self) -> builtins.list[tuple[str, Record]]:
        return list(self._namespaces)

    def namespaces_losing_pods(self) -> builtins.list[str]:
        marked = {name for name, _ in self._namespaces}
        return sorted(ns for ns in self._losing if ns not in marked)

    def settle_namespace(self, record: Record, pods: Sequence[Record]) -> None:
        """Remove the namespace if none of its pods outlives this transaction, else mark it."""
        for pod in pods:
            self.seen.setdefault(pod.key, pod)
        self.seen[record.key] = record
        name = record.value["metadata"]["name"]
        if all(p.key in self.removed for p in pods):
            self.ops = [op for op in self.ops if op.key != record.key]
            self.marked.pop(record.key, None)
            self.ops.append(Delete(record.key))
            self.removed.add(record.key)
            self.removed_namespaces.append(name)
        elif not record.value["metadata"].get("deletionTimestamp"):
            meta = {**record.value["metadata"], "deletionTimestamp": _rfc3339(self.now)}
            self._mark(record, meta, {"status": {**(record.value.get("status") or {}), "phase": "Terminating"},
                                      "spec": {"finalizers": ["kubernetes"]}})


def _result(plan: _DeletionPlan, key: str, record: Record, revision: int, cls: type[Resource]) -> Resource:
    if key in plan.marked:
        return _from_dict(cls, plan.marked[key], revision)
    if key in plan.removed:
        return decode(_at(record, revision), cls)
    return decode(record, cls)
