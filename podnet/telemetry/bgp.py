"""The routing loop's BGP sessions, asked of BIRD (``birdc show protocols``) at scrape time,
counted by their BGP state, like the calico-node BIRD exporters."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from podnet.errors import PodnetError
from podnet.kernel.bird import PeerRow

#: RFC 4271's states; every one is exported, so a state with no session reads 0, not absent
STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")


def session_state(row: PeerRow) -> str:
    """A session's BGP state: BIRD's info column starts with it ("Established", "Active
    Socket: …"); a protocol that is down is Idle."""
    word = row.info.split(" ", 1)[0] if row.info else ""
    return word if word in STATES else "Idle"


class BgpCollector:
    def __init__(self, peers: Callable[[], list[PeerRow]]) -> None:
        self.peers = peers

    def describe(self) -> Iterator[Any]:
        yield from _families()

    def collect(self) -> Iterator[Any]:
        up, sessions = _families()
        try:
            rows = self.peers()
        except PodnetError:  # BIRD is not running (yet): no sessions to count, and it says so
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            counted = Counter(session_state(r) for r in rows)
            for state in STATES:
                sessions.add_metric([state], counted.get(state, 0))
        yield from (up, sessions)


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (GaugeMetricFamily("podnet_bird_up", "1 if this node's BIRD answered birdc, else 0."),
            GaugeMetricFamily("podnet_bgp_sessions", "BGP sessions of this node by state.", labels=["state"]))
