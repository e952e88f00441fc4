"""Text rendering of a Verdict: the decision first, then each direction, then the fix."""
from __future__ import annotations

from .evaluate import DirectionVerdict, RuleCheck, Verdict


def _rule_lines(check: RuleCheck, mark: str) -> list[str]:
    src = f" ({check.policy_source})" if check.policy_source else ""
    head = f"    {mark} {check.rule.provenance.describe()}{src}"
    lines = [head]
    if check.allows:
        lines.append(f"        peer: {check.peer_summary}")
        lines.append(f"        port: {check.port_summary}")
        return lines
    if not check.peers_ok:
        if check.peers:
            for part in check.peers:
                where = f" ({part.provenance.source})" if part.provenance.source and part.provenance.source != check.policy_source else ""
                lines.append(f"        peer {part.provenance.peer}{where}: {part.text}")
        else:
            lines.append(f"        peers: {check.peer_summary}")
    else:
        lines.append(f"        peer ok: {check.peer_summary}")
    lines.append(f"        {'port' if not check.ports_ok else 'port ok'}: {check.port_summary}")
    return lines


def _direction_lines(d: DirectionVerdict, label: str) -> list[str]:
    state = "allowed" if d.allowed else "DENIED"
    lines = [f"  {d.direction} ({label}): {state}", f"    {d.note}"]
    for check in d.allowed_by:
        lines += _rule_lines(check, "+ allowed by")
    if not d.allowed:
        for check in d.misses:
            lines += _rule_lines(check, "- no match:")
    return lines


def render_verdict(v: Verdict) -> str:
    """The explanation a person reads: decision, per-direction reasons, nearest misses, fix."""
    lines = [v.summary]
    if v.always:
        return "\n".join(lines)
    if v.egress:
        lines += _direction_lines(v.egress, f"leaving {v.src.key}")
    if v.ingress:
        lines += _direction_lines(v.ingress, f"entering {v.dst.key}")
    nearest = v.nearest_misses
    if nearest and not v.allowed:
        lines.append("  nearest miss:")
        lines += [f"    {m.describe()}" for m in nearest]
    for fix in v.fixes:
        lines.append(f"  fix: {fix}")
    return "\n".join(lines)
