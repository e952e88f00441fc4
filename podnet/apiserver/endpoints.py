"""The ``kubernetes`` Service's endpoints, written by the API server itself as kube-apiserver's
endpoint reconciler does (the EndpointSlice controller leaves selectorless Services alone):
an Endpoints object and an EndpointSlice ``default/kubernetes`` holding this server's
advertised address and port, removed when the server stops.
"""
from __future__ import annotations

from typing import Any

from podnet.model import Endpoints, EndpointSlice, Resource
from podnet.model.discovery import SERVICE_NAME_LABEL

NAME, NAMESPACE = "kubernetes", "default"


def endpoint_objects(address: str, port: int) -> list[Resource]:
    """The Endpoints and EndpointSlice of ``default/kubernetes`` for one API server."""
    meta = {"name": NAME, "namespace": NAMESPACE}
    endpoints = Endpoints.model_validate({
        "metadata": {**meta, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})
    family = "IPv6" if ":" in address else "IPv4"
    slice_ = EndpointSlice.model_validate({
        "metadata": {**meta, "labels": {SERVICE_NAME_LABEL: NAME}}, "addressType": family,
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
    return [endpoints, slice_]


def publish(store: Any, address: str, port: int) -> None:
    store.apply(endpoint_objects(address, port))


def withdraw(store: Any) -> None:
    store.delete_many([(Endpoints, NAME, NAMESPACE), (EndpointSlice, NAME, NAMESPACE)], missing_ok=True)
