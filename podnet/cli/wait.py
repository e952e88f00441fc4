"""``podnet wait``: block until objects reach a condition, as ``kubectl wait`` does.

Scripts (and ``make demo``) use it instead of sleeping: ``podnet wait --for=condition=Ready
pod --all --timeout=60s``.
"""
from __future__ import annotations

import time
from typing import Any

import click

from podnet.errors import PodnetError

from .common import label_selector, namespace_option, open_resources, split_kind_names, user_errors


def _parse_timeout(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise click.BadParameter(f"{text!r} is not a duration such as 30s, 2m or 500ms")


def condition_met(obj: Any, condition: str) -> bool:
    """True when ``status.conditions`` has ``condition`` = True; a Pod without conditions
    counts as Ready when it is Running with every container ready."""
    status = getattr(obj, "status", None)
    conditions = getattr(status, "conditions", None) or []
    for entry in conditions:
        if str(entry.get("type", "")).lower() == condition.lower():
            return str(entry.get("status")) == "True"
    if condition.lower() == "ready" and type(obj).KIND == "Pod" and status is not None:
        statuses = status.container_statuses or []
        return status.phase == "Running" and bool(statuses) and all(c.ready for c in statuses)
    return False


@click.command("wait")
@click.argument("args", nargs=-1, required=True, metavar="KIND [NAME…]")
@click.option("--for", "for_", required=True, help="condition=NAME (e.g. condition=Ready) or delete.")
@namespace_option
@click.option("-l", "--selector", default=None, help="Label selector.")
@click.option("--all", "all_", is_flag=True, help="Every object of the kind in the namespace.")
@click.option("--timeout", default="30s", show_default=True, help="Give up after this long (30s, 2m).")
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], for_: str, namespace: str | None,
            selector: str | None, all_: bool, timeout: str) -> None:
    """Wait until the named (or selected, or --all) objects meet the condition."""
    from .output import type_name

    if for_ != "delete" and not for_.startswith("condition="):
        raise click.BadParameter("use --for=condition=NAME or --for=delete", param_hint="--for")
    deadline = time.monotonic() + _parse_timeout(timeout)
    groups = split_kind_names(args)
    if not all_ and not selector and not any(names for _, names in groups):
        raise click.UsageError("name the objects, or use -l SELECTOR or --all")
    matcher = label_selector(selector)
    ns = namespace or "default"
    with open_resources(ctx) as store:
        while True:
            pending: list[str] = []
            done: list[str] = []
            for cls, names in groups:
                scope = ns if cls.NAMESPACED else None
                if names:
                    objs = {name: store.get(cls, name, scope) for name in names}
                else:
                    objs = {o.metadata.name: o for o in store.list(cls, scope, matcher)}
                    if not objs and for_ != "delete":
                        pending.append(f"no {cls.PLURAL} found yet")
                for name, obj in objs.items():
                    ref = f"{type_name(cls)}/{name}"
                    if for_ == "delete":
                        (pending if obj is not None else done).append(ref)
                    elif obj is None or not condition_met(obj, for_.split("=", 1)[1]):
                        pending.append(ref)
                    else:
                        done.append(ref)
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise PodnetError(f"timed out waiting for --for={for_}: {', '.join(pending)}",
                                  hint="see `podnet get pods -o wide` and `podnet describe`")
            time.sleep(0.2)
    for ref in done:
        click.echo(f"{ref} condition met")  # kubectl's words for --for=delete too
