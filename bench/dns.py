"""Cluster DNS benchmark, side by side in one run (loopback only; no root needed).

1. queries/s with dnsperf (10 s, 2 clients) against podnet's DNS server and against Debian's
   unbound serving the same A records as local-data; then p50/p99 of 2,000 sequential queries
   to each (a Python client, the same for both);
2. one watch event applied to the zone (a Service created among N: its records computed and
   swapped into the index, the answers drawn from its names forgotten): its time at 10 and
   10,000 Services;
3. Service created → resolvable, end to end: from a Service committed to the store, served by the real
   API server (TLS, token, RBAC), seen by the DNS server's informers (``follow_api``), until a
   UDP query for its name answers; p50/p99 over ``--created`` Services among ``--resolvable-at``
   (everything in one process: the API server, the DNS server and the asking client share it).
   With ``--baseline DIR`` (another checkout, e.g. ``git archive main podnet bench | tar -x -C
   DIR``) the same measurement of that checkout runs right after, in a child process, so the
   two are side by side under the same load.

Run: .venv/bin/python bench/dns.py [--services 1000] [--resolvable-at 10000] [--created 30]
                                   [--skip-qps] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This file's own name would shadow dnspython's package: import from the checkout, not bench/.
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or ".") != os.path.join(ROOT, "bench")]

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from podnet.model import Service  # noqa: E402

ZONE = "cluster.local"


def services(n: int) -> list[Service]:
    return [Service.model_validate({"metadata": {"name": f"svc{i}", "namespace": "default"},
                                    "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "ports": [{"port": 80}]}})
            for i in range(n)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_podnet(svcs: list[Service]) -> tuple[int, threading.Event]:
    """The server's own UDP loop in a child process (so the client runs on the other core)."""
    port = free_port()
    code = (f"import socket, sys, threading; sys.path.insert(0, {ROOT!r})\n"
            "from bench.dns import services\n"
            "from podnet.dns.records import ZoneIndex\nfrom podnet.dns.server import DnsHandler, serve_udp\n"
            f"index = ZoneIndex.build(services({len(svcs)}), [], ['default'])\n"
            f"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', {port}))\n"
            "print('ready', flush=True); serve_udp(s, DnsHandler(lambda: index, []), threading.Event())\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    stop = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), proc.terminate(), proc.wait()), daemon=True).start()
    return port, stop


def start_unbound(svcs: list[Service], workdir: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    conf = os.path.join(workdir, "unbound.conf")
    lines = ["server:", "  interface: 127.0.0.1", f"  port: {port}", "  do-daemonize: no", '  username: ""',
             '  chroot: ""', f'  directory: "{workdir}"', '  pidfile: ""', "  use-syslog: no", "  num-threads: 1",
             "  access-control: 127.0.0.0/8 allow", f'  local-zone: "{ZONE}." static']
    lines += [f'  local-data: "{s.name}.default.svc.{ZONE}. 5 IN A {s.spec.cluster_ip}"' for s in svcs]
    lines += ["remote-control:", "  control-enable: no"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.Popen(["unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            dns.query.udp(dns.message.make_query(f"svc0.default.svc.{ZONE}", "A"), "127.0.0.1", port=port, timeout=0.2)
            return port, proc
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("unbound did not answer")


def dnsperf(port: int, queryfile: str, seconds: int = 10) -> float:
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queryfile, "-l", str(seconds),
                          "-c", "2", "-q", "200"], capture_output=True, text=True).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(match.group(1)) if match else float("nan")


def latencies(port: int, names: list[str], count: int = 2000) -> tuple[float, float]:
    samples = []
    for i in range(count):
        q = dns.message.make_query(names[i % len(names)], "A")
        t0 = time.perf_counter()
        dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.99)] * 1e3


def event_ms(n: int, repeat: int = 5) -> float:
    """One Service created among ``n``: applying its watch event to the zone (best of ``repeat``)."""
    from podnet.dns.server import DnsHandler, ZoneSource

    objs = [{**s.to_dict(), "metadata": {**s.to_dict()["metadata"], "resourceVersion": str(i + 1)}}
            for i, s in enumerate(services(n))]
    source = ZoneSource()
    DnsHandler(source, [])  # its answer cache listens to the changes, as in the server
    source.rebuild(objs, [], [{"metadata": {"name": "default"}}])
    best = float("inf")
    for r in range(repeat):
        new = {"metadata": {"name": f"new{r}", "namespace": "default", "resourceVersion": str(n + r + 1)},
               "spec": {"clusterIP": f"10.97.0.{r + 1}", "ports": [{"port": 80}]}}
        t0 = time.perf_counter()
        source.apply("Service", "ADDED", new)
        best = min(best, time.perf_counter() - t0)
        assert source.current is not None and source.current.lookup(f"new{r}.default.svc.{ZONE}", "A").answer
    return best * 1e3


def resolvable_ms(n: int, created: int) -> tuple[float, float, float]:
    """p50/p99 of Service committed to the store → its name answers over UDP, among ``n``,
    and the median time of the store write itself (the API server's side, not counted)."""
    import json
    from pathlib import Path

    from podnet.apiclient import ApiClient
    from podnet.apiserver.server import ApiContext, ApiHTTPServer, tls_context
    from podnet.dns.records import ZoneIndex
    from podnet.dns.server import DnsHandler, ZoneSource, follow_api, serve_udp
    from podnet.model import Pod
    from podnet.model.registry import kind_for
    from podnet.pki import issue_server_cert, mint_token, new_cluster_ca
    from podnet.store.memory import MemoryStore
    from podnet.store.resources import ResourceStore

    def objects(docs: list[dict[str, object]]) -> list[object]:
        out = []
        for doc in docs:
            cls = kind_for(str(doc["apiVersion"]), str(doc["kind"]))
            assert cls is not None
            out.append(cls.model_validate(json.loads(json.dumps(doc))))
        return out

    def service(name: str, i: int) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                "spec": {"clusterIP": f"10.{100 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}", "ports": [{"port": 80}]}}

    ca = new_cluster_ca()
    store = ResourceStore(MemoryStore())
    store.apply(objects([  # type: ignore[arg-type]
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "coredns", "namespace": "default"},
         "spec": {"containers": [{"name": "c", "image": "coredns"}]}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "dns"},
         "rules": [{"apiGroups": ["", "discovery.k8s.io"], "resources": ["services", "endpointslices", "namespaces"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "dns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "dns"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}]))
    for start in range(0, n, 1000):
        store.apply(objects([service(f"svc{i}", i) for i in range(start, min(n, start + 1000))]))  # type: ignore[arg-type]
    pod = store.get(Pod, "coredns", "default")
    assert pod is not None
    token = mint_token(ca, "default", "default", "coredns", pod.metadata.uid or "", time.time())
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="podnet-bench-dns-api-") as tmp:
        cert, key = issue_server_cert(ca, "kube-apiserver", ["127.0.0.1"], ["localhost"])
        Path(tmp, "tls.crt").write_text(cert)
        Path(tmp, "tls.key").write_text(key)
        Path(tmp, "ca.crt").write_text(ca.cert_pem)
        ctx = ApiContext(store.kv, ca, "127.0.0.1:0", stop)
        api = ApiHTTPServer(("127.0.0.1", 0), ctx, tls_context(f"{tmp}/tls.crt", f"{tmp}/tls.key"))
        threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        source = ZoneSource()
        client = ApiClient("127.0.0.1", api.server_address[1], token, f"{tmp}/ca.crt", timeout=30)
        threading.Thread(target=follow_api, args=(client, source, stop), daemon=True).start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        threading.Thread(target=serve_udp, args=(sock, DnsHandler(source, []), stop), daemon=True).start()

        def answers(name: str) -> bool:
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1)
            return bool(reply.answer)

        try:
            deadline = time.monotonic() + 120
            while not (isinstance(source.current, ZoneIndex) and answers(f"svc{n - 1}.default.svc.{ZONE}")):
                if time.monotonic() > deadline:
                    raise RuntimeError("the DNS server never synced")
                time.sleep(0.1)
            samples: list[float] = []
            writes: list[float] = []
            for k in range(created):
                name = f"new{k}"
                t_write = time.perf_counter()
                store.apply(objects([service(name, n + k)]))  # type: ignore[arg-type]
                t0 = time.perf_counter()  # created: committed to the store
                writes.append(t0 - t_write)
                while not answers(f"{name}.default.svc.{ZONE}"):
                    time.sleep(0.002)
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError(f"{name} never became resolvable")
                samples.append(time.perf_counter() - t0)
                time.sleep(0.05)  # one change at a time, as a user creates them
        finally:
            stop.set()
            api.shutdown()
            api.server_close()
            sock.close()
    samples.sort()
    writes.sort()
    return (samples[len(samples) // 2] * 1e3, samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3,
            writes[len(writes) // 2] * 1e3)


def baseline_resolvable_ms(checkout: str, n: int, created: int) -> tuple[float, float, float]:
    """``resolvable_ms`` of another checkout's code, in a child process (this interpreter)."""
    code = (f"import sys; sys.path.insert(0, {checkout!r}); from bench.dns import resolvable_ms; "
            f"print(*resolvable_ms({n}, {created}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, check=True)
    p50, p99, write = (float(x) for x in out.stdout.split()[-3:])
    return p50, p99, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--resolvable-at", type=int, default=10_000)
    ap.add_argument("--created", type=int, default=30)
    ap.add_argument("--skip-qps", action="store_true", help="only the change → resolvable figures (sections 2, 3)")
    ap.add_argument("--baseline", metavar="DIR", help="another checkout measured the same way right after")
    args = ap.parse_args()
    if not args.skip_qps and (not shutil.which("dnsperf") or not shutil.which("unbound")):
        sys.exit("needs dnsperf and unbound (make setup installs them)")
    svcs = services(args.services)
    names = [f"{s.name}.default.svc.{ZONE}" for s in svcs]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {len(svcs)} Services")
    if not args.skip_qps:
        with tempfile.TemporaryDirectory(prefix="podnet-bench-dns-") as tmp:
            qfile = os.path.join(tmp, "queries")
            with open(qfile, "w") as f:
                f.writelines(f"{n} A\n" for n in names)
            pport, pstop = start_podnet(svcs)
            uport, unbound = start_unbound(svcs, tmp)
            try:
                for round_ in (1, 2):
                    p_qps, u_qps = dnsperf(pport, qfile), dnsperf(uport, qfile)
                    print(f"round {round_}: queries/s podnet {p_qps:,.0f}, unbound {u_qps:,.0f}: {p_qps / u_qps:.2f}x")
                (p50, p99), (u50, u99) = latencies(pport, names), latencies(uport, names)
                print(f"sequential latency p50/p99: podnet {p50:.3f}/{p99:.3f} ms, unbound {u50:.3f}/{u99:.3f} ms")
            finally:
                pstop.set()
                unbound.terminate()
                unbound.wait()
    small, large = event_ms(10), event_ms(10_000)
    print(f"one Service created, its watch event applied to the zone: {small:.2f} ms at 10 Services, "
          f"{large:.2f} ms at 10,000 ({large / small:.1f}x); resolvable = watch event + this")
    for n in (10, args.resolvable_at):
        p50, p99, write = resolvable_ms(n, args.created)
        print(f"Service committed -> resolvable through the API server, among {n:,} Services: "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({args.created} creations; goal p99 <= 100 ms; "
              f"the store write before it: median {write:.0f} ms)", flush=True)
        if args.baseline:
            b50, b99, bwrite = baseline_resolvable_ms(args.baseline, n, args.created)
            print(f"  baseline {args.baseline}, same measurement right after: p50 {b50:.0f} ms, p99 {b99:.0f} ms "
                  f"(store write median {bwrite:.0f} ms); p99 this/baseline {p99 / b99:.2f}x", flush=True)


if __name__ == "__main__":
    main()
