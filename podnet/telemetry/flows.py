"""Flow records: logged packets aggregated per flow and decision, kept in a bounded per-node ring.

A record counts the logged packets and bytes of one (source, destination, port, protocol,
verdict, deciding rule) over a short window (``WINDOW``), Hubble's and Calico's flow-log unit.
The rule comes from the log prefix the renderer wrote (``RuleId``), never from a second guess.

The ring is two JSON-lines files in the node's state directory: ``flows.jsonl`` takes records
until it holds ``capacity`` of them, then becomes ``flows.jsonl.1`` (the older one is dropped),
so a node keeps between ``capacity`` and twice that many records however long it runs, and
``podnet flows`` reads (and follows) plain files without talking to the node's processes.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from podnet.dataplane.nft.flowlog import RuleId, implied_action
from podnet.kernel.nflog import LoggedPacket
from podnet.policy.tiers import DEFAULT_TIER

from .api import Telemetry

WINDOW = 0.01  # seconds a record stays open for more packets of the same flow
CAPACITY = 10000
FILE = "flows.jsonl"
VERDICTS = ("ALLOWED", "DROPPED")


def flows_path(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, "nodes", node, FILE)


@dataclass
class FlowRecord:
    """One aggregated flow decision (the fields ``podnet flows -o json`` prints)."""

    time: float  # the first packet's arrival at the logger (seconds since the epoch)
    last: float
    node: str
    src: str
    dst: str
    dport: int
    protocol: str
    verdict: str  # ALLOWED | DROPPED
    direction: str
    tier: str
    policies: list[str]
    rule_index: int
    rule: str  # the deciding rule, as people read it
    packets: int = 0
    bytes: int = 0
    #: Allow | Deny | Pass | EndOfTier | Default (``flowlog.RuleId.action``)
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowRecord:
        """A ring line; lines written before ``action`` existed get the one their verdict implies,
        and their tier ``k8s`` its name since, ``default``."""
        rec = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k != "action"})
        rec.action = d.get("action") or implied_action(rec.verdict, rec.rule_index)
        if rec.tier == "k8s":
            rec.tier = DEFAULT_TIER
        return rec


class FlowAggregator:
    """Open records by flow key; ``due`` hands out those whose window has passed."""

    def __init__(self, node: str, window: float = WINDOW) -> None:
        self.node = node
        self.window = window
        self.open: dict[tuple[Any, ...], FlowRecord] = {}
        self.foreign = 0  # logged packets whose prefix is not ours (someone else's log rule)
        self.packets = 0

    def add(self, pkt: LoggedPacket, now: float) -> None:
        rid = RuleId.parse(pkt.prefix)
        if rid is None:
            self.foreign += 1
            return
        self.packets += 1
        key = (pkt.src, pkt.dst, pkt.dport, pkt.protocol, pkt.prefix)
        rec = self.open.get(key)
        if rec is None:
            rec = self.open[key] = FlowRecord(now, now, self.node, pkt.src, pkt.dst, pkt.dport, pkt.protocol,
                                              rid.verdict, rid.direction, rid.tier, list(rid.policies), rid.index,
                                              rid.describe(), action=rid.action)
        rec.last = now
        rec.packets += 1
        rec.bytes += pkt.length

    def next_due(self) -> float | None:
        """When the oldest open record closes (None: nothing open)."""
        if not self.open:
            return None
        return min(r.time for r in self.open.values()) + self.window

    def due(self, now: float, *, everything: bool = False) -> list[FlowRecord]:
        out = [k for k, r in self.open.items() if everything or now - r.time >= self.window]
        return sorted((self.open.pop(k) for k in out), key=lambda r: r.time)


class FlowRing:
    """The bounded two-file ring of one node (see the module docstring)."""

    def __init__(self, path: str, capacity: int = CAPACITY) -> None:
        self.path = path
        self.capacity = capacity
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.count = _count_lines(path)
        self.written = 0

    def append(self, records: Iterable[FlowRecord]) -> None:
        lines = [json.dumps(r.to_dict(), separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return
        if self.count + len(lines) > self.capacity:
            if os.path.exists(self.path):
                os.replace(self.path, self.path + ".1")
            self.count = 0
        with open(self.path, "a") as f:
            f.write("".join(lines))
        self.count += len(lines)
        self.written += len(lines)


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def _parse(line: str) -> FlowRecord | None:
    try:
        return FlowRecord.from_dict(json.loads(line))
    except (ValueError, KeyError, TypeError):  # a line cut by a crash mid-write
        return None


def read_ring(path: str) -> list[FlowRecord]:
    """Every record a node's ring holds, oldest first."""
    out: list[FlowRecord] = []
    for p in (path + ".1", path):
        try:
            with open(p) as f:
                out += [r for r in map(_parse, f) if r is not None]
        except FileNotFoundError:
            pass
    return out


def follow_rings(paths: list[str], stop_after: float | None = None, poll: float = 0.05) -> Iterator[FlowRecord]:
    """New records of the rings at ``paths`` as they are written (rotation included); stops
    after ``stop_after`` seconds when given."""
    pos: dict[str, tuple[int, int]] = {}
    for p in paths:
        try:
            st = os.stat(p)
            pos[p] = (st.st_ino, st.st_size)
        except FileNotFoundError:
            pos[p] = (0, 0)
    end = None if stop_after is None else time.monotonic() + stop_after
    while end is None or time.monotonic() < end:
        for p in paths:
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            ino, off = pos[p]
            if st.st_ino != ino:  # rotated: the rest of the old file, then the new one
                if ino:
                    yield from _tail(p + ".1", off)
                off = 0
            if st.st_size > off:
                with open(p) as f:
                    f.seek(off)
                    chunk = f.read()
                done = chunk.rfind("\n") + 1
                for line in chunk[:done].splitlines():
                    rec = _parse(line)
                    if rec is not None:
                        yield rec
                off += len(chunk[:done].encode())
            pos[p] = (st.st_ino, off)
        time.sleep(poll)


def _tail(path: str, offset: int) -> Iterator[FlowRecord]:
    try:
        with open(path) as f:
            f.seek(offset)
            for line in f:
                rec = _parse(line)
                if rec is not None:
                    yield rec
    except FileNotFoundError:
        return


class FlowLogMetrics:
    """The flow logger's own series: what it read and wrote, and what it lost."""

    def __init__(self, telemetry: Telemetry) -> None:
        verdict = ("verdict",)
        packets = telemetry.counter("podnet_flow_log_packets_total",
                                    "Logged packets the flow logger read, by verdict (drops are rate-limited in "
                                    "the kernel: podnet_policy_denied_packets_total counts them all).", verdict)
        records = telemetry.counter("podnet_flow_log_records_total",
                                    "Flow records written to the node's ring, by verdict.", verdict)
        self.packets = {v: packets.labels(v) for v in VERDICTS}
        self.records = {v: records.labels(v) for v in VERDICTS}
        self.lost = telemetry.counter("podnet_flow_log_overruns_total",
                                      "Receive overruns: the kernel dropped logs while the flow logger was behind "
                                      "(never packets).").labels()
        self.foreign = telemetry.counter("podnet_flow_log_foreign_packets_total",
                                         "Logged packets whose prefix is not a podnet rule identity.").labels()
