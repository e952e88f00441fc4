"""Ingress benchmark, side by side in one run (loopback only).

1. requests/s and p99 with wrk (10 s, 2 threads, 32 connections) through the ingress
   controller's nginx to a backend vs straight to the same backend (an nginx answering 200);
2. an Ingress change (one new path) → served, at 10 and at 1,000 Ingresses: plan, render,
   ``nginx -t``, graceful reload, until the new path answers (p50/p99 of 20 changes);
3. plan + render of 1,000 plain Ingresses vs 1,000 with ingress-nginx annotations (a regex
   rewrite, a source range, timeouts, a body size, an upstream vhost), median of 7 runs each.

Run: .venv/bin/python bench/ingress.py
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from podnet.ingress.controller import NginxProcess  # noqa: E402
from podnet.ingress.nginx import render  # noqa: E402
from podnet.ingress.plan import plan  # noqa: E402
from podnet.model import EndpointSlice, Ingress, IngressClass, Service  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend(workdir: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    conf = os.path.join(workdir, "backend.conf")
    with open(conf, "w") as f:
        f.write(f"worker_processes 1; pid {workdir}/backend.pid; error_log stderr error;\n"
                "events { worker_connections 4096; }\n"
                f"http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
                f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n"
                f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'backend\\n'; }} }} }}\n")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", workdir, "-g", "daemon off;"])
    wait(port)
    return port, proc


def wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


ANNOTATED = {f"nginx.ingress.kubernetes.io/{k}": v for k, v in {
    "rewrite-target": "/$2", "whitelist-source-range": "10.0.0.0/8, 192.168.0.0/16", "proxy-read-timeout": "30",
    "proxy-connect-timeout": "5", "proxy-body-size": "8m", "upstream-vhost": "internal.example"}.items()}


def world(n_ingresses: int, backend_port: int, extra: int = 0, annotated: bool = False) -> list[object]:
    objs: list[object] = [
        IngressClass.model_validate({"metadata": {"name": "nginx", "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true"}}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
        Service.model_validate({"metadata": {"name": "web", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}}),
        EndpointSlice.model_validate({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})]
    for i in range(n_ingresses):
        paths = [{"path": f"/p{j}(/|$)(.*)" if annotated else f"/p{j}", "pathType": "Prefix",
                  "backend": {"service": {"name": "web", "port": {"number": 80}}}} for j in range(1 + (extra if i == 0 else 0))]
        meta = {"name": f"ing{i}", "namespace": "default", **({"annotations": ANNOTATED} if annotated else {})}
        objs.append(Ingress.model_validate({"metadata": meta,
                                            "spec": {"rules": [{"host": f"h{i}.example", "http": {"paths": paths}}]}}))
    return objs


def desired(objs: list[object]) -> object:
    def of(cls: type) -> list:  # type: ignore[type-arg]
        return [o for o in objs if isinstance(o, cls)]
    return plan(of(Ingress), of(IngressClass), of(Service), of(EndpointSlice))


def wrk(url: str, host: str) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t2", "-c32", "-d10s", "--latency", "-H", f"Host: {host}", url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return rps, float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")


def status(port: int, host: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def change_to_served(tmp: str, n: int, backend_port: int, changes: int = 20) -> tuple[float, float]:
    proc = NginxProcess(os.path.join(tmp, f"ing{n}"), free_port(), free_port())
    proc.apply(desired(world(n, backend_port)))  # type: ignore[arg-type]
    wait(proc.http_port)
    samples = []
    try:
        for k in range(1, changes + 1):
            t0 = time.perf_counter()
            proc.apply(desired(world(n, backend_port, extra=k)))  # type: ignore[arg-type]
            while status(proc.http_port, "h0.example", f"/p{k}") != 200:
                time.sleep(0.002)
            samples.append(time.perf_counter() - t0)
    finally:
        proc.stop()
    samples.sort()
    return samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.99)] * 1e3


def render_time(objs: list[object], runs: int = 7) -> float:
    """Median seconds of plan + render of the same objects (pure: no nginx)."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        render(desired(objs), "/run/nginx")  # type: ignore[arg-type]
        samples.append(time.perf_counter() - t0)
    return sorted(samples)[runs // 2]


def main() -> None:
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs wrk and nginx (make setup installs them)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="podnet-bench-ingress-") as tmp:
        bport, bproc = backend(tmp)
        ingress = NginxProcess(os.path.join(tmp, "ingress"), free_port(), free_port())
        try:
            ingress.apply(desired(world(1, bport)))  # type: ignore[arg-type]
            wait(ingress.http_port)
            for round_ in (1, 2):
                via, via_p99 = wrk(f"http://127.0.0.1:{ingress.http_port}/p0", "h0.example")
                direct, direct_p99 = wrk(f"http://127.0.0.1:{bport}/p0", "h0.example")
                print(f"round {round_}: requests/s through the ingress {via:,.0f} (p99 {via_p99:.2f} ms), "
                      f"straight to the backend {direct:,.0f} (p99 {direct_p99:.2f} ms): {via / direct:.2f}x")
        finally:
            ingress.stop()
        for n in (10, 1000):
            p50, p99 = change_to_served(tmp, n, bport)
            print(f"Ingress change -> served at {n} Ingresses: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        plain, annotated = (render_time(world(1000, bport, annotated=a)) for a in (False, True))
        print(f"plan + render of 1,000 Ingresses: plain {plain * 1e3:.0f} ms, annotated {annotated * 1e3:.0f} ms "
              f"({annotated / plain:.2f}x)")
        bproc.terminate()
        bproc.wait()


if __name__ == "__main__":
    main()
