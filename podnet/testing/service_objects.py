"""Services and EndpointSlices written tersely, for the proxy's tests and benchmark."""
from __future__ import annotations

from typing import Any

from podnet.model import EndpointSlice, Service


def service(name: str = "web", ip: str = "10.96.0.20", labels: dict[str, str] | None = None,
            ports: list[dict[str, Any]] | None = None, status: dict[str, Any] | None = None,
            namespace: str = "default", **spec: Any) -> Service:
    """A Service selecting ``app: name`` on ``ip``; one port 80 → 8080 named http by default."""
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                            "spec": {"clusterIP": ip, "selector": {"app": name},
                                     "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    if status:
        body["status"] = status
    return Service.model_validate(body)


def ep(ip: str, node: str = "n1", ready: bool | None = True, serving: bool | None = None,
       terminating: bool | None = None) -> dict[str, Any]:
    """One slice endpoint; conditions left out when None."""
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v is not None}
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def slice_(name: str, svc: str, endpoints: list[dict[str, Any]], port: int = 8080, port_name: str = "http",
           protocol: str = "TCP", namespace: str = "default") -> EndpointSlice:
    """A slice of ``svc`` with one port."""
    return EndpointSlice.model_validate({
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": protocol}],
        "endpoints": endpoints})
