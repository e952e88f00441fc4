"""agnhost's ``grpc-health-checking``: a grpc.health.v1 server whose status an HTTP port
switches (``/make-serving``, ``/make-not-serving``), for gRPC probes. Runs under the
interpreter that has grpcio (the agent's), not the stdlib-only one of the other workloads."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="grpc-health-checking")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--service", default="")
    ap.add_argument("--delay-unhealthy-sec", type=int, default=-1)
    a = ap.parse_args(argv)
    servicer = health.HealthServicer()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    servicer.set(a.service, serving)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"0.0.0.0:{a.port}")
    server.start()

    class Toggle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = {"/make-serving": serving, "/make-not-serving": not_serving}.get(self.path)
            if status is not None:
                servicer.set(a.service, status)
            self.send_response(200 if status is not None else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("0.0.0.0", a.http_port), Toggle)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    if a.delay_unhealthy_sec >= 0:
        threading.Timer(a.delay_unhealthy_sec, lambda: servicer.set(a.service, not_serving)).start()
    print(f"gRPC health on {a.port}, toggles on {a.http_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
