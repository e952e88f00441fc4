"""Atomic apply of one nftables table through libnftables' JSON API, with read-back.

One ``NftApplier`` per table and node namespace (``inet podnet`` for policy, ``ip podnet-nat``
for natOutgoing, …). ``sync(desired)`` diffs the desired table against what the kernel has
(read back, or the model kept since the last successful commit), and commits the difference
as ONE nftables transaction: either all of it lands or none (a raw netlink batch when
``netlink`` encodes every command, else through libnftables). A failed commit drops the model,
reads the kernel back and retries once from the truth. The table is not owned by a process, so
the rules stay when the agent dies (fail closed). Only the applier's own table is touched.

``apply_elements`` is the per-change path: commands planned against the model (the last
committed table) — a pod change's elements, a policy change's chain rewrites, new and removed
chains and sets — go to the kernel as one raw netlink batch (``netlink``), without the
listing libnftables does before every commit, so a change costs its own size rather than the
table's (apart from the kernel's own check of the table's jumps, which it runs on any commit
that adds a rule). The model is checked against the kernel by ``sync(read_back=True)`` (the
resync timer) and after any failed commit.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from podnet.dataplane.nft.diff import SyncPlan, plan_sync
from podnet.dataplane.nft.model import POLICY_TABLE, NftTable, TableId, TableModel, parse_listing
from podnet.errors import DataplaneError

from .. import netns as _netns
from . import netlink as _nl


@dataclass(frozen=True)
class RuleCounter:
    """A rule's packet counter (what ``explain --trace`` reads)."""

    chain: str
    comment: str
    packets: int
    bytes: int


class NftApplier:
    """Keeps one table (``table``) of one network namespace (None: the caller's) in sync."""

    def __init__(self, netns_name: str | None = None, *, table: TableId = POLICY_TABLE,
                 raw_elements: bool = True, raw_sync: bool = False) -> None:
        self.netns = netns_name
        self.table = table
        #: per-change updates as raw netlink batches (False: through libnftables, which lists
        #: the table before each commit; kept for comparison and as a fallback)
        self.raw_elements = raw_elements
        #: whole syncs as raw netlink batches too (the service table: a first sync at 10,000
        #: Services); otherwise libnftables commits them
        self.raw_sync = raw_sync
        self._nft: Any = None
        #: the model of the kernel's table: what the last successful commit left there
        self._cache: TableModel | None = None
        self._lock = threading.Lock()
        self._elements: _nl.ElementSocket | None = None
        self.last_plan: SyncPlan | None = None
        self.last_seconds = 0.0
        self.last_path = ""

    @contextmanager
    def _inside(self) -> Iterator[Any]:
        """The libnftables context, used with the calling thread inside the namespace (the
        netlink socket must be opened and used there)."""
        if self.netns is None:
            yield self._ctx()
            return
        with _netns.enter(self.netns):
            yield self._ctx()

    def _ctx(self) -> Any:
        if self._nft is None:
            import nftables

            nft = nftables.Nftables()
            nft.set_json_output(True)
            nft.set_handle_output(False)
            self._nft = nft
        return self._nft

    @property
    def _where(self) -> str:
        return f"nftables table {self.table} in {self.netns or 'this namespace'}"

    def _run(self, nft: Any, cmds: list[dict[str, Any]]) -> dict[str, Any]:
        rc, out, err = nft.json_cmd({"nftables": cmds})
        if rc != 0:
            raise DataplaneError(f"nftables rejected the {self.table} update in "
                                 f"{self.netns or 'this namespace'}: {str(err).strip()}",
                                 target=self._where, retryable=False,
                                 hint=f"nothing was changed (one transaction); run `nft list table {self.table}` "
                                      "in the node namespace to compare")
        result: dict[str, Any] = out or {}
        return result

    def _listing(self, nft: Any) -> list[dict[str, Any]] | None:
        rc, out, _ = nft.json_cmd({"nftables": [{"list": {"table": {"family": self.table.family,
                                                                     "name": self.table.name}}}]})
        if rc != 0:
            return None
        return [i for i in (out or {}).get("nftables", []) if "metainfo" not in i]

    def _parse(self, items: list[dict[str, Any]] | None) -> NftTable | None:
        return None if items is None else parse_listing(self.table, items)

    def read(self) -> NftTable | None:
        """The live table, or None when it does not exist."""
        with self._lock, self._inside() as nft:
            items = self._listing(nft)
        return self._parse(items)

    def sync(self, desired: NftTable, *, read_back: bool = False) -> SyncPlan:
        """Make the kernel hold ``desired``; returns the plan that was committed (maybe empty).

        ``read_back`` ignores the model and diffs against the kernel (drift repair on resync).
        """
        if desired.id != self.table:
            raise ValueError(f"this applier keeps {self.table}, not {desired.id}")
        t0 = time.perf_counter()
        with self._lock, self._inside() as nft:
            observed = None if read_back or self._cache is None else self._cache.snapshot()
            if observed is None:
                observed = self._parse(self._listing(nft))
            plan = plan_sync(desired, observed)
            how = "none"
            if not plan.empty:
                try:
                    if self.raw_sync:
                        how = self._commit_elements(plan.commands, desired)
                    else:
                        self._run(nft, plan.commands)
                        how = "libnftables"
                except DataplaneError:
                    # The model may have been stale (someone changed the table): retry from the truth.
                    self._cache = None
                    plan = plan_sync(desired, self._parse(self._listing(nft)))
                    if not plan.empty:
                        self._run(nft, plan.commands)
                        how = "libnftables"
            self._cache = desired
        self.last_plan = plan
        self.last_path = how
        self.last_seconds = time.perf_counter() - t0
        return plan

    def apply_elements(self, cmds: list[dict[str, Any]], model: TableModel,
                       on_commit: Callable[[], None] | None = None) -> str:
        """Commit commands computed against the model (one transaction): element changes, and
        chain, rule and set commands of a policy change; ``on_commit`` then brings ``model``
        (a live table) to the result, and it becomes the model of the kernel. On failure the
        model is dropped (the next sync reads the kernel back) and it raises. Returns the way
        it went: "netlink" (a raw batch, no listing: the cost follows the change, not the
        table), "libnftables" or "none"."""
        with self._lock:
            if self._cache is None:
                raise DataplaneError("no synced table to update", target=self._where, retryable=True,
                                     hint="sync the whole table first")
            how = "none"
            try:
                if cmds:
                    how = self._commit_elements(cmds, self._cache)
            except Exception:
                self._cache = None  # whatever happened, the next sync reads the kernel back
                raise
            if on_commit is not None:
                try:
                    on_commit()
                except BaseException:
                    self._cache = None  # the model may be half updated: read the kernel next time
                    raise
            self._cache = model
        self.last_path = how
        return how

    def _commit_elements(self, cmds: list[dict[str, Any]], model: TableModel) -> str:
        sock = self._element_socket() if self.raw_elements else None
        encoded = None if sock is None else _nl.encode(cmds, self.table, model.key_info, sock.seq + 1)
        if sock is None or encoded is None:
            with self._inside() as nft:
                self._run(nft, cmds)
            return "libnftables"
        try:
            sock.commit(*encoded)
        except OSError as exc:
            rejected = isinstance(exc, _nl.NetlinkRejected)
            if not rejected:  # the socket itself failed: open a new one
                sock.close()
                self._elements = None
            raise DataplaneError(f"the kernel rejected the {self.table} element update in "
                                 f"{self.netns or 'this namespace'}: {exc}", target=self._where,
                                 retryable=not rejected,
                                 hint="nothing was changed (one transaction); the next sync reads the table back"
                                 ) from exc
        return "netlink"

    def _element_socket(self) -> _nl.ElementSocket:
        if self._elements is None:
            if self.netns is None:
                self._elements = _nl.ElementSocket()
            else:
                with _netns.enter(self.netns):
                    self._elements = _nl.ElementSocket()  # bound to the namespace for good
        return self._elements

    def model_matches_kernel(self) -> bool:
        """Whether the kernel holds exactly the model (the last committed table): a drift check
        that changes nothing. False when there is no model or no table."""
        with self._lock:
            model = self._cache
            with self._inside() as nft:
                items = self._listing(nft)
        if model is None or items is None:
            return False
        return plan_sync(model.snapshot(), parse_listing(self.table, items)).empty

    def remove(self) -> bool:
        """Delete the table (idempotent): True if it was there."""
        with self._lock, self._inside() as nft:
            self._cache = None
            if self._listing(nft) is None:
                return False
            self._run(nft, [{"delete": {"table": {"family": self.table.family, "name": self.table.name}}}])
            return True

    def counters(self) -> list[RuleCounter]:
        """Every rule's counter, in chain order (rules without a counter are left out)."""
        with self._lock, self._inside() as nft:
            items = self._listing(nft) or []
        out = []
        for item in items:
            rule = item.get("rule")
            if not rule:
                continue
            for e in rule.get("expr", ()):
                if isinstance(e, dict) and isinstance(e.get("counter"), dict):
                    c = e["counter"]
                    out.append(RuleCounter(rule["chain"], rule.get("comment", ""), int(c.get("packets", 0)),
                                           int(c.get("bytes", 0))))
        return out
