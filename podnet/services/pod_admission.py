"""What the API server does to a Pod that is written again: the node it is bound to stays.

``spec.nodeName`` is the scheduler's (the binding subresource) or the author's at creation;
kubectl's apply merges a manifest into the live object, so re-applying a Pod manifest that
never named a node keeps the binding, and the API server refuses an update that moves a bound
pod (``spec: Forbidden: pod updates may not change fields other than …``). podnet's apply
writes whole objects, so without this rule a re-applied manifest unbinds the pod and the
scheduler may bind the same incarnation (same uid, so the same CNI attachment and IPAM
handle) to another node while the first still runs it: one address on two nodes.
Pure, with the admission protocol of ``services/admission.py``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from podnet.errors import ValidationError

from .admission import Change, Outcome, refusal_problem
from .allocation import Refused

READS: tuple[str, ...] = ()
__all__ = ["READS", "Change", "Outcome", "admit"]  # the protocol the store calls


def _node(value: Mapping[str, Any] | None) -> str:
    return str(((value or {}).get("spec") or {}).get("nodeName") or "")


def admit(changes: Sequence[Change], current: Mapping[str, dict[str, Any]]) -> Outcome:
    """Keep a bound pod's node when the new value names none; refuse one naming another."""
    values: list[dict[str, Any] | None] = []
    problems = []
    for change in changes:
        bound, asked = _node(change.old), _node(change.new)
        if change.new is None or not bound or asked == bound:
            values.append(None)
        elif not asked:
            values.append({**change.new, "spec": {**(change.new.get("spec") or {}), "nodeName": bound}})
        else:
            refused = Refused(("spec", "nodeName"), f"Forbidden: {asked!r}: a bound pod may not move to another "
                                                    f"node (it is bound to {bound!r}); delete the pod and create it "
                                                    "again to run it elsewhere")
            problems.append(refusal_problem(change.new, refused, kind="Pod"))
            values.append(None)
    if problems:
        raise ValidationError(problems)
    return Outcome(tuple(values), {}, ())
