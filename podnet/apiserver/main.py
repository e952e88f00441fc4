"""``podnet apiserver``: the composition root of the read-only API server.

It reads the cluster CA from the store (``podnet up`` made it), gives itself a serving
certificate for its address, the ``kubernetes`` Service's ClusterIP and the names
``kubernetes.default.svc…``, serves until ``stop``, and keeps the ``kubernetes`` Service's
endpoints pointing at itself meanwhile.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.pki import CLUSTER_CA_KEY, ClusterCA, issue_server_cert
from podnet.services.cluster import APISERVER_PORT
from podnet.store.open import open_store

from . import endpoints
from .server import ApiContext, ApiHTTPServer, tls_context

log = logging.getLogger("podnet.apiserver")
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                 "localhost")


@dataclass(frozen=True)
class ApiServerConfig:
    state_dir: str
    advertise_address: str
    bind_address: str = "0.0.0.0"
    port: int = APISERVER_PORT
    bookmark_interval: float = 10.0


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def run_apiserver(config: ApiServerConfig, stop: threading.Event) -> None:
    from podnet.model import Service

    store = open_store(config.state_dir, bootstrap=False)
    try:
        record = store.kv.get(CLUSTER_CA_KEY)
        if record is None:
            raise PodnetError(f"the store of {config.state_dir} has no cluster CA",
                              hint="`podnet up` makes it; start the API server in a cluster it made")
        ca = ClusterCA.from_dict(record.value)
        kubernetes = store.get(Service, endpoints.NAME, endpoints.NAMESPACE)
        ips = [config.advertise_address, "127.0.0.1"]
        if isinstance(kubernetes, Service) and kubernetes.spec.cluster_ip:
            ips.append(kubernetes.spec.cluster_ip)
        cert, key = issue_server_cert(ca, "kube-apiserver", ips, SERVICE_NAMES)
        directory = os.path.join(config.state_dir, "apiserver")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        cert_file, key_file = os.path.join(directory, "serving.crt"), os.path.join(directory, "serving.key")
        _write_private(cert_file, cert)
        _write_private(key_file, key)
        ctx = ApiContext(store.kv, ca, f"{config.advertise_address}:{config.port}", stop, config.bookmark_interval)
        server = ApiHTTPServer((config.bind_address, config.port), ctx, tls_context(cert_file, key_file))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="apiserver",
                                  daemon=True)
        thread.start()
        endpoints.publish(store, config.advertise_address, config.port)
        log.info("serving https://%s:%d (advertised as %s)", config.bind_address, config.port, ctx.address)
        try:
            stop.wait()
        finally:
            server.shutdown()
            server.server_close()
            try:
                endpoints.withdraw(store)
            except PodnetError as exc:
                log.warning("endpoints of default/kubernetes not withdrawn: %s", exc)
    finally:
        store.close()
