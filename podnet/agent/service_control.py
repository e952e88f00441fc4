"""The Service controllers of the control plane: EndpointSlices and Endpoints from Services and
Pods, an address for LoadBalancer Services still pending (a pool appeared or freed up), and the
address of each Ingress the ingress controller serves (its status, which the controller in the
pods cannot write: the API server is read-only), and the Warning Events of what an Ingress asks
that is not served as written (bad or unsupported annotations, paths nginx cannot take), which
that controller cannot write either.
Both plans are pure (``podnet.services``); this shell writes them to the store."""
from __future__ import annotations

import logging
from typing import Any

from podnet.errors import Conflict, NotFound, PodnetError
from podnet.ingress.plan import plan as ingress_plan
from podnet.ingress.status import stale_statuses
from podnet.model import Endpoints, EndpointSlice, Ingress, IngressClass, IPPool, Node, Pod, Service
from podnet.services import endpointslices
from podnet.services.allocation import pending_load_balancers

from .events import EventRecorder

log = logging.getLogger("podnet.controllers")


class ServiceController:
    """A reconciler for ``Agent``: one pass per snapshot, writing only what differs."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.ingress_events = EventRecorder(store, "nginx-ingress-controller")
        self._warned: set[tuple[str, ...]] = set()  # Ingress versions whose warnings are written

    def reconcile(self, snap: Any) -> None:
        services = list(snap.of(Service))
        plan = endpointslices.plan(services, list(snap.of(Pod)), list(snap.of(Node)),
                                   list(snap.of(EndpointSlice)), list(snap.of(Endpoints)))
        if plan.apply:
            try:
                self.store.apply(list(plan.apply))
            except NotFound:  # the namespace went away meanwhile: the next pass sees it gone
                pass
        if plan.delete:
            self.store.delete_many([(type(o), o.name, o.namespace) for o in plan.delete])
        for svc in pending_load_balancers(services, list(snap.of(IPPool)), snap.raw):
            try:
                self.store.update(svc, check_version=True)  # the admission assigns the address
            except (Conflict, NotFound):
                pass  # changed or deleted meanwhile: the next pass decides again
            except PodnetError as exc:
                log.warning("LoadBalancer %s: %s", svc.ref, exc)
        for ing in stale_statuses(snap.of(Ingress), snap.of(IngressClass), services, snap.of(Pod), snap.of(Node)):
            try:
                self.store.update_status(ing)  # ingress-nginx's status sync, done here: the API is read-only
            except (Conflict, NotFound):
                pass
        self._ingress_warnings(list(snap.of(Ingress)), list(snap.of(IngressClass)))

    def _ingress_warnings(self, ingresses: list[Ingress], classes: list[IngressClass]) -> None:
        """Once per Ingress version (its spec and annotations: not its status, which this
        controller writes), as ingress-nginx reports a version it syncs."""
        fresh = {f"{i.namespace or 'default'}/{i.name}": i for i in ingresses if _version(i) not in self._warned}
        if not fresh:
            return
        for warning in ingress_plan(ingresses, classes, (), ()).warnings:
            ing = fresh.get(warning.ingress)
            if ing is not None:
                self.ingress_events.record(ing, "Warning", warning.reason, warning.message)
        self._warned = {_version(i) for i in ingresses}


def _version(ing: Ingress) -> tuple[str, ...]:
    return (ing.metadata.uid or ing.name, str(ing.metadata.generation), repr(sorted(ing.metadata.annotations.items())))
