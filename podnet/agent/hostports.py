"""The node's host port forwards: this node's pods → ``services/hostports.py`` mappings →
``dataplane/nft/hostports.py`` table → ``NftApplier`` (the ``ip podnet-hostport`` table).

Run by the service proxy beside its own table: the table is small (a node's pods with host
ports), so every change renders it whole and commits the difference in one transaction. The
table exists while the node forwards something and is deleted when it forwards nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.dataplane.nft.hostports import HOSTPORT_TABLE, answers_on_localhost, render_hostports
from podnet.kernel.localnet import enable_route_localnet
from podnet.kernel.nft.apply import NftApplier
from podnet.services.hostports import HostPortMapping

log = logging.getLogger("podnet.proxy")


@dataclass
class HostPortStatus:
    """What the last sync did (part of ``proxy.json``)."""

    forwards: int = 0
    commands: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class HostPortReconciler:
    """Keeps one node's ``ip podnet-hostport`` table equal to its pods' host ports."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.applier = NftApplier(netns, table=HOSTPORT_TABLE)
        self._last: tuple[HostPortMapping, ...] | None = None
        self.status = HostPortStatus()

    def pending(self, host_ports: tuple[Sequence[HostPortMapping], Sequence[str]] | None) -> bool:
        """Whether ``host_ports`` differ from what the kernel was last given (or that failed)."""
        return host_ports is not None and tuple(sorted(host_ports[0])) != self._last

    def reconcile(self, mappings: Sequence[HostPortMapping], problems: Sequence[str] = (), *,
                  read_back: bool = False) -> HostPortStatus:
        """Program ``mappings`` (nothing to do when they did not change, unless ``read_back``)."""
        wanted = tuple(sorted(mappings))
        if wanted == self._last and not read_back:
            return self.status
        self._last = None  # until the kernel holds it
        commands = 0
        if wanted:
            if any(answers_on_localhost(m) for m in wanted) and enable_route_localnet(self.netns):
                log.info("route_localnet enabled: host ports answer on 127.0.0.1")
            commands = len(self.applier.sync(render_hostports(wanted), read_back=read_back).commands)
        elif self.applier.remove():
            commands = 1
        for p in problems:
            log.warning("host port not forwarded: %s", p)
        self._last = wanted
        self.status = HostPortStatus(len(wanted), commands, list(problems))
        return self.status
