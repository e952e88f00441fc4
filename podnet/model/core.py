"""Core v1 kinds: Namespace, Pod, Node, Service.

Fields podnet interprets are typed and validated; other real Kubernetes fields (seen in
``kubectl get -o yaml`` dumps) are accepted and kept as given, so such dumps round-trip.
"""

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, Resource
from .probes import EnvVar, Lifecycle, Probe

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
    env: list[EnvVar] | None = None
    env_from: list[dict[str, Opaque]] | None = None
    working_dir: str | None = None
    image_pull_policy: str | None = None
    resources: dict[str, Opaque] | None = None
    volume_mounts: list[dict[str, Opaque]] | None = None
    volume_devices: list[dict[str, Opaque]] | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
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
        for field, probe in (("livenessProbe", self.liveness_probe), ("startupProbe", self.startup_probe)):
            if probe is not None and probe.successes != 1:
                raise ValueError(f"{field}: successThreshold: must be 1")
        if self.readiness_probe is not None and self.readiness_probe.termination_grace_period_seconds is not None:
            raise ValueError("readinessProbe: terminationGracePeriodSeconds: must not be set for readinessProbes")
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
        if self.termination_grace_period_seconds is not None and self.termination_grace_period_seconds < 0:
            raise ValueError("terminationGracePeriodSeconds: must be greater than or equal to 0")
        seen = set(names)  # containers and initContainers share one set of names
        for index, init in enumerate(self.init_containers or ()):
            if init.name in seen:
                raise ValueError(f"initContainers[{index}]: name: duplicate container name {init.name!r}")
            seen.add(init.name)
        return self

    @property
    def grace_period(self) -> int:
        """terminationGracePeriodSeconds with the API server's default."""
        return 30 if self.termination_grace_period_seconds is None else self.termination_grace_period_seconds

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

    def condition(self, kind: str) -> str | None:
        """The status ("True", "False", "Unknown") of condition ``kind``, None if absent."""
        for entry in self.status.conditions or ():
            if entry.get("type") == kind:
                return str(entry.get("status"))
        return None

    @property
    def ready(self) -> bool:
        """The Ready condition is True: what endpoints and Deployments count."""
        return self.condition("Ready") == "True"


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


ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
IPFamily = Literal["IPv4", "IPv6"]
NODE_PORT_RANGE = (30000, 32767)
#: the API server's bounds on sessionAffinityConfig.clientIP.timeoutSeconds (default 3 hours)
AFFINITY_TIMEOUT_MAX = 86400
AFFINITY_TIMEOUT_DEFAULT = 10800


def check_node_port(value: int) -> None:
    """A nodePort (or healthCheckNodePort): inside the node port range, as the allocator checks it."""
    low, high = NODE_PORT_RANGE
    if not low <= value <= high:
        raise ValueError(f"{value}: provided port is not in the valid range. The range of valid ports is {low}-{high}")


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
    _check_app_protocol = v.field_check("app_protocol", v.check_qualified_name)

    @model_validator(mode="after")
    def _node_port_range(self) -> "ServicePort":
        if self.node_port:  # 0 means "allocate one"
            try:
                check_node_port(self.node_port)
            except ValueError as exc:
                raise ValueError(f"nodePort: {exc}") from None
        return self

    @property
    def effective_target_port(self) -> int | str:
        """targetPort as the API server defaults it: the port itself when unset, 0 or ""."""
        return self.target_port if self.target_port not in (None, 0, "") else self.port


class ClientIPConfig(Model):
    timeout_seconds: int | None = None

    @model_validator(mode="after")
    def _timeout_range(self) -> "ClientIPConfig":
        if self.timeout_seconds is not None and not 0 < self.timeout_seconds <= AFFINITY_TIMEOUT_MAX:
            raise ValueError(f"timeoutSeconds: {self.timeout_seconds} must be greater than 0 and less than or "
                             f"equal to {AFFINITY_TIMEOUT_MAX}")
        return self


class SessionAffinityConfig(Model):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


class ServiceSpec(Model):
    type: ServiceType = "ClusterIP"
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = None
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    session_affinity: Literal["None", "ClientIP"] | None = None
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = None
    load_balancer_class: str | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    ip_families: list[IPFamily] | None = None
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    allocate_load_balancer_node_ports: bool | None = None
    health_check_node_port: v.Int32 | None = None
    publish_not_ready_addresses: bool | None = None
    traffic_distribution: str | None = None

    _check_selector = v.field_check("selector", v.check_labels)
    _check_class = v.field_check("load_balancer_class", v.check_qualified_name)

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @property
    def externally_accessible(self) -> bool:
        """Where externalTrafficPolicy means something: NodePort, LoadBalancer, or externalIPs."""
        return self.type in ("NodePort", "LoadBalancer") or (self.type == "ClusterIP" and bool(self.external_ips))

    @model_validator(mode="after")
    def _type_rules(self) -> "ServiceSpec":
        """The API server's ValidateService rules that need no cluster state (located per field)."""
        if self.type == "ExternalName":
            _check_external_name(self)
        elif not self.ports and not self.headless:
            raise ValueError(f"ports: at least one port is required for type {self.type} (only a headless "
                             "Service, clusterIP: None, may have none)")
        elif self.headless and self.type in ("NodePort", "LoadBalancer"):
            raise ValueError("clusterIP: may not be set to 'None' for LoadBalancer or NodePort services")
        _check_ports(self)
        _check_cluster_ips(self)
        _check_traffic_fields(self)
        _check_load_balancer_fields(self)
        _check_ip_families(self)
        for index, ip in enumerate(self.external_ips or ()):
            try:
                v.check_ip(ip)
            except ValueError as exc:
                raise ValueError(f"externalIPs[{index}]: {exc}") from None
        return self


def _check_external_name(spec: ServiceSpec) -> None:
    if not spec.external_name:
        raise ValueError("externalName: required when type is ExternalName")
    try:
        v.check_dns1123_subdomain(spec.external_name.removesuffix("."))
    except ValueError as exc:
        raise ValueError(f"externalName: must be a lower-case DNS name: {exc}") from None
    for alias, value in (("clusterIP", spec.cluster_ip), ("clusterIPs", spec.cluster_ips),
                         ("ipFamilies", spec.ip_families), ("ipFamilyPolicy", spec.ip_family_policy)):
        if value:
            raise ValueError(f"{alias}: may not be set for ExternalName services")


def _check_ports(spec: ServiceSpec) -> None:
    ports = spec.ports or []
    names: dict[str, int] = {}
    seen: dict[tuple[int, str], int] = {}
    node_ports: dict[tuple[int, str], int] = {}
    for index, port in enumerate(ports):
        if len(ports) > 1:
            if not port.name:
                raise ValueError(f"ports[{index}]: name: required when the Service has more than one port")
            first = names.setdefault(port.name, index)
            if first != index:
                raise ValueError(f"ports[{index}]: name: duplicate port name {port.name!r} (ports[{first}] has it)")
        first = seen.setdefault((port.port, port.protocol), index)
        if first != index:
            raise ValueError(f"ports[{index}]: duplicate port {port.port}/{port.protocol} "
                             f"(ports[{first}] has it already): each port and protocol may be listed once")
        if not port.node_port:
            continue
        if spec.type not in ("NodePort", "LoadBalancer"):
            raise ValueError(f"ports[{index}]: nodePort: may not be set when type is {spec.type}")
        first = node_ports.setdefault((port.node_port, port.protocol), index)
        if first != index:
            raise ValueError(f"ports[{index}]: nodePort: duplicate nodePort {port.node_port}/{port.protocol} "
                             f"(ports[{first}] has it already)")


def _check_cluster_ips(spec: ServiceSpec) -> None:
    if spec.cluster_ip not in (None, "", "None"):
        try:
            v.check_ip(spec.cluster_ip)
        except ValueError as exc:
            raise ValueError(f"clusterIP: {exc}") from None
    ips = spec.cluster_ips or []
    if len(ips) > 2:
        raise ValueError("clusterIPs: may hold at most two addresses (one per IP family)")
    for index, ip in enumerate(ips):
        if ip == "None" and index == 0:
            continue
        try:
            v.check_ip(ip)
        except ValueError as exc:
            raise ValueError(f"clusterIPs[{index}]: {exc}") from None
    if ips and spec.cluster_ip and ips[0] != spec.cluster_ip:
        raise ValueError(f"clusterIPs[0]: {ips[0]!r} must match clusterIP {spec.cluster_ip!r}")
    if ips and ips[0] == "None" and len(ips) > 1:
        raise ValueError("clusterIPs: a headless Service (None) may list no other address")


def _check_traffic_fields(spec: ServiceSpec) -> None:
    if spec.external_traffic_policy and not spec.externally_accessible:
        raise ValueError("externalTrafficPolicy: may only be set for externally-accessible services "
                         "(type NodePort or LoadBalancer, or with externalIPs)")
    if spec.health_check_node_port:
        if spec.type != "LoadBalancer" or spec.external_traffic_policy != "Local":
            raise ValueError("healthCheckNodePort: may only be set when type is 'LoadBalancer' and "
                             "externalTrafficPolicy is 'Local'")
        try:
            check_node_port(spec.health_check_node_port)
        except ValueError as exc:
            raise ValueError(f"healthCheckNodePort: {exc}") from None
    if spec.session_affinity_config is not None and spec.session_affinity in (None, "None") \
            and spec.session_affinity_config.client_ip is not None:
        raise ValueError("sessionAffinityConfig: must not be set when sessionAffinity is None")


def _check_load_balancer_fields(spec: ServiceSpec) -> None:
    if spec.type != "LoadBalancer":
        for alias, value in (("loadBalancerClass", spec.load_balancer_class),
                             ("allocateLoadBalancerNodePorts", spec.allocate_load_balancer_node_ports),
                             ("loadBalancerSourceRanges", spec.load_balancer_source_ranges)):
            if value is not None:
                raise ValueError(f"{alias}: may only be used when type is 'LoadBalancer'")
    if spec.load_balancer_ip:
        try:
            v.check_ip(spec.load_balancer_ip)
        except ValueError as exc:
            raise ValueError(f"loadBalancerIP: {exc}") from None
    for index, cidr in enumerate(spec.load_balancer_source_ranges or ()):
        try:
            v.check_cidr(cidr)
        except ValueError as exc:
            raise ValueError(f"loadBalancerSourceRanges[{index}]: {exc}") from None


def _check_ip_families(spec: ServiceSpec) -> None:
    families = spec.ip_families or []
    if len(families) > 2 or len(set(families)) != len(families):
        raise ValueError("ipFamilies: at most one IPv4 and one IPv6 entry")
    if spec.ip_family_policy == "SingleStack" and len(families) > 1:
        raise ValueError("ipFamilies: only one family may be given when ipFamilyPolicy is SingleStack")


class LoadBalancerIngress(Model):
    ip: str | None = None
    hostname: str | None = None
    ip_mode: Literal["VIP", "Proxy"] | None = None
    ports: list[dict[str, Opaque]] | None = None


class LoadBalancerStatus(Model):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(Model):
    load_balancer: LoadBalancerStatus = Field(default_factory=LoadBalancerStatus)
    conditions: list[dict[str, Opaque]] | None = None


class Service(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Service"
    PLURAL: ClassVar[str] = "services"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("svc",)
    NAME_RULE: ClassVar[str] = "dns1035-label"

    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    spec: ServiceSpec
    status: ServiceStatus = Field(default_factory=ServiceStatus)

    @property
    def ingress_addresses(self) -> list[str]:
        """status.loadBalancer.ingress as addresses (ip, else hostname)."""
        return [i.ip or i.hostname or "" for i in self.status.load_balancer.ingress or () if i.ip or i.hostname]


class EndpointAddress(Model):
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: dict[str, Opaque] | None = None

    _check_ip = v.field_check("ip", v.check_ip)


class EndpointPort(Model):
    port: int
    name: str | None = None
    protocol: Protocol = "TCP"
    app_protocol: str | None = None

    _check_port = v.field_check("port", v.check_port_number)


class EndpointSubset(Model):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(Resource):
    """The legacy v1 Endpoints of a Service (same name), still read by many tools."""

    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Endpoints"
    PLURAL: ClassVar[str] = "endpoints"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ep",)

    api_version: Literal["v1"] = "v1"
    kind: Literal["Endpoints"] = "Endpoints"
    subsets: list[EndpointSubset] | None = None
