"""A watch consumer left behind compaction, on a loopback etcd cluster (a fault test and
bench/faults_converge.py): the policy loop's ``LiveView`` on a ``LoopRunner``, whose watch
stream breaks (its member SIGKILLed) while it is busy with a pass; meanwhile the others write
and the history is compacted past the consumer's revision. Measured: how long, once it tries
again, until it re-listed and holds the store's state, and until it follows the watch again."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from podnet.agent.policy_view import LiveView
from podnet.agent.runner import LoopRunner, StoreChanges, Timing
from podnet.cluster.etcd import EtcdCluster, Member
from podnet.store.api import Compare, Put
from podnet.store.resources import ResourceStore

from .etcd_lab import client

BATCH = 100  # keys per write transaction


@dataclass
class BehindCompaction:
    killed: Member  # the member the consumer's stream was on (the caller starts it again)
    compacted_at: int  # the revision history was compacted to
    consumer_at: int  # the consumer's revision when its stream broke
    relisted: float  # seconds from its next try until it held the store's state
    resumed: float  # then: seconds from a write until it saw it
    full_reads: int  # full lists the consumer made after its first (1: one re-list, no more)
    consistent: bool  # its view equals a fresh list of the store


def _wait(cond: object, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(what)
        time.sleep(0.001)
    return time.monotonic() - t0


def behind_compaction(cluster: EtcdCluster, writes: int, prefix: str = "/bench/compaction/",
                      timeout: float = 30.0) -> BehindCompaction:
    writer = client(cluster)
    kv = client(cluster)
    view = LiveView(ResourceStore(kv))
    gate, busy, stop = threading.Event(), threading.Event(), threading.Event()
    gate.set()

    def run_pass() -> int:
        if not gate.is_set():
            busy.set()
            gate.wait()
        view.poll()
        return view.revision

    runner = LoopRunner("watch-consumer", run_pass, StoreChanges(kv), Timing(max_interval=1.0), stop=stop)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        writer.create(f"{prefix}start", {"i": -1})
        start = writer.revision()
        _wait(lambda: view.revision >= start, timeout, "the consumer did not catch up")
        first_reads = view.full_reads
        # the consumer is busy with a pass (it waits on the gate) when its member dies
        gate.clear()
        writer.create(f"{prefix}wake", {})
        _wait(busy.is_set, timeout, "the consumer did not start a pass")
        consumer_at = view.revision
        member = next(m for m in cluster.members if m.client_url == kv.client.endpoints[kv.client.order()[0]].url)
        cluster.kill(member.name)
        for base in range(0, writes, BATCH):
            keys = [f"{prefix}{i:06d}" for i in range(base, min(writes, base + BATCH))]
            # compare-guarded, as podnet's writes are: one whose answer the kill lost is settled
            writer.txn([Compare(k, 0) for k in keys], [Put(k, {"pad": "x" * 100}) for k in keys])
        compacted = writer.revision()
        writer.compact(compacted)
        writer.create(f"{prefix}end", {"writes": writes})
        end = writer.revision()
        gate.set()
        relisted = _wait(lambda: view.revision >= end and f"{prefix}end" in view.snapshot().raw, timeout,
                         "the consumer did not re-list after the compaction")
        writer.create(f"{prefix}after", {})
        after = writer.revision()
        resumed = _wait(lambda: view.revision >= after and f"{prefix}after" in view.snapshot().raw, timeout,
                        "the consumer did not follow the watch after re-listing")
        records, rev = writer.list("")
        _wait(lambda: view.revision >= rev, timeout, "the consumer fell behind")
        mine = {k: v for k, v in view.snapshot().raw.items() if k.startswith(prefix)}
        consistent = view.revision == rev and mine == {r.key: r.value for r in records if r.key.startswith(prefix)}
        return BehindCompaction(member, compacted, consumer_at, relisted, resumed,
                                view.full_reads - first_reads, consistent)
    finally:
        gate.set()
        stop.set()
        thread.join(10)
        kv.close()
        writer.close()
