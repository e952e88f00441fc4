"""Deleting stale conntrack entries of a node namespace, and marking the flows a tightened
policy denies (read with `conntrack -L`, written over ctnetlink).

A UDP "connection" through a Service stays bound to its endpoint in conntrack for as long as
the client keeps sending (30 s after the last datagram): when that endpoint goes away, the
client keeps sending into the void. The proxy therefore deletes the entries whose reply
comes from a removed endpoint, once the table without it is programmed (deleting earlier
lets the next datagram create the same stale entry again). TCP needs none of this: the
endpoint's reset or the client's timeout ends the connection.
"""
from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from podnet.dataplane.nft.flows import FLOW_DENIED_MARK, FlowVerdicts, TrackedFlow
from podnet.errors import DataplaneError

from . import netns as _netns


@dataclass(frozen=True)
class StaleFlow:
    """Entries to delete: protocol, and the endpoint their replies come from (``ip``, ``port``)
    after a DNAT (the original destination is some other address)."""

    protocol: str
    ip: str
    port: int


def _proto(name: str) -> int:
    return {"udp": socket.IPPROTO_UDP, "sctp": socket.IPPROTO_SCTP, "tcp": socket.IPPROTO_TCP}[name.lower()]


def delete_flows(netns_name: str | None, flows: Iterable[StaleFlow]) -> int:
    """Delete the DNATed entries whose reply source is one of ``flows``' endpoints, in the
    namespace ``netns_name`` (None: this one). Returns how many were deleted."""
    wanted: dict[int, set[tuple[str, int]]] = {}
    for f in flows:
        wanted.setdefault(_proto(f.protocol), set()).add((f.ip, f.port))
    if not wanted:
        return 0
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError

    where = netns_name or "this namespace"
    deleted = 0
    try:
        # pyroute2 opens its socket on first use: everything happens inside the namespace.
        with _netns.enter(netns_name) if netns_name else nullcontext():
            ct = Conntrack()
            try:
                stale = [e for e in ct.dump_entries()
                         if (e.tuple_reply.saddr, e.tuple_reply.sport) in wanted.get(e.tuple_orig.proto, ())
                         and e.tuple_orig.daddr != e.tuple_reply.saddr]
                for entry in stale:
                    try:
                        ct.delete(entry)
                        deleted += 1
                    except (OSError, NetlinkError):  # gone meanwhile (it timed out, or another delete won)
                        pass
            finally:
                ct.close()
    except (OSError, NetlinkError) as exc:
        raise DataplaneError(f"conntrack entries in {where}: {exc}", target=f"conntrack in {where}",
                             retryable=True, hint="the next sync tries again") from exc
    return deleted




def _listing(netns_name: str | None) -> str:
    """``conntrack -L`` of the namespace: the C tool lists ten thousand entries in tens of
    milliseconds, where decoding them through pyroute2 takes seconds."""
    argv = ["conntrack", "-L", "-f", "ipv4"]
    if netns_name:
        return _netns.run_in(netns_name, argv, check=True).stdout
    return subprocess.run(argv, check=True, text=True, capture_output=True, timeout=30).stdout


def parse_listing(text: str, wanted: frozenset[str]) -> dict[TrackedFlow, list[dict[str, Any]]]:
    """The listed entries with an address in ``wanted`` on either side, grouped by flow (many
    entries share one: other source ports, other echo ids) → the fields of each entry's original
    tuple (for addressing it over ctnetlink)."""
    out: dict[TrackedFlow, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        orig: dict[str, str] = {}
        reply: dict[str, str] = {}
        side, mark = orig, 0
        for tok in parts[2:]:
            key, eq, value = tok.partition("=")
            if not eq:
                continue
            if key == "mark":
                mark = int(value, 0)
            elif key in side and side is orig:
                side = reply
                side[key] = value
            elif key not in side:
                side[key] = value
        if "src" not in orig or "src" not in reply:
            continue
        if wanted.isdisjoint((orig["src"], orig["dst"], reply["src"], reply["dst"])):
            continue
        proto = int(parts[1])
        fields: dict[str, Any] = {"saddr": orig["src"], "daddr": orig["dst"], "proto": proto}
        if proto == socket.IPPROTO_ICMP:
            fields.update(icmp_id=int(orig.get("id", 0)), icmp_type=int(orig.get("type", 0)),
                          icmp_code=int(orig.get("code", 0)))
            port = None
        else:
            fields.update(sport=int(orig.get("sport", 0)), dport=int(orig.get("dport", 0)))
            port = int(reply.get("sport", 0))
        out.setdefault(TrackedFlow(proto, orig["src"], reply["src"], port, mark == FLOW_DENIED_MARK), []).append(fields)
    return out


_NETLINK_NETFILTER = 12
_CTNETLINK = 1 << 8  # NFNL_SUBSYS_CTNETLINK in the message type's high byte
_CT_NEW, _CT_DELETE = 0, 2
_NLM_F_REQUEST, _NLM_F_ACK = 1, 4
_NLMSG_ERROR = 2
_CHUNK = 128
_SOL_NETLINK, _NETLINK_CAP_ACK = 270, 10


def _nla(kind: int, payload: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def _encode(seq: int, msg_type: int, fields: dict[str, Any], mark: int | None) -> bytes:
    """One ctnetlink request addressing an entry by its original tuple (CTA_TUPLE_ORIG: the
    addresses, the protocol and its ports or ICMP id/type/code), with CTA_MARK to set; encoded
    as pyroute2 encodes it (a unit test holds the two equal), without its per-message cost."""
    proto = fields["proto"]
    l4 = _nla(1, struct.pack("B", proto))
    if proto == socket.IPPROTO_ICMP:
        l4 += _nla(4, struct.pack("!H", fields["icmp_id"])) + _nla(5, struct.pack("B", fields["icmp_type"])) \
            + _nla(6, struct.pack("B", fields["icmp_code"]))
    else:
        l4 += _nla(2, struct.pack("!H", fields["sport"])) + _nla(3, struct.pack("!H", fields["dport"]))
    ips = _nla(1, socket.inet_aton(fields["saddr"])) + _nla(2, socket.inet_aton(fields["daddr"]))
    body = struct.pack("=BBH", socket.AF_INET, 0, 0) + _nla(1, _nla(1, ips) + _nla(2, l4))
    if mark is not None:
        body += _nla(8, struct.pack("!I", mark))
    return struct.pack("=IHHII", 16 + len(body), _CTNETLINK | msg_type, _NLM_F_REQUEST | _NLM_F_ACK, seq, 0) + body


def _write(requests: list[tuple[int, dict[str, Any], int | None]]) -> int:
    """Send the requests on one netfilter socket of this namespace, many to a datagram (one
    round trip per chunk instead of per entry, ~0.5 ms each through pyroute2's request path);
    returns how many the kernel acknowledged without error (an entry gone meanwhile is not)."""
    done = 0
    if not requests:
        return done
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as sock:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)  # acks without the request echoed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, 0))
        for start in range(0, len(requests), _CHUNK):
            chunk = requests[start:start + _CHUNK]
            sock.send(b"".join(_encode(start + i + 1, t, f, m) for i, (t, f, m) in enumerate(chunk)))
            acks = 0
            while acks < len(chunk):
                data = sock.recv(1 << 20)
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == _NLMSG_ERROR:
                        acks += 1
                        (error,) = struct.unpack_from("=i", data, offset + 16)
                        done += error == 0
                    offset += (length + 3) & ~3
                    if length == 0:
                        break
    return done


def enforce_pod_flows(netns_name: str | None, addresses: Iterable[str],
                      judge: Callable[[list[TrackedFlow]], FlowVerdicts]) -> dict[str, int]:
    """Hold the tracked flows to or from ``addresses`` in the namespace ``netns_name`` (None:
    this one) to ``judge``'s verdicts: mark the denied ones with ``FLOW_DENIED_MARK`` (the
    table drops their packets), clear the mark of those allowed again, delete those of pods
    that are gone. A Service flow to such a pod matches by its reply source. Returns how many
    entries went each way."""
    wanted = frozenset(addresses)
    counts = {"denied": 0, "allowed": 0, "deleted": 0}
    if not wanted:
        return counts
    where = netns_name or "this namespace"
    try:
        entries = parse_listing(_listing(netns_name), wanted)
        verdicts = judge(list(entries))  # outside the namespace: it may read the store
        if not (verdicts.deny or verdicts.allow or verdicts.gone):
            return counts
        with _netns.enter(netns_name) if netns_name else nullcontext():
            for flows, msg_type, mark, what in ((verdicts.deny, _CT_NEW, FLOW_DENIED_MARK, "denied"),
                                               (verdicts.allow, _CT_NEW, 0, "allowed"),
                                               (verdicts.gone, _CT_DELETE, None, "deleted")):
                counts[what] = _write([(msg_type, fields, mark) for f in flows for fields in entries[f]])
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataplaneError(f"conntrack entries in {where}: {exc}", target=f"conntrack in {where}",
                             retryable=True, hint="the next sync tries again") from exc
    return counts
