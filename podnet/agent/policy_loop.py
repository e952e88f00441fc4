"""A node's policy enforcement loop as its own process (``python -m podnet.agent.policy_loop``),
run inside the node's namespace: snapshot → ``PolicyReconciler`` → wait for a store change or
the resync timer → again. The same reconciler can be put in the agent's reconciler list instead.

Stopping it (SIGTERM, or SIGKILL) leaves the table in the kernel: isolated pods stay isolated
until another loop takes over and reconciles from what is there.
"""
from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import time
from typing import Any

from podnet.errors import PodnetError

from .policy import PolicyReconciler
from .policy_view import LiveView

RESYNC_SECONDS = 2.0


def run(node: str, state_dir: str, resync: float = RESYNC_SECONDS, netns: str | None = None,
        host_network: bool = False) -> None:
    from podnet.store.open import open_store

    from .guard import require_node_namespace

    require_node_namespace("policy loop", "nftables rules", target=netns, host_network=host_network)

    store = open_store(state_dir, bootstrap=False)
    rec = PolicyReconciler(node, netns=netns, state_dir=state_dir)
    view = LiveView(store)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    first = True
    try:
        while not stopping:
            rec.reconcile_view(view)  # a failed pass is logged and in its status; the old rules stay
            if first:
                # The cluster view is long-lived: move it out of the collector's sight so a full
                # collection does not walk it in the middle of a pass (a latency spike).
                gc.collect()
                gc.freeze()
                first = False
            deadline = time.monotonic() + resync
            while not stopping and time.monotonic() < deadline:
                if next(iter(store.kv.watch("", view.revision + 1, timeout=0.25)), None) is not None:
                    break
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="podnet-policy")
    ap.add_argument("--node", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--resync", type=float, default=RESYNC_SECONDS)
    ap.add_argument("--netns", default=None, help="Program this namespace instead of the current one.")
    ap.add_argument("--host-network", action="store_true",
                    help="This machine is the node: program its own namespace.")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        run(args.node, args.state_dir, args.resync, args.netns, args.host_network)
    except PodnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
