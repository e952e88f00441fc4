"""Semantic diff of two policy sets: which (from, to, port) connections a change opens or closes,
and which policy decides each, before and after.

Both clusters' matrices are computed over the pods they share (by ``ns/name``) and compared row
by row. The changed cells come in products (these sources × these destinations, one traffic
key): sources whose rows changed alike, destinations those rows tell apart. The walk of one pair
of each product, before and after, says why it changed and which policy decides. Pods present on one side only
are listed, not diffed: their connections did not change, they appeared or went.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .bits import set_bits
from .cluster import ClusterState, Endpoint, always_allowed
from .matrix import Matrix, compute_matrix, traffic_keys
from .walk import Walk, direction_walk


@dataclass(frozen=True)
class Product:
    """Every source × every destination changed the same way on one traffic key."""

    sources: tuple[str, ...]
    destinations: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.sources) * len(self.destinations)

    def pairs(self) -> list[tuple[str, str]]:
        return [(s, d) for s in self.sources for d in self.destinations]


@dataclass(frozen=True)
class ChangeGroup:
    """Connections that opened (or closed) on one key for one reason."""

    change: str  # "opened" | "closed"
    key: str
    before: str
    after: str
    #: the policies whose rules (or tier ends) decide, after and before
    policies: tuple[str, ...]
    products: tuple[Product, ...] = field(default=())

    @property
    def count(self) -> int:
        return sum(p.count for p in self.products)

    def by_namespace(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for p in self.products:
            src_ns = _count_ns(p.sources)
            dst_ns = _count_ns(p.destinations)
            for a, na in src_ns.items():
                for b, nb in dst_ns.items():
                    out[(a, b)] = out.get((a, b), 0) + na * nb
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, object]:
        return {
            "change": self.change, "key": self.key, "count": self.count, "policies": list(self.policies),
            "before": self.before, "after": self.after,
            "namespaces": [{"from": a, "to": b, "count": n} for (a, b), n in self.by_namespace().items()],
            "pairs": [[s, d] for p in self.products for s, d in p.pairs()],
        }


@dataclass(frozen=True)
class SemanticDiff:
    keys: tuple[str, ...]
    pods: int
    groups: tuple[ChangeGroup, ...]
    only_old: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()

    @property
    def opened(self) -> int:
        return sum(g.count for g in self.groups if g.change == "opened")

    @property
    def closed(self) -> int:
        return sum(g.count for g in self.groups if g.change == "closed")

    @property
    def changed(self) -> bool:
        return bool(self.groups)

    def to_dict(self) -> dict[str, object]:
        return {"opened": self.opened, "closed": self.closed, "keys": list(self.keys), "pods": self.pods,
                "podsOnlyInOld": list(self.only_old), "podsOnlyInNew": list(self.only_new),
                "changes": [g.to_dict() for g in self.groups]}

    def render(self, max_pairs: int = 5) -> str:
        lines = [f"{self.opened} connection(s) opened, {self.closed} closed "
                 f"({', '.join(self.keys)}; {self.pods} pods on both sides)"]
        if self.only_old:
            lines.append(f"pods only in the old cluster (not compared): {', '.join(self.only_old)}")
        if self.only_new:
            lines.append(f"pods only in the new cluster (not compared): {', '.join(self.only_new)}")
        for change in ("closed", "opened"):
            groups = [g for g in self.groups if g.change == change]
            if not groups:
                continue
            lines.append("")
            lines.append(f"{change} ({sum(g.count for g in groups)}):")
            by_policy: dict[tuple[str, ...], list[ChangeGroup]] = {}
            for g in groups:
                by_policy.setdefault(g.policies, []).append(g)
            for policies, members in by_policy.items():
                lines.append(f"  by {', '.join(policies) or 'no policy'}:")
                for g in members:
                    lines.append(f"    {g.key}: {g.count} connection(s)")
                    for (a, b), n in g.by_namespace().items():
                        lines.append(f"      {a} → {b}: {n}")
                    pairs = [pair for p in g.products for pair in p.pairs()]
                    shown = ", ".join(f"{s} → {d}" for s, d in pairs[:max_pairs])
                    more = f" (+{len(pairs) - max_pairs} more)" if len(pairs) > max_pairs else ""
                    lines.append(f"      e.g. {shown}{more}")
                    lines.append(f"      before: {g.before}")
                    lines.append(f"      after:  {g.after}")
        return "\n".join(lines)


def _count_ns(keys: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in keys:
        ns = key.split("/", 1)[0]
        out[ns] = out.get(ns, 0) + 1
    return out


#: how many products (the largest first) get their own walks; the rest are grouped by namespaces
EXPLAIN_BUDGET = 2000
UNEXPLAINED = "not explained (more changed groups than the explanation budget): ask podnet explain for a pair"


def semantic_diff(old: ClusterState, new: ClusterState, ports: Sequence[int], protocols: Sequence[str],
                  budget: int = EXPLAIN_BUDGET) -> SemanticDiff:
    """What changes between ``old`` and ``new`` for the pods both have, on these ports.

    The ``budget`` largest products are explained (one pair walked before and after); a change
    bigger than that is still counted and listed in full, the rest grouped by namespaces."""
    common = sorted(set(old.by_key) & set(new.by_key))
    before = compute_matrix(old, ports, protocols, [old.by_key[k] for k in common])
    after = compute_matrix(new, ports, protocols, [new.by_key[k] for k in common])
    found = [(key, port, proto, product, change) for key, port, proto in traffic_keys(ports, protocols)
             for product, change in _products(before, after, key)]
    found.sort(key=lambda item: -item[3].count)
    groups: dict[tuple[str, str, str, str, tuple[str, ...]], list[Product]] = {}
    for n, (key, port, proto, product, change) in enumerate(found):
        src, dst = product.sources[0], product.destinations[0]
        if n < budget:
            was = _walks(old, old.by_key[src], old.by_key[dst], port, proto)
            now = _walks(new, new.by_key[src], new.by_key[dst], port, proto)
            reason = (change, key, decision(was), decision(now), _responsible(now, was))
        else:
            where = f"{src.split('/', 1)[0]} → {dst.split('/', 1)[0]}"
            reason = (change, key, UNEXPLAINED, where, ())
        groups.setdefault(reason, []).append(product)
    out = tuple(ChangeGroup(change, key, b, a, pols, tuple(products))
                for (change, key, b, a, pols), products in groups.items())
    return SemanticDiff(tuple(k for k, _, _ in traffic_keys(ports, protocols)), len(common), out,
                        tuple(sorted(set(old.by_key) - set(new.by_key))), tuple(sorted(set(new.by_key) - set(old.by_key))))


def _products(before: Matrix, after: Matrix, key: str) -> list[tuple[Product, str]]:
    """The changed cells of one key as products of sources × destinations, per change.

    Sources whose rows changed the same way form one group; the destinations are split only as
    finely as those groups tell them apart (partition refinement over bitsets), so every group's
    changed cells are a union of whole parts, and each (group, part) pair is a product."""
    pods = before.pods
    out: list[tuple[Product, str]] = []
    for change in ("closed", "opened"):
        rows: dict[int, list[int]] = {}
        for i, bits in _changed_rows(before, after, key, change):
            rows.setdefault(bits, []).append(i)
        parts = [functools.reduce(operator.or_, rows, 0)] if rows else []
        for bits in rows:
            refined = []
            for part in parts:
                inside, outside = part & bits, part & ~bits
                refined += [p for p in (inside, outside) if p]
            parts = refined
        names = {part: tuple(pods[j] for j in set_bits(part)) for part in parts}
        for bits, sources in rows.items():
            src_names = tuple(pods[i] for i in sources)
            out += [(Product(src_names, names[part]), change) for part in parts if part & bits]
    return out


def _changed_rows(before: Matrix, after: Matrix, key: str, change: str) -> Iterator[tuple[int, int]]:
    """(pod, the destinations whose cell changed this way) for every pod with a change, in pod
    order.

    From the class rows when both matrices have them: a pod's row is its class's row, itself
    and its extras (which both sides allow), so its changed cells are those of its (before,
    after) pair of classes less itself and its extras. Each pair's cells are expanded once, and
    pods whose pair changed nothing cost one lookup: the n²/8 bytes of each side's pod rows are
    never made."""
    old, new = before.by_class, after.by_class
    if old is None or new is None or old.extra != new.extra:
        for i, (old_row, new_row) in enumerate(zip(before.rows[key], after.rows[key])):
            bits = old_row & ~new_row if change == "closed" else new_row & ~old_row
            if bits:
                yield i, bits
        return
    old_rows, new_rows = old.rows[key], new.rows[key]
    expanded: tuple[dict[int, int], dict[int, int]] = ({}, {})  # per side: class row → its pods
    pairs: dict[tuple[int, int], int] = {}
    for i, (a, b) in enumerate(zip(old.class_of, new.class_of)):
        cells = pairs.get((a, b))
        if cells is None:
            was = expanded[0].get(old_rows[a])
            if was is None:
                was = expanded[0][old_rows[a]] = old.class_pods(key, a)
            now = expanded[1].get(new_rows[b])
            if now is None:
                now = expanded[1][new_rows[b]] = new.class_pods(key, b)
            cells = pairs[(a, b)] = was & ~now if change == "closed" else now & ~was
        if not cells:
            continue
        mask = 1 << i
        for j in old.extra.get(i, ()):
            mask |= 1 << j
        bits = cells & ~mask if cells & mask else cells
        if bits:
            yield i, bits


@dataclass(frozen=True)
class _Decision:
    """Both directions' walks for one connection (what ``decision`` and ``_responsible`` read)."""

    always: str | None
    egress: Walk | None
    ingress: Walk | None

    @property
    def allowed(self) -> bool:
        return bool(self.always) or all(w is None or w.allowed for w in (self.egress, self.ingress))


def _walks(state: ClusterState, src: Endpoint, dst: Endpoint, port: int | None, proto: str) -> _Decision:
    always = always_allowed(src, dst)
    return _Decision(always, direction_walk(state, src, dst, port, proto, "egress") if src.selectable else None,
                     direction_walk(state, src, dst, port, proto, "ingress") if dst.selectable else None)


def _direction_text(direction: str, w: Walk | None) -> str | None:
    if w is None or not w.isolated:
        return None
    step = w.decided_by
    if step is None:
        return None
    if step.kind == "profile":
        return f"{direction} allowed (every tier that applies passed)"
    assert step.tier is not None
    if step.kind == "end-of-tier":
        return f"{direction} denied at the end of tier {step.tier.name}"
    assert step.rule is not None
    verb = "allowed" if step.action == "Allow" else "denied"
    return f"{direction} {verb} by {step.rule.provenance.describe()}, tier {step.tier.name}"


def decision(d: _Decision) -> str:
    """One line: allowed or denied, and by what in each direction that decides."""
    if d.always:
        return f"allowed ({d.always})"
    texts = [("egress", d.egress, _direction_text("egress", d.egress)),
             ("ingress", d.ingress, _direction_text("ingress", d.ingress))]
    if d.allowed:
        parts = [t for _, _, t in texts if t]
        return "allowed (" + ("; ".join(parts) if parts else "no policy applies") + ")"
    return "denied (" + "; ".join(t for _, w, t in texts if w is not None and not w.allowed and t) + ")"


def _deciders(d: _Decision, denying: bool = False) -> list[str]:
    """The policies deciding each direction (only the denying directions with ``denying``): the
    deciding rule's policy, or those of the tier whose end denied."""
    out: list[str] = []
    for w in (d.egress, d.ingress):
        if w is None or (denying and w.allowed):
            continue
        step = w.decided_by
        if step is None:
            continue
        if step.policy is not None:
            out.append(step.policy.ref)
        elif step.kind == "end-of-tier" and step.tier is not None:
            out += [p.ref for tier, pols in w.tiers if tier is step.tier for p in pols]
    return out


def _responsible(new: _Decision, old: _Decision) -> tuple[str, ...]:
    """Closed: what denies now. Opened: what allows now that did not decide before, else what
    denied before (a policy removed or narrowed)."""
    if not new.allowed:
        return tuple(dict.fromkeys(_deciders(new, denying=True)))
    before = _deciders(old)
    found = [p for p in _deciders(new) if p not in before] or _deciders(old, denying=True)
    return tuple(dict.fromkeys(found))


def diff_ports(old: ClusterState, new: ClusterState, text: str | None) -> list[int]:
    """The ports to compare when none are given: what the shared pods declare, else 80."""
    if text:
        return sorted({int(p) for p in text.split(",") if p.strip()})
    common = set(old.by_key) & set(new.by_key)
    found = {num for state in (old, new) for key in common for num, _ in state.by_key[key].container_ports}
    return sorted(found) or [80]


__all__ = ["ChangeGroup", "Endpoint", "Product", "SemanticDiff", "decision", "diff_ports", "semantic_diff"]
