"""What ``podnet up`` records about Services: the service CIDR and the ``kubernetes`` Service.

Every Kubernetes cluster has ``default/kubernetes`` on the first address of the service CIDR,
port 443 (https) to the API server's 6443. podnet has no API server listening there, so the
Service has no selector and no endpoints: it exists because clients and conformance checks
look it up (DNS answers ``kubernetes.default.svc``), not to carry traffic.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from podnet.errors import PodnetError
from podnet.model import Service

from .allocation import KUBERNETES_OFFSET, service_network


def service_config(service_cidr: str, pod_cidr: str | None = None) -> dict[str, Any]:
    """The value of the services config key; refuses a CIDR that is malformed, too small or
    overlaps the pod CIDR."""
    try:
        net = service_network(service_cidr)
    except ValueError as exc:
        raise PodnetError(f"--service-cidr {service_cidr!r}: {exc}", hint="e.g. --service-cidr 10.96.0.0/12") from None
    if pod_cidr and net.overlaps(ipaddress.ip_network(pod_cidr, strict=False)):
        raise PodnetError(f"--service-cidr {net} overlaps the pod CIDR {pod_cidr}",
                          hint="choose ranges that do not overlap (the defaults are 10.96.0.0/12 and 10.244.0.0/16)")
    return {"serviceCIDR": str(net)}


def kubernetes_service(service_cidr: str) -> Service:
    net = service_network(service_cidr)
    ip = str(net.network_address + KUBERNETES_OFFSET)
    return Service.model_validate({
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}})
