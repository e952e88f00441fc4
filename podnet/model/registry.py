"""Which kinds exist, and how users name them (kind, plural, short names, plural.group)."""

from .admin_policy import AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy
from .apps import Deployment, ReplicaSet
from .base import Resource
from .calico import BGPConfiguration, BGPPeer, CalicoNode, IPPool
from .calico_policy import CalicoNetworkPolicy, GlobalNetworkPolicy, GlobalNetworkSet, NetworkSet, Tier
from .core import Endpoints, Namespace, Node, Pod, Service
from .discovery import EndpointSlice
from .events import Event
from .ingress import Ingress, IngressClass
from .networking import NetworkPolicy
from .rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from .secrets import Secret, ServiceAccount

#: the tiered policy kinds (Calico's and the network-policy-api's), in the order `get` lists them
POLICY_KINDS: tuple[type[Resource], ...] = (
    Tier, CalicoNetworkPolicy, GlobalNetworkPolicy, NetworkSet, GlobalNetworkSet,
    AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy,
)
KINDS: tuple[type[Resource], ...] = (
    Namespace, Pod, Node, Service, Endpoints, EndpointSlice, Deployment, NetworkPolicy,
    IPPool, BGPConfiguration, BGPPeer, CalicoNode, ReplicaSet, Event,
    Secret, ServiceAccount, Role, ClusterRole, RoleBinding, ClusterRoleBinding, Ingress, IngressClass,
) + POLICY_KINDS

_BY_API_KIND: dict[tuple[str, str], type[Resource]] = {(k.API_VERSION, k.KIND): k for k in KINDS}


def kind_for(api_version: str, kind: str) -> type[Resource] | None:
    """The class for a manifest's apiVersion and kind, or None."""
    return _BY_API_KIND.get((api_version, kind))


def _names(cls: type[Resource]) -> set[str]:
    names = {cls.KIND.lower(), cls.PLURAL, cls.resource_name(), *cls.SHORT_NAMES}
    names.add(f"{cls.KIND.lower()}.{cls.group()}" if cls.group() else cls.KIND.lower())
    return names


_BY_NAME: dict[str, type[Resource]] = {}
for _cls in KINDS:  # first kind wins a shared name: plain "node" is the v1 Node, as in kubectl
    for _name in _names(_cls):
        _BY_NAME.setdefault(_name, _cls)


def lookup_resource(name: str) -> type[Resource] | None:
    """Resolve what a user typed after ``get``/``delete``: ``po``, ``pods``, ``netpol``, ``ippool``…

    Plain ``node``/``nodes`` mean the v1 Node, as in kubectl; Calico's is ``caliconode``.
    """
    return _BY_NAME.get(name.lower())


def all_resource_names() -> list[str]:
    """Every name ``lookup_resource`` knows, for completion and "did you mean"."""
    return sorted(_BY_NAME)
