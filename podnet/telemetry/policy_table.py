"""The policy loop's view of its table, read from the kernel at scrape time: rules and chains
programmed (Felix's ``felix_nft_rules``), local endpoints and active policies (Felix's
``felix_active_local_*``), every counted rule's packets and bytes, and the packets each pod's
default deny dropped per isolating policies (Calico Enterprise's ``calico_denied_packets``).

One family per rule series would cost a labelled child per rule, and even ``*MetricFamily``
values cost prometheus_client a sample object and label validation per series per scrape; the
families are written as text instead (``telemetry.text``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from podnet.dataplane.nft.counts import TableCounts
from podnet.dataplane.nft.dispatch import POD_IFACES
from podnet.dataplane.nft.model import TableId
from podnet.dataplane.nft.stats import PolicyTableStats, policy_table_stats

from .api import Kind, Telemetry
from .snapshot import PrefetchedText
from .text import SeriesText

RULE_LABELS = ("chain", "rule", "verdict")
DENY_LABELS = ("policy", "direction")
#: name, type, help, labels of each family, in the order they are written
FAMILIES: tuple[tuple[str, Kind, str, tuple[str, ...]], ...] = (
    ("podnet_nft_rules", "gauge", "Rules in the table, as the kernel lists them.", ("table",)),
    ("podnet_nft_chains", "gauge", "Chains in the table, as the kernel lists them.", ("table",)),
    ("podnet_policy_local_endpoints", "gauge", "Pods of this node the policy table dispatches "
     "(one per pod interface).", ()),
    ("podnet_policy_active_policies", "gauge", "Policies with rules programmed on this node "
     "(those selecting one of its pods).", ()),
    ("podnet_policy_rule_packets_total", "counter", "Packets each counted rule of the policy table matched; "
     "rule is its comment (policy and manifest field).", RULE_LABELS),
    ("podnet_policy_rule_bytes_total", "counter", "Bytes each counted rule of the policy table matched.",
     RULE_LABELS),
    ("podnet_policy_denied_packets_total", "counter", "Packets dropped because no rule of the policies "
     "isolating a pod allowed them (a default deny, a tier's end), by those policies and direction, or by a "
     "tiered policy's Deny rule, by that policy.", DENY_LABELS),
    ("podnet_policy_denied_bytes_total", "counter", "Bytes of the packets in podnet_policy_denied_packets_total.",
     DENY_LABELS),
)


class PolicyTableCollector:
    """Reads ``read()`` (a ``kernel.nft.dump.TableReader``'s) on each scrape and writes the
    families as text (``telemetry.text``): a rule's series keeps its rendered labels between
    scrapes."""

    def __init__(self, read: Callable[[tuple[str, ...]], TableCounts], table: str) -> None:
        self.read = read
        self.table = table
        self._text = [SeriesText(name, kind, doc, labels) for name, kind, doc, labels in FAMILIES]

    def expose(self) -> str:
        return self.render(policy_table_stats(self.read((POD_IFACES,))))

    def render(self, stats: PolicyTableStats) -> str:
        table = (self.table,)
        series: tuple[Iterable[tuple[tuple[str, ...], float]], ...] = (
            [(table, stats.rules)], [(table, stats.chains)], [((), stats.local_endpoints)],
            [((), stats.active_policies)],
            ((k, v[0]) for k, v in stats.by_rule.items()), ((k, v[1]) for k, v in stats.by_rule.items()),
            ((k, v[0]) for k, v in stats.denied.items()), ((k, v[1]) for k, v in stats.denied.items()))
        return "".join(text.render(samples) for text, samples in zip(self._text, series))


def register_policy_table(telemetry: Telemetry, table: TableId, netns: str | None = None,
                          max_age: float = 1.0) -> PrefetchedText:
    """Export ``table`` of ``netns`` (None: this process's namespace): each scrape serves the
    kernel's values read at most ``max_age`` seconds before it, read ahead of the scrape
    (``telemetry.snapshot``)."""
    from podnet.kernel.nft.dump import TableReader

    served = PrefetchedText(PolicyTableCollector(TableReader(table, netns).read, str(table)), max_age)
    telemetry.register(served)
    return served
