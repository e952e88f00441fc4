"""The ingress controller process: ``python -m podnet.ingress.controller`` in the
ingress-nginx pods, as ingress-nginx's controller binary runs there.

It keeps Ingresses, IngressClasses, Services, EndpointSlices and Secrets through informers
(the API server, the pod's token), re-plans on every change, and when the rendered
configuration differs, checks it with ``nginx -t`` and reloads nginx with SIGHUP: nginx's
graceful reload (new workers take new connections, old ones finish theirs), so no request is
lost. A configuration nginx refuses is logged and the running one stays."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from .nginx import render
from .plan import CONTROLLER, IngressPlan, plan

log = logging.getLogger("podnet.ingress")
NGINX = "nginx"


class NginxProcess:
    """One nginx master in the foreground, its configuration under ``run_dir``."""

    def __init__(self, run_dir: str, http_port: int = 80, https_port: int = 443) -> None:
        self.run_dir = run_dir
        self.http_port = http_port
        self.https_port = https_port
        self.conf = os.path.join(run_dir, "nginx.conf")
        self.proc: subprocess.Popen[bytes] | None = None
        self.text: str | None = None
        self.reloads = 0

    def _binary(self) -> str:
        found = shutil.which(NGINX) or shutil.which(NGINX, path="/usr/sbin")
        if found is None:
            raise RuntimeError("nginx is not installed (Debian's nginx-light)")
        return found

    def _write(self, text: str, files: dict[str, bytes], path: str) -> None:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):  # workers (nobody) buffer here
            os.makedirs(os.path.join(self.run_dir, kind), exist_ok=True)
            os.chmod(os.path.join(self.run_dir, kind), 0o1777)
        os.makedirs(os.path.join(self.run_dir, "certs"), mode=0o700, exist_ok=True)
        for name, content in files.items():
            with open(name, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(content)
        with open(path, "w") as f:
            f.write(text)

    def apply(self, desired: IngressPlan) -> str:
        """Start nginx, reload it, or leave it: "started", "reloaded", "unchanged"."""
        text, files = render(desired, self.run_dir, self.http_port, self.https_port)
        if text == self.text and self.proc is not None and self.proc.poll() is None:
            return "unchanged"
        candidate = self.conf + ".new"
        self._write(text, files, candidate)
        check = subprocess.run([self._binary(), "-t", "-q", "-c", candidate, "-p", self.run_dir],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the configuration: {check.stderr.strip()}")
        os.replace(candidate, self.conf)
        self.text = text
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([self._binary(), "-c", self.conf, "-p", self.run_dir, "-g", "daemon off;"])
            return "started"
        self.proc.send_signal(signal.SIGHUP)
        self.reloads += 1
        return "reloaded"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _models(cls: Any, items: list[dict[str, Any]]) -> list[Any]:
    out = []
    for obj in items:
        try:
            out.append(cls.model_validate(obj))
        except ValueError as exc:
            log.warning("skipping %s %s: %s", cls.KIND, (obj.get("metadata") or {}).get("name"), exc)
    return out


def run(args: argparse.Namespace, stop: threading.Event) -> None:
    from podnet.apiclient import ApiClient, Informer, resource_path, wait_synced
    from podnet.model import EndpointSlice, Ingress, IngressClass, Service
    from podnet.model.secrets import Secret

    client = ApiClient.in_cluster()
    net = "networking.k8s.io/v1"
    informers = {
        Ingress: Informer(client, resource_path("ingresses", group_version=net)),
        IngressClass: Informer(client, resource_path("ingressclasses", group_version=net)),
        Service: Informer(client, resource_path("services")),
        EndpointSlice: Informer(client, resource_path("endpointslices", group_version="discovery.k8s.io/v1")),
        Secret: Informer(client, resource_path("secrets")),
    }
    changed = threading.Event()
    for inf in informers.values():
        inf.on_change = lambda _event: changed.set()
        inf.start(stop)
    wait_synced(list(informers.values()), 30)
    nginx = NginxProcess(args.run_dir, args.http_port, args.https_port)
    changed.set()
    try:
        while not stop.is_set():
            if not changed.wait(0.5):
                if nginx.proc is not None and nginx.proc.poll() is not None:
                    log.error("nginx exited (%s); starting it again", nginx.proc.returncode)
                    nginx.text = None
                    changed.set()
                continue
            changed.clear()
            stop.wait(0.02)  # a burst of changes: one reload
            objects = {cls: _models(cls, inf.items()) for cls, inf in informers.items()}
            desired = plan(objects[Ingress], objects[IngressClass], objects[Service], objects[EndpointSlice],
                           objects[Secret], args.controller_class)
            for problem in desired.problems:
                log.warning("%s", problem)
            for warning in desired.warnings:
                log.warning("%s: %s: %s", warning.ingress, warning.reason, warning.message)
            try:
                done = nginx.apply(desired)
            except (RuntimeError, OSError) as exc:
                log.error("%s", exc)
                continue
            if done != "unchanged":
                log.info("nginx %s: %d servers, %d Ingresses", done, len(desired.servers), len(desired.ingresses))
    finally:
        nginx.stop()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="podnet-ingress", description=__doc__.splitlines()[0])
    ap.add_argument("--controller-class", default=CONTROLLER)
    ap.add_argument("--run-dir", default="/tmp/nginx")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--https-port", type=int, default=443)
    args, _ = ap.parse_known_args(argv)  # ingress-nginx's own flags (--publish-service …) are accepted
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run(args, stop)


if __name__ == "__main__":
    main()
