"""``podnet flows`` finds every node's ring: in the state directory with the embedded store, in
each node's own state directory on an etcd cluster (where nodes share nothing, as hosts would)."""
from __future__ import annotations

import os
from pathlib import Path

from podnet.cli.flows_cmd import ring_paths
from podnet.cluster.builder import write_state
from podnet.telemetry.flows import FILE


def test_rings_of_the_embedded_store_are_under_the_state_directory(tmp_path: Path) -> None:
    for node in ("n1", "n2"):
        (tmp_path / "nodes" / node).mkdir(parents=True)
    assert ring_paths(str(tmp_path), None) == [str(tmp_path / "nodes" / n / FILE) for n in ("n1", "n2")]
    assert ring_paths(str(tmp_path), "n2") == [str(tmp_path / "nodes" / "n2" / FILE)]


def test_rings_of_an_etcd_cluster_are_in_each_nodes_own_directory(tmp_path: Path) -> None:
    sd, hosts = tmp_path / "state", tmp_path / "hosts"
    write_state(str(sd), {"store": {"kind": "etcd", "hosts": str(hosts)}})
    for node in ("n1", "n2"):
        (hosts / node / "nodes" / node).mkdir(parents=True)
    (hosts / "control-plane").mkdir()  # the controllers' directory: no flow logger there
    (sd / "nodes" / "stale").mkdir(parents=True)  # not where an etcd cluster's nodes write
    want = [os.path.join(hosts, n, "nodes", n, FILE) for n in ("n1", "n2")]
    assert ring_paths(str(sd), None) == want
    assert ring_paths(str(sd), "n1") == want[:1]
