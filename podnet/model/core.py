"""Core v1 kinds: Namespace, Pod, Node, Service.

Fields podnet interprets are typed and validated; other real Kubernetes fields (seen in
``kubectl get -o yaml`` dumps) are accepted and kept as given, so such dumps round-trip.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource

Protocol = Literal["TCP", "UDP", "SCTP"]
Opaque = Any  # a valid Kubernetes field podnet keeps but does not interpret


class Namespace(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Namespace"
    PLURAL: ClassVar[str] = "namespaces"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ns",)
    NAMESPACED: ClassVar[bool] = False
    NAME_RULE: ClassVar[str] = "dns1123-label"

    api_version: Literal["v1"] = "v1"
    kind: Literal["Namespace"] = "Namespace"
    spec: dict[str, Opaque] | None = None
    status: dict[str, Opaque] | None = None


class ContainerPort(Model):
    container_port: int
    name: str | None = None
    protocol: Protocol = "TCP"
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")

    _check_port = v.field_check("container_port", v.check_port_number)
    _check_name = v.field_check("name", v.check_port_name)

    @model_validator(mode="after")
    def _host_port_range(self) -> "ContainerPort":
        if self.host_port is not None and self.host_port != 0:  # 0 means "no host port"
            try:
                v.check_port_number(self.host_port)
            except ValueError as exc:
                raise ValueError(f"hostPort: {exc}") from None
        return self


class Container(Model):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    ports: list[ContainerPort] | None = None
    env: list[dict[str, Opaque]] | None = None
    env_from: list[dict[str, Opaque]] | None = None
    working_dir: str | None = None
    image_pull_policy: str | None = None
    resources: dict[str, Opaque] | None = None
    volume_mounts: list[dict[str, Opaque]] | None = None
    volume_devices: list[dict[str, Opaque]] | None = None
    liveness_probe: dict[str, Opaque] | None = None
    readiness_probe: dict[str, Opaque] | None = None
    startup_probe: dict[str, Opaque] | None = None
    lifecycle: dict[str, Opaque] | None = None
    security_context: dict[str, Opaque] | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    restart_policy: str | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None
    resize_policy: list[dict[str, Opaque]] | None = None

    _check_name = v.field_check("name", v.check_dns1123_label)

    @model_validator(mode="after")
    def _unique_port_names(self) -> "Container":
        names = [p.name for p in self.ports or () if p.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"ports: duplicate port name {dupes[0]!r}")
        return self


class PodSpec(Model):
    containers: list[Container]
    init_containers: list[Container] | None = None
    node_name: str | None = None
    host_network: bool = False
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    node_selector: dict[str, str] | None = None
    # Kept as given; podnet does not act on them.
    volumes: list[dict[str, Opaque]] | None = None
    dns_policy: str | None = None
    dns_config: dict[str, Opaque] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    scheduler_name: str | None = None
    security_context: dict[str, Opaque] | None = None
    service_account: str | None = None
    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    tolerations: list[dict[str, Opaque]] | None = None
    affinity: dict[str, Opaque] | None = None
    priority: v.Int32 | None = None
    priority_class_name: str | None = None
    preemption_policy: str | None = None
    enable_service_links: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    share_process_namespace: bool | None = None
    image_pull_secrets: list[dict[str, Opaque]] | None = None
    topology_spread_constraints: list[dict[str, Opaque]] | None = None
    runtime_class_name: str | None = None
    overhead: dict[str, Opaque] | None = None
    readiness_gates: list[dict[str, Opaque]] | None = None
    host_aliases: list[dict[str, Opaque]] | None = None
    ephemeral_containers: list[dict[str, Opaque]] | None = None
    os: dict[str, Opaque] | None = None
    set_hostname_as_fqdn: bool | None = Field(default=None, alias="setHostnameAsFQDN")
    host_users: bool | None = None
    scheduling_gates: list[dict[str, Opaque]] | None = None
    resource_claims: list[dict[str, Opaque]] | None = None
    resources: dict[str, Opaque] | None = None

    @model_validator(mode="after")
    def _unique_container_names(self) -> "PodSpec":
        names = [c.name for c in self.containers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"containers: duplicate container name {dupes[0]!r}")
        if not self.containers:
            raise ValueError("containers: at least one container is required")
        seen = set(names)  # containers and initContainers share one set of names
        for index, init in enumerate(self.init_containers or ()):
            if init.name in seen:
                raise ValueError(f"initContainers[{index}]: name: duplicate container name {init.name!r}")
            seen.add(init.name)
        return self

    def named_ports(self) -> dict[tuple[str, str], int]:
        """(name, protocol) → containerPort, for resolving named ports in policies."""
        return {
            (p.name, p.protocol): p.container_port
            for c in self.containers
            for p in c.ports or ()
            if p.name
        }


class PodIP(Model):
    ip: str


class ContainerStatus(Model):
    name: str
    ready: bool = False
    restart_count: v.Int32 = 0
    image: str | None = None
    image_id: str | None = Field(default=None, alias="imageID")
    container_id: str | None = Field(default=None, alias="containerID")
    started: bool | None = None
    state: dict[str, Opaque] | None = None
    last_state: dict[str, Opaque] | None = None
    allocated_resources: dict[str, Opaque] | None = None
    allocated_resources_status: list[dict[str, Opaque]] | None = None
    resources: dict[str, Opaque] | None = None
    volume_mounts: list[dict[str, Opaque]] | None = None
    user: dict[str, Opaque] | None = None
    stop_signal: str | None = None


class PodStatus(Model):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(default=None, alias="podIPs")
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[PodIP] | None = Field(default=None, alias="hostIPs")
    message: str | None = None
    reason: str | None = None
    start_time: str | None = None
    conditions: list[dict[str, Opaque]] | None = None
    container_statuses: list[ContainerStatus] | None = None
    init_container_statuses: list[ContainerStatus] | None = None
    qos_class: str | None = None
    nominated_node_name: str | None = None
    ephemeral_container_statuses: list[dict[str, Opaque]] | None = None
    resize: str | None = None
    resource_claim_statuses: list[dict[str, Opaque]] | None = None
    observed_generation: int | None = None


class Pod(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Pod"
    PLURAL: ClassVar[str] = "pods"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("po",)

    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    spec: PodSpec
    status: PodStatus = Field(default_factory=PodStatus)

    @property
    def ip(self) -> str | None:
        return self.status.pod_ip


class NodeAddress(Model):
    type: str
    address: str


class NodeStatus(Model):
    addresses: list[NodeAddress] | None = None
    conditions: list[dict[str, Opaque]] | None = None
    capacity: dict[str, Opaque] | None = None
    allocatable: dict[str, Opaque] | None = None
    node_info: dict[str, Opaque] | None = None
    daemon_endpoints: dict[str, Opaque] | None = None
    images: list[dict[str, Opaque]] | None = None
    phase: str | None = None
    volumes_in_use: list[str] | None = None
    volumes_attached: list[dict[str, Opaque]] | None = None
    config: dict[str, Opaque] | None = None
    runtime_handlers: list[dict[str, Opaque]] | None = None
    features: dict[str, Opaque] | None = None


class NodeSpec(Model):
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    pod_cidrs: list[str] | None = Field(default=None, alias="podCIDRs")
    unschedulable: bool | None = None
    taints: list[dict[str, Opaque]] | None = None
    provider_id: str | None = Field(default=None, alias="providerID")
    config_source: dict[str, Opaque] | None = None
    external_id: str | None = Field(default=None, alias="externalID")


class Node(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "nodes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("no",)
    NAMESPACED: ClassVar[bool] = False

    api_version: Literal["v1"] = "v1"
    kind: Literal["Node"] = "Node"
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)

    @property
    def internal_ip(self) -> str | None:
        for addr in self.status.addresses or ():
            if addr.type == "InternalIP":
                return addr.address
        return None


class ServicePort(Model):
    port: int
    name: str | None = None
    protocol: Protocol = "TCP"
    target_port: int | str | None = None
    node_port: int | None = None
    app_protocol: str | None = None

    _check_port = v.field_check("port", v.check_port_number)
    _check_target = v.field_check("target_port", v.check_target_port)
    _check_name = v.field_check("name", v.check_dns1123_label)

    @model_validator(mode="after")
    def _node_port_range(self) -> "ServicePort":
        if self.node_port is not None and not 30000 <= self.node_port <= 32767:
            raise ValueError(f"nodePort: {self.node_port} is outside the range 30000-32767")
        return self


class ServiceSpec(Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = None
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    session_affinity: Literal["None", "ClientIP"] | None = None
    session_affinity_config: dict[str, Opaque] | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = None
    load_balancer_class: str | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    health_check_node_port: v.Int32 | None = None
    publish_not_ready_addresses: bool | None = None
    traffic_distribution: str | None = None

    _check_selector = v.field_check("selector", v.check_labels)

    @model_validator(mode="after")
    def _type_rules(self) -> "ServiceSpec":
        if self.type == "ExternalName":
            if not self.external_name:
                raise ValueError("externalName: required when type is ExternalName")
            try:
                v.check_dns1123_subdomain(self.external_name.rstrip("."))
            except ValueError as exc:
                raise ValueError(f"externalName: must be a lower-case DNS name: {exc}") from None
        elif not self.ports and not (self.type == "ClusterIP" and self.cluster_ip == "None"):
            raise ValueError(f"ports: at least one port is required for type {self.type} (only a headless "
                             "Service, clusterIP: None, may have none)")
        names = [p.name for p in self.ports or ()]
        if len(self.ports or ()) > 1 and (None in names or len(set(names)) != len(names)):
            raise ValueError("ports: each port must have a unique name when there is more than one")
        seen: dict[tuple[int, str], int] = {}
        node_ports: dict[tuple[int, str], int] = {}
        for index, port in enumerate(self.ports or ()):
            first = seen.setdefault((port.port, port.protocol), index)
            if first != index:
                raise ValueError(f"ports[{index}]: duplicate port {port.port}/{port.protocol} "
                                 f"(ports[{first}] has it already): each port and protocol may be listed once")
            if not port.node_port:
                continue
            if self.type == "ClusterIP":
                raise ValueError(f"ports[{index}]: nodePort: may not be set when type is ClusterIP")
            first = node_ports.setdefault((port.node_port, port.protocol), index)
            if first != index:
                raise ValueError(f"ports[{index}]: nodePort: duplicate nodePort {port.node_port}/{port.protocol} "
                                 f"(ports[{first}] has it already)")
        if self.cluster_ip not in (None, "", "None"):
            try:
                v.check_ip(self.cluster_ip)
            except ValueError as exc:
                raise ValueError(f"clusterIP: {exc}") from None
        return self


class Service(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Service"
    PLURAL: ClassVar[str] = "services"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("svc",)
    NAME_RULE: ClassVar[str] = "dns1035-label"

    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    spec: ServiceSpec
    status: dict[str, Opaque] | None = None
