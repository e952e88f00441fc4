"""Semantic diff of two policy sets: which (from, to, port) connections a change opens or closes,
and which policy decides each, before and after.

Both clusters' matrices are computed over the pods they share (by ``ns/name``) and compared row
by row. Pods with the same class in both matrices have the same rows, so the changed cells come
in products (these sources × these destinations, one traffic key) and the engine explains one
pair of each product, before and after, to say why it changed. Pods present on one side only
are listed, not diffed: their connections did not change, they appeared or went.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .cluster import ClusterState, Endpoint
from .evaluate import DirectionVerdict, Verdict, evaluate
from .matrix import Matrix, compute_matrix, set_bits, traffic_keys


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


def semantic_diff(old: ClusterState, new: ClusterState, ports: Sequence[int], protocols: Sequence[str]) -> SemanticDiff:
    """What changes between ``old`` and ``new`` for the pods both have, on these ports."""
    common = sorted(set(old.by_key) & set(new.by_key))
    before = compute_matrix(old, ports, protocols, [old.by_key[k] for k in common])
    after = compute_matrix(new, ports, protocols, [new.by_key[k] for k in common])
    groups: dict[tuple[str, str, str, str, tuple[str, ...]], list[Product]] = {}
    for key, port, proto in traffic_keys(ports, protocols):
        for product, change in _products(before, after, key):
            src, dst = product.sources[0], product.destinations[0]
            v_old = evaluate(old, old.by_key[src], old.by_key[dst], port, proto)
            v_new = evaluate(new, new.by_key[src], new.by_key[dst], port, proto)
            reason = (change, key, decision(v_old), decision(v_new), _responsible(v_new, v_old))
            groups.setdefault(reason, []).append(product)
    out = tuple(ChangeGroup(change, key, b, a, pols, tuple(products))
                for (change, key, b, a, pols), products in groups.items())
    return SemanticDiff(tuple(k for k, _, _ in traffic_keys(ports, protocols)), len(common), out,
                        tuple(sorted(set(old.by_key) - set(new.by_key))), tuple(sorted(set(new.by_key) - set(old.by_key))))


def _products(before: Matrix, after: Matrix, key: str) -> list[tuple[Product, str]]:
    """The changed cells of one key as products of sources × destinations, per change."""
    pods = before.pods
    pair_class = [(before.class_of[i], after.class_of[i]) for i in range(len(pods))]
    # sources whose rows changed the same way (same classes on both sides, same changed cells)
    rows: dict[tuple[tuple[int, int], int, int], list[int]] = {}
    for i, (old_row, new_row) in enumerate(zip(before.rows[key], after.rows[key])):
        if old_row != new_row:
            rows.setdefault((pair_class[i], old_row & ~new_row, new_row & ~old_row), []).append(i)
    out: list[tuple[Product, str]] = []
    for (_, closed, opened), sources in rows.items():
        for bits, change in ((closed, "closed"), (opened, "opened")):
            if not bits:
                continue
            by_class: dict[tuple[int, int], list[int]] = {}
            for j in set_bits(bits):
                by_class.setdefault(pair_class[j], []).append(j)
            for dests in by_class.values():
                out.append((Product(tuple(pods[i] for i in sources), tuple(pods[j] for j in dests)), change))
    return out


def _direction_text(d: DirectionVerdict | None) -> str | None:
    if d is None or not d.isolated:
        return None
    step = d.path[-1] if d.path else None
    if step is None:
        return None
    if step.kind == "profile":
        return f"{d.direction} allowed (every tier that applies passed)"
    assert step.tier is not None
    tier = f", tier {step.tier.name}"
    if step.kind == "end-of-tier":
        return f"{d.direction} denied at the end of tier {step.tier.name}"
    assert step.rule is not None
    verb = "allowed" if step.action == "Allow" else "denied"
    return f"{d.direction} {verb} by {step.rule.provenance.describe()}{tier}"


def decision(v: Verdict) -> str:
    """One line: allowed or denied, and by what in each direction that decides."""
    if v.always:
        return f"allowed ({v.always})"
    parts = [t for t in (_direction_text(v.egress), _direction_text(v.ingress)) if t]
    if v.allowed:
        return "allowed (" + ("; ".join(parts) if parts else "no policy applies") + ")"
    denied = [t for d, t in ((v.egress, _direction_text(v.egress)), (v.ingress, _direction_text(v.ingress)))
              if d is not None and not d.allowed and t]
    return "denied (" + "; ".join(denied) + ")"


def _deciders(v: Verdict, denying: bool = False) -> list[str]:
    """The policies deciding each direction (only the denying directions with ``denying``)."""
    return [p for d in (v.egress, v.ingress) if d is not None and not (denying and d.allowed) for p in d.decided_by]


def _responsible(new: Verdict, old: Verdict) -> tuple[str, ...]:
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
