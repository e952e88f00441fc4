"""Where the engine's cluster comes from: manifests on disk (``--from-files``, including a
``kubectl get ns,pods,netpol -A -o yaml`` dump) or a snapshot of the store.

Reading files is the engine's own input, like a test fixture; the store is read by the caller,
which hands over its snapshot, so the planners stay free of it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from podnet.errors import Location
from podnet.manifest import Loaded, load_paths
from podnet.model import (
    Deployment,
    EndpointSlice,
    GlobalNetworkSet,
    Ingress,
    Namespace,
    NetworkSet,
    Node,
    Pod,
    Resource,
    Service,
    Tier,
)

from .cluster import POLICY_CLASSES, ClusterState, PolicyObject, ref_of
from .ir import Locator
from .lint import Locate

R = TypeVar("R", bound=Resource)


class Objects(Protocol):
    """A store snapshot, as far as the engine reads one."""

    def of(self, cls: type[Resource]) -> Sequence[Resource]: ...


def no_location(ref: str, path: tuple[str | int, ...]) -> str | None:
    """The ``Locate`` of a cluster that was not read from files."""
    return None


def cluster_from_snapshot(snapshot: Objects, ipblock_matches_pods: bool = True) -> ClusterState:
    """The engine's view of a store snapshot (namespaces, pods, nodes, every policy kind, tiers,
    network sets, Services and EndpointSlices)."""
    return cluster_from_objects(snapshot_objects(snapshot), ipblock_matches_pods)


def cluster_from_objects(objs: Sequence[Resource], ipblock_matches_pods: bool = True,
                         sources: dict[str, str] | None = None,
                         locators: dict[str, Locator] | None = None) -> ClusterState:
    """The cluster these objects describe. A later object of the same kind and name replaces
    an earlier one, as ``apply`` would; namespaces that are referenced but not declared exist."""
    latest: dict[tuple[type[Resource], str | None, str], Resource] = {}
    for obj in objs:
        latest[(type(obj), obj.metadata.namespace if obj.NAMESPACED else None, obj.metadata.name)] = obj
    objs = list(latest.values())
    pods = _instances(objs, Pod)
    existing = {(p.metadata.namespace or "default", frozenset(p.metadata.labels.items())) for p in pods}
    for dep in _instances(objs, Deployment):
        pods += _deployment_pods(dep, existing)
    namespaces = _instances(objs, Namespace)
    policies: list[PolicyObject] = [o for o in objs if isinstance(o, POLICY_CLASSES)]
    sets: list[NetworkSet | GlobalNetworkSet] = [o for o in objs if isinstance(o, (NetworkSet, GlobalNetworkSet))]
    referenced = {p.metadata.namespace or "default" for p in policies if p.NAMESPACED} | {
        s.metadata.namespace or "default" for s in sets if s.NAMESPACED} | {"default"}
    known = {n.metadata.name for n in namespaces}
    namespaces += [Namespace.model_validate({"metadata": {"name": n}}) for n in sorted(referenced - known)]
    return ClusterState.build(namespaces, pods, policies, ipblock_matches_pods=ipblock_matches_pods,
                              sources=sources, locators=locators, tiers=_instances(objs, Tier),
                              network_sets=sets, nodes=_instances(objs, Node), services=_instances(objs, Service),
                              slices=_instances(objs, EndpointSlice), ingresses=_instances(objs, Ingress))


def cluster_from_files(paths: Sequence[str], ipblock_matches_pods: bool = True,
                       base: Sequence[Resource] = ()) -> tuple[ClusterState, Locate]:
    """The cluster the manifests under ``paths`` describe, and where each policy field is written
    (``locate(policy_ref, field_path) -> file:line``, for lint). With ``base`` (a live cluster's
    objects) the files are applied over it, as ``kubectl diff -f`` would. Raises
    ``ValidationError`` with every problem of every file."""
    loaded = load_paths(list(paths), recursive=True)
    sources: dict[str, str] = {}
    locators: dict[str, Locator] = {}
    for item in loaded:
        if isinstance(item.obj, POLICY_CLASSES):
            ref = ref_of(item.obj)
            sources[ref] = _loc(item.source)
            locators[ref] = _locator(item)
        elif isinstance(item.obj, Tier):
            sources[item.obj.metadata.name] = _loc(item.source)
    state = cluster_from_objects([*base, *(item.obj for item in loaded)], ipblock_matches_pods, sources, locators)

    def locate(ref: str, path: tuple[str | int, ...]) -> str | None:
        fn = locators.get(ref)
        return fn(path) if fn else None

    return state, locate


def snapshot_objects(snapshot: Objects) -> list[Resource]:
    """Everything in a store snapshot the engine reads."""
    return list(_every(snapshot))


#: A Deployment stands for at most this many replicas: more identical pods without IPs would say
#: nothing new (and `replicas: 1000000` would be a million pods).
STAND_INS = 10


def _deployment_pods(dep: Deployment, existing: set[tuple[str, frozenset[tuple[str, str]]]]) -> list[Pod]:
    """A Deployment without pods in the files stands for its replicas (no IPs yet), at most
    ``STAND_INS`` of them."""
    ns = dep.metadata.namespace or "default"
    labels = dict(dep.spec.template.metadata.labels)
    if (ns, frozenset(labels.items())) in existing:
        return []
    return [
        Pod.model_validate({
            "metadata": {"name": f"{dep.metadata.name}-{i}", "namespace": ns, "labels": labels},
            "spec": dep.spec.template.spec.to_dict(),
        })
        for i in range(min(max(dep.spec.replicas, 1), STAND_INS))
    ]


def _loc(location: Location) -> str:
    return f"{location.file}:{location.line}"


def _locator(item: Loaded) -> Locator:
    return lambda path: _loc(item.locate(path))


def _instances(objs: Iterable[Resource], cls: type[R]) -> list[R]:
    return [o for o in objs if isinstance(o, cls)]


def _every(snapshot: Objects) -> Iterable[Resource]:
    for cls in (Namespace, Pod, Node, Tier, NetworkSet, GlobalNetworkSet, Service, EndpointSlice, *POLICY_CLASSES):
        yield from _instances(snapshot.of(cls), cls)


__all__ = ["Objects", "cluster_from_files", "cluster_from_objects", "cluster_from_snapshot", "no_location",
           "snapshot_objects"]
