"""A node's own objects in the store, as calico-node registers itself: the v1 Node with its
address, the Calico Node with its BGP address, and the default IP pool the first node creates.
``podnet up`` registers its lab nodes with these, ``podnet node install`` a real host."""
from __future__ import annotations

from podnet.model import CalicoNode, IPPool, Node, Resource


def node_objects(name: str, address: str, prefixlen: int, control_plane: bool = False) -> list[Resource]:
    """The v1 Node (status addresses, kubelet's labels) and the Calico Node of one node."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""  # kubeadm's label: ROLES control-plane
    return [
        Node.model_validate({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "InternalIP", "address": address},
                                     {"type": "Hostname", "address": name}]}}),
        CalicoNode.model_validate({
            "apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"bgp": {"ipv4Address": f"{address}/{prefixlen}"}}}),
    ]


def default_pool(cidr: str, block_size: int, vxlan_mode: str = "Never", nat: bool = True) -> IPPool:
    return IPPool.model_validate({
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": cidr, "blockSize": block_size, "ipipMode": "Never", "vxlanMode": vxlan_mode,
                 "natOutgoing": nat, "nodeSelector": "all()"}})


def block_size(backend: str) -> int:
    """Flannel gives each node a /24; Calico's blocks are /26."""
    return 24 if backend in ("host-gw", "vxlan") else 26
