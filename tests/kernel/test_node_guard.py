"""Node processes refuse to program a namespace podnet did not create."""
import pytest

from podnet.agent.guard import require_node_namespace
from podnet.errors import PodnetError
from podnet.kernel import netns


def test_refuses_the_machines_own_namespace_unless_told_it_is_the_node() -> None:
    with pytest.raises(PodnetError, match="not in a network namespace podnet created") as err:
        require_node_namespace("policy loop", "nftables rules")
    assert "--host-network" in str(err.value)
    require_node_namespace("policy loop", "nftables rules", host_network=True)


def test_accepts_podnet_namespaces_and_refuses_unknown_names(prefix: str) -> None:
    name = f"{prefix}guard"
    with pytest.raises(PodnetError, match="was not created by podnet"):
        require_node_namespace("policy loop", "nftables rules", target=name)
    netns.create(name)
    try:
        require_node_namespace("policy loop", "nftables rules", target=name)
        with netns.enter(name):
            require_node_namespace("routing loop", "routes")
    finally:
        netns.remove(name)
    assert not netns.exists(name)
