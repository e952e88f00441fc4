"""Frozen resource values and the registry of kinds podnet knows.

These modules do not use ``from __future__ import annotations``: pydantic would then compile
and evaluate every field's annotation string when each class is made (about a third of the
import, paid by every process that reads the store). A name used before its class is defined
is written in quotes instead."""
from .admin_policy import AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy
from .apps import Deployment, ReplicaSet
from .base import Model, ObjectMeta, Resource
from .calico import BGPConfiguration, BGPPeer, CalicoNode, IPPool
from .calico_policy import CalicoNetworkPolicy, GlobalNetworkPolicy, GlobalNetworkSet, NetworkSet, Tier
from .core import Endpoints, Namespace, Node, Pod, Service
from .discovery import EndpointSlice
from .events import Event
from .ingress import Ingress, IngressClass
from .networking import NetworkPolicy
from .registry import KINDS, POLICY_KINDS, kind_for, lookup_resource

__all__ = [
    "BGPConfiguration", "BGPPeer", "CalicoNode", "Deployment", "Endpoints", "EndpointSlice", "Event", "IPPool",
    "KINDS", "Model", "Namespace", "NetworkPolicy", "Node", "ObjectMeta", "Pod", "ReplicaSet", "Resource",
    "Service",
    "kind_for", "lookup_resource",
    "AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "CalicoNetworkPolicy", "ClusterNetworkPolicy",
    "GlobalNetworkPolicy", "GlobalNetworkSet", "NetworkSet", "POLICY_KINDS", "Tier", "Ingress", "IngressClass",
]
