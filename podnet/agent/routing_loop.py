"""A node's routing loop as its own process (``python -m podnet.agent.routing_loop``), run
inside the node's namespace: snapshot -> reconcile -> wait for a store change or the resync
timer -> again. ``podnet up`` starts one per node next to the node agent; the same
``RoutingReconciler`` can equally be plugged into the agent's reconciler list.

It also publishes the node's VTEP MAC and address in its Calico Node resource, which is how
the other nodes learn them (Flannel keeps them in node annotations)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Callable, TextIO

from podnet.errors import Compacted, PodnetError
from podnet.ipam.blocks import BLOCKS
from podnet.model import BGPConfiguration, BGPPeer, CalicoNode, IPPool, Node
from podnet.store.resources import REGISTRY

from .routing import RoutingReconciler, node_run_dir

RESYNC_SECONDS = 5.0
# What facts_from_snapshot and publish_vtep read: v1 and Calico nodes, pools, BGP resources,
# IPAM blocks (their affinities say which node routes which block).
ROUTING_KEYS = (*(f"{REGISTRY}{cls.PLURAL}/" for cls in (Node, CalicoNode, IPPool, BGPConfiguration, BGPPeer)),
                BLOCKS)


def cluster_backend(state_dir: str) -> str:
    """The backend ``podnet up`` chose, from the cluster record."""
    try:
        with open(os.path.join(state_dir, "cluster.json")) as f:
            return json.load(f)["backend"]
    except (OSError, ValueError, KeyError):
        raise PodnetError(f"no cluster recorded in {state_dir}", hint="start the cluster with `podnet up`") from None


def publish_vtep(store: Any, node: str, vtep: dict[str, Any] | None) -> bool:
    """Write the VTEP MAC/address into the node's Calico Node if they differ. True if written."""
    if not vtep:
        return False
    cur = store.get(CalicoNode, node)
    if cur is None:
        return False
    if cur.spec.vxlan_tunnel_mac_addr == vtep["mac"] and cur.spec.ipv4_vxlan_tunnel_addr == vtep["address"]:
        return False
    data = cur.to_dict()
    data["spec"]["vxlanTunnelMACAddr"] = vtep["mac"]
    if vtep.get("address"):
        data["spec"]["ipv4VXLANTunnelAddr"] = vtep["address"]
    store.update(CalicoNode.model_validate(data), check_version=False)
    return True


def run(node: str, state_dir: str, backend: str | None = None, resync: float = RESYNC_SECONDS,
        host_network: bool = False) -> None:
    """Reconcile until SIGTERM, in the namespace this process runs in (the node's)."""
    from podnet.store.open import open_store

    from .guard import require_node_namespace

    require_node_namespace("routing loop", "routes, VXLAN devices, NAT table and BGP daemon",
                           host_network=host_network)
    store = open_store(state_dir, bootstrap=False)
    rec = RoutingReconciler(node, backend or cluster_backend(state_dir), state_dir)
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with open(os.path.join(node_run_dir(state_dir, node), "routing.log"), "a", buffering=1) as log:
        loop(store, rec, node, log, resync, lambda: stopping)
    store.close()


def loop(store: Any, rec: Any, node: str, log: TextIO, resync: float, stopping: Callable[[], bool]) -> None:
    """Reconcile, publish the VTEP, wait for a change; until ``stopping()``. A pass the store
    or the kernel fails is logged and retried: the loop is the node's only routing process."""
    def note(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=log)

    while not stopping():
        try:
            snap = store.snapshot()
        except Exception as exc:
            note(f"ERROR store: {type(exc).__name__}: {exc}")
            _sleep_unless(stopping, resync)
            continue
        try:
            st = rec.reconcile(snap)
            for line in st.changes:
                note(line)
            for line in st.errors:
                note(f"ERROR {line}")
            publish_vtep(store, node, st.vtep)
        except Exception as exc:
            note(f"ERROR pass failed: {type(exc).__name__}: {exc}")
        # Wake on the first change routing depends on (or the resync timer, which repairs
        # drift), then let a burst of changes settle before planning again.
        try:
            if wait_for_routing_change(store.kv, snap.revision, time.monotonic() + resync, stopping):
                time.sleep(0.05)
        except Exception as exc:
            note(f"ERROR store watch: {type(exc).__name__}: {exc}")
            _sleep_unless(stopping, resync)


def _sleep_unless(stopping: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for_routing_change(kv: Any, revision: int, deadline: float, stopping: Callable[[], bool]) -> bool:
    """True as soon as a key routing reads changed after ``revision`` (or the history is gone);
    False at ``deadline`` or when ``stopping()``. Pod churn (status writes, IPAM handles) is
    skipped: it changes no route, and waking every node's loop for it costs a full pass each."""
    seen = revision
    while not stopping() and time.monotonic() < deadline:
        try:
            for ev in kv.watch("", seen + 1, timeout=0.25):
                seen = ev.revision
                if ev.key.startswith(ROUTING_KEYS):
                    return True
                if stopping() or time.monotonic() >= deadline:
                    return False
        except Compacted:  # history gone: a fresh snapshot is the answer anyway
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="podnet-routing")
    ap.add_argument("--node", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--backend")
    ap.add_argument("--resync", type=float, default=RESYNC_SECONDS)
    ap.add_argument("--host-network", action="store_true",
                    help="allow running in the machine's own namespace (a real node, not the lab)")
    args = ap.parse_args(argv)
    try:
        run(args.node, args.state_dir, args.backend, args.resync, args.host_network)
    except PodnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
