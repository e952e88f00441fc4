"""The node's flow logger (``podnet flow-logger``): NFLOG → aggregated records → the node's ring.

A process of its own beside the policy loop, supervised like it: the policy loop owns the table
and its log statements, this one only reads what they send up, so a slow disk or a flood of
logs never delays a policy change. Without it nothing is bound to the NFLOG group and the
kernel drops the logs at once: stopping the service switches a node's flow logs off.
"""
from __future__ import annotations

import logging
import select
import threading
import time
from dataclasses import dataclass

from podnet.dataplane.nft.flowlog import GROUP_ALLOWED, GROUP_DROPPED
from podnet.kernel.nflog import NflogReader
from podnet.telemetry.api import NULL, Telemetry
from podnet.telemetry.flows import (
    CAPACITY,
    WINDOW,
    FlowAggregator,
    FlowLogMetrics,
    FlowRecord,
    FlowRing,
    flows_path,
)
from podnet.telemetry.serving import open_metrics

from .guard import require_node_namespace

log = logging.getLogger("podnet.agent.flow_logger")
IDLE_WAIT = 0.5
#: allowed connections come in batches: at most 10 ms late, up to 64 logs at a time
ALLOWED_BATCH = {"timeout": 1, "qthresh": 64, "nlbufsiz": 1 << 16}


@dataclass(frozen=True)
class FlowLoggerConfig:
    node: str
    state_dir: str
    netns: str | None = None
    host_network: bool = False
    window: float = WINDOW
    capacity: int = CAPACITY
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"


class FlowLogger:
    """One bound NFLOG group, its aggregator and ring; ``step`` handles what is ready."""

    def __init__(self, config: FlowLoggerConfig, telemetry: Telemetry = NULL) -> None:
        self.metrics = FlowLogMetrics(telemetry)
        self.readers = [NflogReader(GROUP_DROPPED, config.netns)]
        try:
            self.readers.append(NflogReader(GROUP_ALLOWED, config.netns, **ALLOWED_BATCH))
        except BaseException:
            self.readers[0].close()
            raise
        self.aggregator = FlowAggregator(config.node, config.window)
        self.ring = FlowRing(flows_path(config.state_dir, config.node), config.capacity)

    def step(self, max_wait: float = IDLE_WAIT) -> None:
        due = self.aggregator.next_due()
        wait = max_wait if due is None else max(0.0, min(max_wait, due - time.time()))
        ready, _, _ = select.select(self.readers, [], [], wait)
        now, foreign = time.time(), self.aggregator.foreign
        for reader in ready:
            lost = reader.lost
            for pkt in reader.read():
                self.aggregator.add(pkt, now)
            self.metrics.lost.inc(reader.lost - lost)
        self.metrics.foreign.inc(self.aggregator.foreign - foreign)
        self._write(self.aggregator.due(time.time()))

    def _write(self, records: list[FlowRecord]) -> None:
        self.ring.append(records)
        for rec in records:
            self.metrics.records[rec.verdict].inc()
            self.metrics.packets[rec.verdict].inc(rec.packets)

    def close(self) -> None:
        self._write(self.aggregator.due(time.time(), everything=True))
        for reader in self.readers:
            reader.close()

    @property
    def lost(self) -> int:
        """Receive overruns: logs the kernel dropped while this process was behind."""
        return sum(r.lost for r in self.readers)


def run_flow_logger(config: FlowLoggerConfig, stop: threading.Event) -> None:
    """Record this node's policy decisions until ``stop``."""
    require_node_namespace("flow logger", "NFLOG group binding", target=config.netns,
                           host_network=config.host_network)
    metrics = open_metrics(config.metrics_port, config.metrics_host)
    try:
        logger = FlowLogger(config, metrics.telemetry)
    except BaseException:
        metrics.close()
        raise
    log.info("flow logger for node %s bound to NFLOG groups %d (drops) and %d (allowed)", config.node,
             GROUP_DROPPED, GROUP_ALLOWED)
    try:
        while not stop.is_set():
            logger.step()
    finally:
        logger.close()
        metrics.close()
