"""Text rendering of a Verdict: the decision first, then each direction (the tiers it walked, the
rule that decided, the misses), then the fix."""
from __future__ import annotations

from .checks import RuleCheck
from .evaluate import DirectionVerdict, Verdict


def _rule_lines(check: RuleCheck, mark: str) -> list[str]:
    src = f" ({check.policy_source})" if check.policy_source else ""
    action = "" if check.rule.provenance.kind == "" else f" [{check.rule.action}]"  # NetworkPolicy: always Allow
    head = f"    {mark} {check.rule.provenance.describe()}{action}{src}"
    lines = [head]
    if check.matches:
        lines.append(f"        peer: {check.peer_summary}")
        lines.append(f"        port: {check.port_summary}")
        lines += [f"        {e.text}" for e in check.extras]
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
    lines += [f"        {e.text}" for e in check.extras if not e.matched]
    return lines


def _direction_lines(d: DirectionVerdict, label: str) -> list[str]:
    state = "allowed" if d.allowed else "DENIED"
    lines = [f"  {d.direction} ({label}): {state}", f"    {d.note}"]
    if d.isolated:
        lines += [f"    · {report.describe()}" for report in d.tiers]
    for check in d.allowed_by:
        lines += _rule_lines(check, "+ allowed by")
    if d.denied_by is not None:
        lines += _rule_lines(d.denied_by, "- denied by")
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
