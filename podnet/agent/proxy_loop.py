"""One pass of a node's service proxy (``podnet proxy``, run inside the node's namespace): the
watch-fed view → ``ProxyReconciler`` → the node's ``ip podnet-svc`` table. ``agent/node.py``
runs it on the loop runner, woken by Service, EndpointSlice, Node and IPPool writes.

Stopping the proxy (SIGTERM, or SIGKILL) leaves the table in the kernel: Services keep
answering from the endpoints they had (fail static) until a proxy takes over and reconciles
from what is there, without a flush.
"""
from __future__ import annotations

from podnet.model import EndpointSlice, IPPool, Node, Pod, Service
from podnet.services.allocation import CONFIG_KEY
from podnet.store.resources import REGISTRY

from .proxy import ProxyReconciler, ProxyView
from .runner import PassFailed

LOOP = "proxy"
#: what the proxy reads (pods for their host ports): a write elsewhere (policies, IPAM) does not wake it
PROXY_KEYS = (*(f"{REGISTRY}{cls.PLURAL}/" for cls in (Service, EndpointSlice, Node, IPPool, Pod)), CONFIG_KEY)


class ProxyPass:
    """Bring the view up to date and program it. A failed sync raises (the reconciler has
    logged it and the table stays as it was), and the runner retries it."""

    def __init__(self, reconciler: ProxyReconciler, view: ProxyView) -> None:
        self.reconciler = reconciler
        self.view = view
        self._revision = -1

    def __call__(self) -> int:
        plan, ctx, dirty = self.view.refresh()
        revision: int = self.view.view.revision
        # idle: nothing the service table reads moved (a pod write moves only the host ports,
        # which the reconciler compares itself)
        idle = dirty is not None and not dirty and (revision == self._revision or not self.view.context_changed)
        status = self.reconciler.reconcile(plan, ctx, dirty, revision, idle=idle, host_ports=self.view.host_ports)
        if status.error is not None:
            raise PassFailed(status.error)
        self._revision = revision
        return revision
