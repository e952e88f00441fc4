"""``podnet delete``: by manifest (``-f``) or by kind and name, in one transaction.

Deleting what is already gone is reported as kubectl does (NotFound, exit 1) unless
``--ignore-not-found``; either way the objects that did exist are deleted. Pods on a node are
deleted gracefully (``--grace-period``, ``--now``; ``--force --grace-period=0`` removes them at
once) and, as kubectl does by default, the command waits until they are gone (``--wait``).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from podnet.errors import NotFound, PodnetError

if TYPE_CHECKING:
    from podnet.model import Resource
    from podnet.store.resources import ResourceStore

from .common import (
    label_selector,
    name_choices,
    namespace_option,
    open_resources,
    refuse_names_with_selector,
    split_kind_names,
    user_errors,
)


@click.command("delete")
@click.argument("args", nargs=-1, metavar="[KIND NAME… | KIND/NAME…]", shell_complete=name_choices)
@click.option("-f", "--filename", "filenames", multiple=True, type=click.Path(allow_dash=True),
              help="Delete the objects these manifests describe.")
@click.option("-R", "--recursive", is_flag=True, help="With -f DIR: also subdirectories.")
@namespace_option
@click.option("-l", "--selector", default=None, help="Delete objects of KIND matching this label selector.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.option("--ignore-not-found", is_flag=True, help="Treat absent objects as deleted.")
@click.option("--grace-period", default=-1, show_default=True,
              help="Seconds a pod gets to stop (negative: its terminationGracePeriodSeconds). 0 needs --force.")
@click.option("--now", is_flag=True, help="Signal pods to stop at once (--grace-period=1).")
@click.option("--force", is_flag=True, help="Remove the objects from the store at once, without waiting for "
                                            "their processes to stop.")
@click.option("--wait", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Wait until the objects are gone (--wait=false: do not).")
@click.option("--timeout", default=0.0, help="Seconds to wait (0: no limit).")
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], filenames: tuple[str, ...], recursive: bool,
            namespace: str | None, selector: str | None, all_: bool, ignore_not_found: bool, grace_period: int,
            now: bool, force: bool, wait: bool, timeout: float) -> None:
    """Delete objects by manifest, by name, by selector or all of a kind."""
    from .apply import load_objects
    from .output import type_name

    grace = grace_period_for(grace_period, now, force)
    matcher = label_selector(selector)
    refs: list[tuple[type[Resource], str, str | None]] = []
    if filenames:
        if args:
            raise click.UsageError("give either -f or KIND NAME, not both")
        refs = [(type(o), o.metadata.name, o.metadata.namespace)
                for o, _ in load_objects(filenames, recursive, namespace, outcome="nothing was deleted")]
    else:
        groups = split_kind_names(args)
        refuse_names_with_selector(groups, selector)
    with open_resources(ctx) as store:
        if not filenames:
            ns = namespace or "default"
            for cls, names in groups:
                if names:
                    refs += [(cls, name, ns if cls.NAMESPACED else None) for name in names]
                elif selector or all_:
                    refs += [(cls, o.metadata.name, o.metadata.namespace)
                             for o in store.list(cls, ns if cls.NAMESPACED else None, matcher)]
                else:
                    raise click.UsageError("resource(s) were provided, but no name was specified (or -l/--all)")
        refs = list(dict.fromkeys(refs))  # the same object named twice is deleted once
        if not refs:
            if not filenames and (selector or all_):
                click.echo("No resources found", err=True)
                return
            raise PodnetError("no objects passed to delete")
        if force and grace == 0:
            click.echo("Warning: Immediate deletion does not wait for confirmation that the running resource has "
                       "been terminated. The resource may continue to run on the cluster indefinitely.", err=True)
        deleted = store.delete_many(refs, missing_ok=True, grace_period_seconds=grace)
        missing = []
        for (cls, name, _), obj in zip(refs, deleted):
            if obj is not None:
                click.echo(f'{type_name(cls)} "{name}" {"force " if force and grace == 0 else ""}deleted')
            else:
                missing.append(f'{cls.resource_name()} "{name}" not found')
        if wait:
            _wait_gone(store, [(cls, obj) for (cls, _, _), obj in zip(refs, deleted) if obj is not None], timeout)
    if missing and not ignore_not_found:
        raise NotFound("\n".join(missing))


def grace_period_for(grace_period: int, now: bool, force: bool) -> int | None:
    """kubectl's rules: --now means 1; 0 without --force means 1; --force alone means 0;
    negative means the object's own grace period (None)."""
    if now:
        if grace_period >= 0:
            raise click.UsageError("--now and --grace-period cannot be specified together")
        return 1
    if grace_period == 0 and not force:
        return 1
    if force and grace_period < 0:
        return 0
    return grace_period if grace_period >= 0 else None


def _wait_gone(store: ResourceStore, objs: list[tuple[type[Resource], Resource]], timeout: float) -> None:
    """Until every object (this incarnation: same uid) is gone from the store."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    pending = [(cls, obj) for cls, obj in objs]
    while pending:
        pending = [(cls, obj) for cls, obj in pending
                   if (cur := store.get(cls, obj.metadata.name, obj.metadata.namespace)) is not None
                   and cur.metadata.uid == obj.metadata.uid]
        if not pending:
            return
        if deadline is not None and time.monotonic() > deadline:
            names = ", ".join(f"{cls.PLURAL}/{obj.metadata.name}" for cls, obj in pending)
            raise PodnetError(f"timed out waiting for the deletion of {names}",
                              hint="the node agent of these pods may be down; --force --grace-period=0 removes "
                                   "them without waiting")
        time.sleep(0.1)
