"""The IPAM allocator: Calico's block algorithm as compare-and-swap transactions on the store.

Order of preference for a node (as Calico does): a free address in a block already affine to
the node; else claim a new block for it (pending affinity → block → confirmed affinity, so two
nodes racing for one block cannot both win); else borrow from another node's block, unless
``strictAffinity`` forbids it. Every change is one store transaction guarded by the
mod_revisions it read; a lost race re-reads and retries, so concurrent CNI calls in many
processes never hand out one address twice.
"""
from __future__ import annotations

import ipaddress
import random
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import PodnetError, ResourceExhausted
from podnet.model.calico import IPPool
from podnet.model.calico_selector import parse_selector
from podnet.store.api import Compare, Delete, Put, Record, Store

from .blocks import (
    AFFINITIES,
    BLOCKS,
    CONFIG_KEY,
    HANDLES,
    NODES,
    POOLS,
    Block,
    LeakTracker,
    PoolUsage,
    affinity_key,
    block_in_pool,
    block_key,
    handle_key,
    leaked_handles,
    next_free_block,
    usage,
)

DEFAULT_POOL_NAME = "default-ipv4-ippool"
DEFAULT_POOL_CIDR = "10.244.0.0/16"


@dataclass(frozen=True)
class Assignment:
    """An address handed to one handle: the address, its block and its pool."""

    handle_id: str
    ip: str
    block: str
    pool: str
    # False: the handle already held it (a repeated ADD, whose undo must not free it); not part
    # of the value: the same address for the same handle is the same assignment.
    fresh: bool = field(default=True, compare=False)

    @property
    def cidr(self) -> str:
        """The pod's address as CNI reports it: a /32 (/128), as Calico does."""
        addr = ipaddress.ip_address(self.ip)
        return f"{addr}/{addr.max_prefixlen}"


class IPAM:
    """Allocate and release pod addresses in ``store`` (keys under /podnet/ipam/)."""

    def __init__(self, store: Store, *, default_cidr: str = DEFAULT_POOL_CIDR, retries: int = 500) -> None:
        self.store = store
        self.default_cidr = default_cidr
        self.retries = retries

    # ---- pools and config -------------------------------------------------------------

    def pools(self) -> list[IPPool]:
        """The pools pods and tunnels take addresses from (LoadBalancer pools hold Service
        addresses, which the Service allocator hands out)."""
        recs, _ = self.store.list(POOLS)
        return [p for p in map(self._pool, recs) if p.spec.allows("Workload") or p.spec.allows("Tunnel")]

    def _pool(self, rec: Record) -> IPPool:
        """An IPPool validated once per version of it: every CNI ADD reads the pools, and model
        validation was the largest CPU cost of an assign after the store itself. A key's
        (create_revision, mod_revision) names exactly one value within one store."""
        try:
            cache = _PARSED_POOLS.setdefault(self.store, {})
        except TypeError:  # a store that cannot be weakly referenced: no cache
            return IPPool.model_validate(rec.value)
        ident = (rec.key, rec.create_revision, rec.mod_revision)
        pool = cache.get(ident)
        if pool is None:
            if len(cache) > 256:  # old versions of edited pools: bounded, never needed again
                cache.clear()
            pool = cache[ident] = IPPool.model_validate(rec.value)
        return pool

    def ensure_default_pool(self, cidr: str | None = None) -> list[IPPool]:
        """Create ``default-ipv4-ippool`` (blockSize 26, natOutgoing) when no pool exists."""
        pools = self.pools()
        if pools:
            return pools
        cidr = cidr or self.default_cidr
        block = max(26, ipaddress.ip_network(cidr, strict=False).prefixlen)  # a tiny --pod-cidr is one block
        pool = IPPool.model_validate({
            "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": DEFAULT_POOL_NAME},
            "spec": {"cidr": cidr, "blockSize": block, "ipipMode": "Never",
                     "vxlanMode": "Never", "natOutgoing": True, "nodeSelector": "all()"}})
        self.store.txn([Compare(POOLS + DEFAULT_POOL_NAME, 0)], [Put(POOLS + DEFAULT_POOL_NAME, pool.to_dict())])
        return self.pools()

    def config(self) -> dict[str, Any]:
        rec = self.store.get(CONFIG_KEY)
        return dict(rec.value) if rec else {"strictAffinity": False}

    def set_strict_affinity(self, strict: bool) -> None:
        cfg = self.config()
        cfg["strictAffinity"] = strict
        rec = self.store.get(CONFIG_KEY)
        self.store.txn([Compare(CONFIG_KEY, rec.mod_revision if rec else 0)], [Put(CONFIG_KEY, cfg)])

    def node_labels(self, node: str) -> dict[str, str]:
        rec = self.store.get(NODES + node)
        return dict((rec.value.get("metadata") or {}).get("labels") or {}) if rec else {}

    def eligible_pools(self, node: str) -> list[IPPool]:
        """Enabled pools whose nodeSelector selects the node; raises if there is none."""
        pools = self.ensure_default_pool()
        labels = self.node_labels(node)
        ok = [p for p in pools if not p.spec.disabled and parse_selector(p.spec.node_selector).matches(labels)]
        if not ok:
            names = ", ".join(f"{p.name} ({p.spec.cidr}{', disabled' if p.spec.disabled else ''}, "
                              f"nodeSelector {p.spec.node_selector!r})" for p in pools)
            raise ResourceExhausted(f"no enabled IP pool selects node {node!r}; pools: {names}",
                                    hint="enable a pool or change a pool's nodeSelector to match the node's labels")
        return ok

    # ---- reads ---------------------------------------------------------------------------

    def blocks(self) -> list[Block]:
        recs, _ = self.store.list(BLOCKS)
        return [Block.from_dict(r.value) for r in recs]

    def handles(self) -> dict[str, dict[str, Any]]:
        recs, _ = self.store.list(HANDLES)
        return {r.value["handleID"]: r.value for r in recs}

    def handle(self, handle_id: str) -> dict[str, Any] | None:
        rec = self.store.get(handle_key(handle_id))
        return rec.value if rec else None

    def block_affinities(self) -> dict[str, list[str]]:
        """node → the CIDRs of the blocks affine to it (what routing advertises per node)."""
        out: dict[str, list[str]] = {}
        for b in self.blocks():
            if b.node:
                out.setdefault(b.node, []).append(b.cidr)
        return {n: sorted(c, key=lambda x: ipaddress.ip_network(x)) for n, c in sorted(out.items())}

    def usage(self) -> list[PoolUsage]:
        return usage([(p.name, p.spec.cidr, p.spec.disabled) for p in self.pools()], self.blocks())

    # ---- assign --------------------------------------------------------------------------

    def assign(self, handle_id: str, node: str, attrs: dict[str, Any] | None = None) -> Assignment:
        """One address for ``handle_id`` on ``node``. Idempotent: a handle that already holds an
        address gets the same one back (a retried ADD must not leak a second address)."""
        for attempt in range(self.retries):
            existing = self.store.get(handle_key(handle_id))
            if existing and existing.value.get("ips"):
                v = existing.value
                if v.get("node") and v["node"] != node:  # one attachment on two nodes: one address twice
                    raise PodnetError(f"IPAM handle {handle_id} holds {v['ips'][0]} for node {v['node']!r}, "
                                      f"not {node!r}: one attachment cannot run on two nodes",
                                      hint=f"release it on {v['node']} first (CNI DEL), or delete the pod "
                                           "and create it again")
                return Assignment(handle_id, v["ips"][0], v["blocks"][0], v.get("pool", ""), fresh=False)
            pools = self.eligible_pools(node)
            result = self._try_affine(handle_id, node, pools, existing, attrs)
            if result is None:  # the common case (a free address in an affine block) ends above
                strict = bool(self.config().get("strictAffinity"))
                if self._claim_block(node, pools) is not None:
                    continue  # a new affine block: allocate from it on the next pass
                if not strict:
                    result = self._try_borrow(handle_id, node, pools, existing, attrs)
                if result is None:
                    self._raise_exhausted(node, pools, strict)
            if isinstance(result, Assignment):
                return result
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise PodnetError(f"IPAM could not assign an address for {handle_id} after {self.retries} attempts "
                          "(too much contention on the store)", hint="retry the operation")

    def _raise_exhausted(self, node: str, pools: list[IPPool], strict: bool) -> None:
        names = ", ".join(f"{p.name} ({p.spec.cidr})" for p in pools)
        why = " and strictAffinity forbids borrowing from other nodes' blocks" if strict else ""
        raise ResourceExhausted(f"IP pool {names} is exhausted: no free address for node {node!r}{why}",
                                hint="delete unused pods, add an IPPool, or use a larger pool CIDR")

    def _affine_blocks(self, node: str, pools: list[IPPool]) -> list[Record]:
        recs, _ = self.store.list(f"{AFFINITIES}{node}/")
        out = []
        for aff in recs:
            cidr = aff.value["cidr"]
            if not any(block_in_pool(cidr, p.spec.cidr) for p in pools):
                continue
            brec = self.store.get(block_key(cidr))
            if brec is None or brec.value.get("affinity") != f"host:{node}":
                continue
            if aff.value.get("state") != "confirmed":  # finish a claim interrupted mid-way
                self.store.txn([Compare(aff.key, aff.mod_revision)], [Put(aff.key, {**aff.value, "state": "confirmed"})])
            out.append(brec)
        return out

    def _try_affine(self, handle_id: str, node: str, pools: list[IPPool], existing: Record | None,
                    attrs: dict[str, Any] | None) -> Assignment | object | None:
        for brec in self._affine_blocks(node, pools):
            block = Block.from_dict(brec.value)
            if block.free:
                return self._take(handle_id, node, brec, block, pools, existing, attrs)
        return None

    def _try_borrow(self, handle_id: str, node: str, pools: list[IPPool], existing: Record | None,
                    attrs: dict[str, Any] | None) -> Assignment | object | None:
        recs, _ = self.store.list(BLOCKS)
        for brec in recs:
            block = Block.from_dict(brec.value)
            if block.free and any(block_in_pool(block.cidr, p.spec.cidr) for p in pools):
                return self._take(handle_id, node, brec, block, pools, existing, attrs)
        return None

    def _take(self, handle_id: str, node: str, brec: Record, block: Block, pools: list[IPPool],
              existing: Record | None, attrs: dict[str, Any] | None) -> Assignment | object:
        ordinal = block.first_free()
        assert ordinal is not None
        ip = str(block.address(ordinal))
        pool = next(p.name for p in pools if block_in_pool(block.cidr, p.spec.cidr))
        hval = {"handleID": handle_id, "node": node, "ips": [ip], "blocks": [block.cidr], "pool": pool,
                **(attrs or {})}
        hkey = handle_key(handle_id)
        res = self.store.txn(
            [Compare(brec.key, brec.mod_revision), Compare(hkey, existing.mod_revision if existing else 0)],
            [Put(brec.key, block.assign(ordinal, handle_id).to_dict()), Put(hkey, hval)])
        return Assignment(handle_id, ip, block.cidr, pool) if res.succeeded else _RETRY

    def _claim_block(self, node: str, pools: list[IPPool]) -> str | None:
        """Claim the first unclaimed block of the first pool that has one; None if all are taken."""
        recs, _ = self.store.list(BLOCKS)
        taken = [r.value["cidr"] for r in recs]
        for pool in pools:
            while True:
                cidr = next_free_block(pool.spec.cidr, pool.spec.effective_block_size, taken)
                if cidr is None:
                    break
                if self.claim(node, cidr):
                    return cidr
                taken.append(cidr)
        return None

    def claim(self, node: str, cidr: str) -> bool:
        """Claim one block for a node: pending affinity, then the block, then confirmed.

        False if another node owns the block already (our pending affinity is removed). A
        claim of ours that was interrupted before the block existed is finished here."""
        akey, bkey = affinity_key(node, cidr), block_key(cidr)
        pending = {"node": node, "cidr": cidr, "state": "pending"}
        if not self.store.txn([Compare(akey, 0)], [Put(akey, pending)]).succeeded:
            brec = self.store.get(bkey)  # we claimed it before: ours if the block says so
            if brec is not None:
                return self._owns_or_drop(node, brec, akey)
        if not self.store.txn([Compare(bkey, 0)], [Put(bkey, Block(cidr, f"host:{node}").to_dict())]).succeeded:
            brec = self.store.get(bkey)
            return brec is not None and self._owns_or_drop(node, brec, akey)
        self.store.txn([], [Put(akey, {**pending, "state": "confirmed"})])
        return True

    def _owns_or_drop(self, node: str, brec: Record, akey: str) -> bool:
        """True if the block is the node's (maybe made by a concurrent claim of the same node);
        else the node's affinity to it is stale and is removed while it is still pending."""
        if brec.value.get("affinity") == f"host:{node}":
            return True
        arec = self.store.get(akey)
        if arec is not None and arec.value.get("state") != "confirmed":
            self.store.txn([Compare(akey, arec.mod_revision)], [Delete(akey)])
        return False

    # ---- release -------------------------------------------------------------------------

    def release(self, handle_id: str) -> list[str]:
        """Free every address held by the handle and drop it; [] if it does not exist."""
        for attempt in range(self.retries):
            hrec = self.store.get(handle_key(handle_id))
            if hrec is None:
                return []
            compares = [Compare(hrec.key, hrec.mod_revision)]
            ops: list[Put | Delete] = [Delete(hrec.key)]
            freed: list[str] = []
            for cidr in hrec.value.get("blocks", []):
                brec = self.store.get(block_key(cidr))
                if brec is None:
                    continue
                block, ords = Block.from_dict(brec.value).release_handle(handle_id)
                freed += [str(block.address(o)) for o in ords]
                compares.append(Compare(brec.key, brec.mod_revision))
                ops.append(Put(brec.key, block.to_dict()))
            if self.store.txn(compares, ops).succeeded:
                return freed
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise PodnetError(f"IPAM could not release {handle_id}: too much contention", hint="retry")

    def release_node_blocks(self, node: str) -> list[str]:
        """Drop the affinity of a removed node's empty blocks (blocks in use stay, unaffine)."""
        recs, _ = self.store.list(f"{AFFINITIES}{node}/")
        dropped = []
        for aff in recs:
            brec = self.store.get(block_key(aff.value["cidr"]))
            ops: list[Put | Delete] = [Delete(aff.key)]
            compares = [Compare(aff.key, aff.mod_revision)]
            # A pending affinity may point at a block another node won: that block is not ours to touch.
            mine = brec is not None and Block.from_dict(brec.value).node == node
            if mine:
                assert brec is not None
                block = Block.from_dict(brec.value)
                compares.append(Compare(brec.key, brec.mod_revision))
                ops.append(Delete(brec.key) if not block.allocations else
                           Put(brec.key, Block(block.cidr, None, block.allocations).to_dict()))
            if self.store.txn(compares, ops).succeeded and mine:
                dropped.append(aff.value["cidr"])
        return dropped

    # ---- garbage collection ----------------------------------------------------------------

    def collect_leaks(self, live: Callable[[], set[str]], tracker: LeakTracker, now: float,
                      scope: Callable[[dict[str, Any]], bool] = lambda h: True) -> list[str]:
        """One GC pass: handles unseen in ``live()`` for ``tracker.grace`` seconds AND still
        unseen on a fresh ``live()`` re-check are released. Returns the released handle ids."""
        handles = {h: v for h, v in self.handles().items() if scope(v)}
        due = tracker.due(leaked_handles(handles, live()), now)
        if not due:
            return []
        still = leaked_handles({h: handles[h] for h in due}, live())
        released = []
        for h in sorted(still):
            self.release(h)
            tracker.forget(h)
            released.append(h)
        return released

    def release_not_in(self, valid: Iterable[str], scope: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Release every in-scope handle not listed in ``valid`` (CNI GC: the runtime's
        valid-attachments list is authoritative, so no grace period)."""
        keep = set(valid)
        out = []
        for h, v in self.handles().items():
            if scope(v) and h not in keep:
                self.release(h)
                out.append(h)
        return sorted(out)


_RETRY = object()
_PARSED_POOLS: weakref.WeakKeyDictionary[Store, dict[tuple[str, int, int], IPPool]] = weakref.WeakKeyDictionary()
