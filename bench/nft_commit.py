"""What one endpoint change and one new Service cost the kernel's commit, by table shape, at 10
and 10,000 Services.

The service table's change figures (docs/services.md) are bound by the kernel. On a commit
that adds a rule or a verdict-map element with a jump or goto, nf_tables re-validates every
jump of the table (``nft_table_validate``); and every commit walks every chain of every table
once (``nf_tables_commit_chain``), so even an element-only commit costs in proportion to the
number of chains. This benchmark builds three tables of the same Services (five endpoints
each, ``table_text``) and times, interleaved at each size, the kernel's commit of:

  endpoint  one endpoint replaced: in the cascade shape (today's renderer) a change adds rules,
            measured as the one verdict element that triggers the same validation; in the map
            shapes one bucket of a data map moved to another endpoint (delete + add)
  service   one Service added: a ``service-ips`` verdict element (cascade, maps: its chains
            and rules come on top), or in the shared shape its 16 buckets and its key

Each commit is one raw netlink batch on a socket inside the namespace (no libnftables, which
lists every set of the table before an element command), so the figures are the kernel's.
Run as root: .venv/bin/python bench/nft_commit.py [--quick] [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from podnet.kernel import netns  # noqa: E402
from podnet.kernel.nft import netlink as nl  # noqa: E402
from podnet.kernel.nft.netlink_rules import NLA_F_NESTED, attr, nest, strz  # noqa: E402

NS = "svm-nftcommit"
BUCKETS = 16


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ip_of(i: int, base: int) -> str:
    return f"{base}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def _head(vmap: bool) -> list[str]:
    svc = ("  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }" if vmap
           else "  set service-ips { type ipv4_addr . inet_proto . inet_service ; }")
    return ["table ip bench {", svc, "  chain masq { meta mark set meta mark | 0x4000\n  }",
            "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            "    jump services\n  }"]


def _eps(s: int) -> list[tuple[str, int]]:
    return [(ip_of(s * 5 + j + 1, 10), 8080) for j in range(5)]


def _chunked(verb: str, name: str, elems: list[str]) -> list[str]:
    return [f"{verb} element ip bench {name} {{ " + ", ".join(elems[i:i + 1000]) + " }"
            for i in range(0, len(elems), 1000)]


def table_text(services: int, shape: str) -> str:
    """The table of ``services`` Services of five endpoints in one of three shapes, as one nft file.

    cascade   today's: a service chain (masquerade rule, 1-of-5 ``numgen`` cascade) and five
              endpoint chains (hairpin, DNAT) per Service: 6 chains, 16 rules
    maps      one chain per Service (masquerade rule, ``dnat ip to numgen random mod 16 map
              @eps-N``) and its data map of 16 buckets
    shared    no chain per Service: one ``dnat ip to ip daddr . meta l4proto . th dport .
              numgen random mod 16 map @endpoints`` over one data map of every Service's buckets
    """
    out = _head(shape != "shared")
    after: list[str] = []
    if shape == "shared":
        out.append("  map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 16 : "
                   "ip daddr . tcp dport ; }")
        out.append("  chain services {\n    ip daddr . meta l4proto . th dport @service-ips ip saddr != 10.0.0.0/8 "
                   "jump masq\n    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 16 map "
                   "@endpoints\n  }")
        for s in range(services):
            eps = _eps(s)
            after += _chunked("add", "endpoints", [f"{ip_of(s + 1, 11)} . tcp . 80 . {k} : {eps[k % 5][0]} . 8080"
                                                   for k in range(BUCKETS)])
        after += _chunked("add", "service-ips", [f"{ip_of(s + 1, 11)} . tcp . 80" for s in range(services)])
    else:
        out.append("  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }")
        for s in range(services):
            eps = _eps(s)
            masq = f"    ip daddr {ip_of(s + 1, 11)} ip saddr != 10.0.0.0/8 jump masq"
            if shape == "cascade":
                body = [masq] + [f"    {f'numgen random mod {5 - j} 0 ' if j < 4 else ''}goto ep-{s}-{j}" for j in range(5)]
                for j, (ip, port) in enumerate(eps):
                    out.append(f"  chain ep-{s}-{j} {{\n    ip saddr {ip} jump masq\n"
                               f"    meta l4proto tcp dnat to {ip}:{port}\n  }}")
            else:
                data = ", ".join(f"{k} : {eps[k % 5][0]} . 8080" for k in range(BUCKETS))
                out.append(f"  map eps-{s} {{ typeof numgen random mod {BUCKETS} : ip daddr . tcp dport ; "
                           f"elements = {{ {data} }} ; }}")
                body = [masq, f"    meta l4proto tcp dnat ip to numgen random mod {BUCKETS} map @eps-{s}"]
            out.append(f"  chain svc-{s} {{\n" + "\n".join(body) + "\n  }")
        after += _chunked("add", "service-ips", [f"{ip_of(s + 1, 11)} . tcp . 80 : goto svc-{s}" for s in range(services)])
    out.append("}")
    return "\n".join(out + after) + "\n"


def element_batch(sock: nl.ElementSocket, msgs: list[tuple[int, int, bytes]]) -> tuple[bytes, list[int]]:
    """Raw NEWSETELEM/DELSETELEM messages between a batch begin and end: one transaction, sent
    without libnftables (which lists the table's sets before any element command)."""
    seq = sock.seq + 1
    out = [nl._message(nl.NFNL_MSG_BATCH_BEGIN, nl.NLM_F_REQUEST, seq, socket.AF_UNSPEC, nl.NFNL_SUBSYS_NFTABLES, b"")]
    acked = []
    for kind, flags, payload in msgs:
        seq += 1
        out.append(nl._message((nl.NFNL_SUBSYS_NFTABLES << 8) | kind, nl.NLM_F_REQUEST | nl.NLM_F_ACK | flags, seq,
                               nl.NFPROTO["ip"], 0, payload))
        acked.append(seq)
    seq += 1
    out.append(nl._message(nl.NFNL_MSG_BATCH_END, nl.NLM_F_REQUEST, seq, socket.AF_UNSPEC, nl.NFNL_SUBSYS_NFTABLES, b""))
    return b"".join(out), acked


def _elem(name: str, key: bytes, data: bytes | None, adding: bool) -> tuple[int, int, bytes]:
    body = nest(nl.NFTA_SET_ELEM_KEY, [attr(nl.NFTA_DATA_VALUE, key)])
    if data is not None:
        body += data
    head = attr(nl.NFTA_SET_ELEM_LIST_TABLE, strz("bench")) + attr(nl.NFTA_SET_ELEM_LIST_SET, strz(name))
    payload = head + nest(nl.NFTA_SET_ELEM_LIST_ELEMENTS, [attr(nl.NFTA_LIST_ELEM | NLA_F_NESTED, body)])
    return (nl.NFT_MSG_NEWSETELEM, nl.NLM_F_CREATE, payload) if adding else (nl.NFT_MSG_DELSETELEM, 0, payload)


_SVC_KEY = ("ipv4_addr", "inet_proto", "inet_service")
NEW_SERVICE = "12.0.0.1"


def verdict_change(s: int, adding: bool) -> list[tuple[int, int, bytes]]:
    """One ``service-ips`` element, ``12.0.0.1 . tcp . 80 : goto svc-<s>``: the kernel
    re-validates the table's jumps, as it does for every rule a change adds."""
    key = nl.encode_key([NEW_SERVICE, "tcp", "80"], _SVC_KEY)
    data = nl._verdict({"goto": {"target": f"svc-{s}"}}) if adding else None
    return [_elem("service-ips", key, data, adding)]


def _data(ip: str) -> bytes:
    return nest(nl.NFTA_SET_ELEM_DATA, [attr(nl.NFTA_DATA_VALUE, nl.encode_key([ip, "8080"], ("ipv4_addr", "inet_service")))])


def _bucket_key(shape: str, s: int, bucket: int, service: str | None = None) -> tuple[str, bytes]:
    if shape == "shared":
        return "endpoints", nl.encode_key([service or ip_of(s + 1, 11), "tcp", "80"], _SVC_KEY) + struct.pack("=I", bucket)
    return f"eps-{s}", struct.pack("=I", bucket)


def data_change(shape: str, s: int, last: int) -> list[tuple[int, int, bytes]]:
    """Bucket 3 of Service ``s`` to another endpoint: its element deleted and added again."""
    name, key = _bucket_key(shape, s, 3)
    return [_elem(name, key, None, False), _elem(name, key, _data(f"10.250.0.{last}"), True)]


def shared_service(adding: bool) -> list[tuple[int, int, bytes]]:
    """A Service created (or deleted) in the shared shape: its 16 buckets and its key."""
    msgs = [_elem("endpoints", _bucket_key("shared", 0, k, NEW_SERVICE)[1], _data("10.250.1.1") if adding else None,
                  adding) for k in range(BUCKETS)]
    return msgs + [_elem("service-ips", nl.encode_key([NEW_SERVICE, "tcp", "80"], _SVC_KEY), None, adding)]


def timed(sock: nl.ElementSocket, msgs: list[tuple[int, int, bytes]]) -> float:
    batch = element_batch(sock, msgs)
    t0 = time.perf_counter()
    sock.commit(*batch)
    return (time.perf_counter() - t0) * 1000


SHAPES = ("cascade", "maps", "shared")


def measure(services: int, shape: str, rounds: int) -> dict[str, list[float]]:
    """Endpoint changes and Service creations, interleaved, on a table of one shape."""
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
            f.write(table_text(services, shape))
        t0 = time.perf_counter()
        try:
            subprocess.run(["ip", "netns", "exec", NS, "nft", "-f", f.name], check=True)
        finally:
            os.unlink(f.name)
        print(f"  {shape}: {services} Services loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        with netns.enter(NS):
            sock = nl.ElementSocket()
        times: dict[str, list[float]] = {"endpoint": [], "service": []}
        try:
            for r in range(rounds):
                s = (r * 7919) % services
                if shape == "cascade":  # the change's rules cost what this verdict does
                    times["endpoint"].append(timed(sock, verdict_change(s, True)))
                    timed(sock, verdict_change(s, False))
                else:
                    times["endpoint"].append(timed(sock, data_change(shape, s, 1 + r % 200)))
                if shape == "shared":
                    times["service"].append(timed(sock, shared_service(True)))
                    timed(sock, shared_service(False))
                else:
                    times["service"].append(timed(sock, verdict_change(s, True)))
                    timed(sock, verdict_change(s, False))
        finally:
            sock.close()
        return times
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 instead of 10,000 Services, fewer rounds")
    ap.add_argument("--rounds", type=int, default=0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it builds each table in a namespace of its own)")
    big = 1000 if args.quick else 10000
    rounds = args.rounds or (20 if args.quick else 50)
    res = {(n, shape): measure(n, shape, rounds) for shape in SHAPES for n in (10, big)}
    print(f"\nthe kernel's commit of one change, raw netlink, {rounds} rounds each (ms)")
    print(f"{'shape':<9}{'change':<10}{'p50 @10':>9}{'p50 @' + str(big):>12}{'ratio':>9}{'p99 @10':>9}"
          f"{'p99 @' + str(big):>12}{'vs cascade':>12}")
    for shape in SHAPES:
        for kind in ("endpoint", "service"):
            a, b = res[(10, shape)][kind], res[(big, shape)][kind]
            ma, mb = statistics.median(a), statistics.median(b)
            vs = mb / statistics.median(res[(big, "cascade")][kind])
            print(f"{shape:<9}{kind:<10}{ma:>9.2f}{mb:>12.2f}{mb / ma:>8.1f}x{pct(a, 99):>9.2f}{pct(b, 99):>12.2f}"
                  f"{vs:>11.3f}x")


if __name__ == "__main__":
    main()
