"""Keeps the eBPF fast path attached to this node's devices as pods come and go.

Opt-in (``podnet agent --fast-path``, ``podnet up --fast-path``): with it, established TCP
between pods skips netfilter's forward path on this node (``kernel/fastpath.py``). Each agent
pass lists the node's links, attaches to the new ones (pod veths, the underlay device, the
VXLAN device) and forgets those gone; a device a pod took with it needs no detaching. On stop,
every attachment is removed.
"""
from __future__ import annotations

import logging
from typing import Any

from podnet.errors import PodnetError
from podnet.kernel.fastpath import FastPath
from podnet.kernel.netns import current_owned

log = logging.getLogger(__name__)


class FastPathDevices:
    """An agent reconciler: the fast path on every link of the node namespace but ``lo``."""

    def __init__(self, ns: str | None = None, *, host_network: bool = False) -> None:
        if host_network:
            raise PodnetError("the fast path is for nodes in their own network namespace, not --host-network",
                              hint="drop --fast-path: it would set conntrack sysctls and tc programs on this "
                                   "machine's own devices")
        where = ns or current_owned()
        if where is None:
            raise PodnetError("the fast path needs the node's network namespace (podnet created)",
                              hint="run the agent inside the node's namespace, as `podnet up` does")
        self.fp = FastPath(where)
        self.fp.enable_liberal_tracking()

    def _links(self) -> set[str]:
        from podnet.kernel.netns import ipr_in

        with ipr_in(self.fp.ns) as ipr:
            return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()} - {"lo"}

    def reconcile(self, snapshot: Any = None) -> dict[str, int]:
        """Attach to the links that appeared; forget those gone. Returns the counts."""
        links = self._links()
        gone = set(self.fp.attached) - links
        for name in gone:
            self.fp.forget(name)
        added = 0
        for name in sorted(links - set(self.fp.attached)):
            try:
                self.fp.attach(name)
                added += 1
            except PodnetError as e:  # the link went away in between: the next pass sees it
                log.warning("fast path not attached to %s: %s", name, e)
        return {"attached": len(self.fp.attached), "added": added, "gone": len(gone)}

    def close(self) -> None:
        """Detach from every device: nothing of the fast path stays on the node."""
        self.fp.close()
