"""A watch consumer left behind compaction on a three-member etcd cluster (members on
loopback): the policy loop's live view on its loop runner, whose stream broke with its member
while a pass was running, and whose revision was compacted before it tried again. It re-lists
once, holds the store's state within 2 s, then follows the watch again (no second full read)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.cluster.etcd import EtcdCluster
from podnet.testing.etcd_lab import loopback_cluster
from podnet.testing.watch_lab import behind_compaction

pytestmark = pytest.mark.kernel


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with loopback_cluster(str(tmp_path / "etcd")) as c:
        yield c


def test_a_watch_behind_compaction_relists_and_resumes_within_2_s(cluster: EtcdCluster) -> None:
    r = behind_compaction(cluster, writes=300)
    assert r.consumer_at < r.compacted_at, "the consumer was not behind the compaction"
    assert r.full_reads == 1, f"{r.full_reads} full reads: one re-list, then the watch"
    assert r.consistent, "the consumer's view differs from the store after re-listing"
    assert r.relisted < 2.0, f"re-listed after {r.relisted:.2f} s"
    assert r.resumed < 2.0, f"the next write seen after {r.resumed:.2f} s"
