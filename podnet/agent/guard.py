"""Node processes change the network namespace they run in: routes, links, nft tables, BGP.

They refuse to start in a namespace podnet did not create (the machine's own, or anyone
else's) unless told that the machine itself is the node (``--host-network``, the distributed
mode), so a command typed in the wrong shell cannot rewire the host.
"""
from __future__ import annotations

from podnet.errors import PodnetError
from podnet.kernel import netns


def require_node_namespace(process: str, changes: str, target: str | None = None,
                           host_network: bool = False) -> None:
    """Raise unless ``target`` (or, when None, the current namespace) is podnet's own."""
    if host_network:
        return
    if target is not None:
        if netns.owned(target):
            return
        where = f"network namespace {target!r} was not created by podnet"
    elif netns.current_owned() is not None:
        return
    else:
        where = "it is not in a network namespace podnet created (this machine's own, or someone else's)"
    raise PodnetError(f"the {process} will not start: {where}, and it would change its {changes}",
                      hint="run it inside the node's namespace (`podnet up` does, with nsenter --net), "
                           "or pass --host-network on a machine that is itself the node")
