"""A node's flow logger stepping in a thread for as long as a test needs it (the process's
loop, without the process), always stopped and closed afterwards."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from podnet.agent.flow_logger import FlowLogger, FlowLoggerConfig
from podnet.telemetry.prom import PromTelemetry


@contextmanager
def running_flow_logger(node: str, state_dir: str, netns: str, telemetry: PromTelemetry) -> Iterator[FlowLogger]:
    logger = FlowLogger(FlowLoggerConfig(node, state_dir, netns=netns), telemetry)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            logger.step(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield logger
    finally:
        stop.set()
        thread.join(5)
        logger.close()
