"""Host port benchmark: what watching pods costs the service proxy, and what the host port DNAT
costs a connection. Both measured side by side in one run.

  1. a proxy pass woken by a pod write that moves no host port (a status change) vs an idle
     pass (nothing changed), with 1,000 Services in the table; and a pass whose pod write moves
     a host port (the ``ip podnet-hostport`` table re-synced).
  2. a new TCP connection from the external host to node:hostPort vs straight to pod:port and
     vs a listener of the node itself on its address (the same first hop, no DNAT),
     interleaved in one client (p50 and p99).

Run as root: .venv/bin/python bench/hostports.py [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.agent.policy_view import LiveView  # noqa: E402
from podnet.agent.proxy import ProxyReconciler, ProxyView  # noqa: E402
from podnet.agent.proxy_loop import ProxyPass  # noqa: E402
from podnet.kernel import underlay  # noqa: E402
from podnet.model import Node, Pod  # noqa: E402
from podnet.store.memory import MemoryStore  # noqa: E402
from podnet.store.resources import ResourceStore  # noqa: E402
from podnet.testing.policy_lab import PolicyLab  # noqa: E402
from podnet.testing.service_lab import NameServer, ask_tcp  # noqa: E402
from podnet.testing.service_objects import service  # noqa: E402

PORT, HOST_PORT = 8080, 30800


def _pod(name: str, ip: str, ports: list[dict[str, Any]], message: str = "") -> Pod:
    return Pod.model_validate({"metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
                               "status": {"phase": "Running", "podIP": ip, "message": message}})


def _write(store: ResourceStore, pod: Pod) -> None:
    store.apply([pod])
    store.update_status(pod)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ms(xs: list[float], q: float = 0.5) -> float:
    return statistics.quantiles(xs, n=100)[int(q * 100) - 1] * 1e3 if q != 0.5 else statistics.median(xs) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    lab = PolicyLab.build(f"hpb{secrets.token_hex(3)}", nodes=1)
    try:
        n1 = lab.nodes["n1"]
        web = lab.add_pod("default", "web", "n1", {"app": "web"})
        underlay.wait_carrier([n1.netns, web.netns])
        server = NameServer(web.netns, web.ip, PORT, "web").start()
        local = NameServer(n1.netns, n1.ip, PORT, "node").start()
        store = ResourceStore(MemoryStore(history=1_000_000))
        store.bootstrap()
        store.apply([service(f"s{i}", ip=f"10.96.{i // 250}.{i % 250 + 1}") for i in range(1000)])
        node = Node.model_validate({"metadata": {"name": "n1"},
                                    "status": {"addresses": [{"type": "InternalIP", "address": n1.ip}]}})
        store.apply([node])
        store.update_status(node)
        _write(store, _pod("web", web.ip, [{"containerPort": PORT, "hostPort": HOST_PORT}]))
        run = ProxyPass(ProxyReconciler("n1", netns=n1.netns, health=False), ProxyView(LiveView(store), "n1"))
        run()
        idle, quiet, moving = [], [], []
        other = "10.244.1.200"
        for i in range(args.rounds):
            idle.append(_timed(run))
            _write(store, _pod("web", web.ip, [{"containerPort": PORT, "hostPort": HOST_PORT}], message=str(i)))
            quiet.append(_timed(run))
            _write(store, _pod("other", other, [{"containerPort": 80, "hostPort": 31000 + i % 2}]))
            moving.append(_timed(run))
        print(f"proxy pass, 1,000 Services, {args.rounds} rounds (p50):")
        print(f"  idle {_ms(idle):.3f} ms; pod write moving no host port {_ms(quiet):.3f} ms "
              f"({statistics.median(quiet) / statistics.median(idle):.2f}x idle); "
              f"pod write moving a host port {_ms(moving):.3f} ms")
        ul = lab.prefix + "-ul"
        via: list[float] = []
        direct: list[float] = []
        node_local: list[float] = []
        for i in range(args.rounds):  # rotate which goes first
            order = [(via, n1.ip, HOST_PORT), (direct, web.ip, PORT), (node_local, n1.ip, PORT)]
            order = order[i % 3:] + order[:i % 3]
            for out, ip, port in order:
                out.append(_timed(lambda ip=ip, port=port: ask_tcp(ul, ip, port)))
        assert ask_tcp(ul, n1.ip, HOST_PORT) == "web"
        print(f"new TCP connection from the external host, {args.rounds} interleaved:")
        for label, xs in (("node:hostPort (DNAT)", via), ("pod:port", direct), ("node's own listener", node_local)):
            print(f"  {label}: p50 {_ms(xs):.3f} ms, p99 {_ms(xs, 0.99):.3f} ms")
        for label, xs in (("pod:port", direct), ("the node's own listener", node_local)):
            print(f"  node:hostPort vs {label}: p50 {statistics.median(via) / statistics.median(xs):.2f}x, "
                  f"p99 {_ms(via, 0.99) / _ms(xs, 0.99):.2f}x")
        server.close()
        local.close()
    finally:
        lab.close()


if __name__ == "__main__":
    main()
