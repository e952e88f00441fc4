"""The Service controllers of the control plane: EndpointSlices and Endpoints from Services and
Pods, an address for LoadBalancer Services still pending (a pool appeared or freed up), and the
address of each Ingress the ingress controller serves (its status, which the controller in the
pods cannot write: the API server is read-only).
Both plans are pure (``podnet.services``); this shell writes them to the store."""
from __future__ import annotations

import logging
from typing import Any

from podnet.errors import Conflict, NotFound, PodnetError
from podnet.ingress.status import stale_statuses
from podnet.model import Endpoints, EndpointSlice, Ingress, IngressClass, IPPool, Node, Pod, Service
from podnet.services import endpointslices
from podnet.services.allocation import pending_load_balancers

log = logging.getLogger("podnet.controllers")


class ServiceController:
    """A reconciler for ``Agent``: one pass per snapshot, writing only what differs."""

    def __init__(self, store: Any) -> None:
        self.store = store

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
