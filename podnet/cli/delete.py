"""``podnet delete``: by manifest (``-f``) or by kind and name, in one transaction.

Deleting what is already gone is reported as kubectl does (NotFound, exit 1) unless
``--ignore-not-found``; either way the objects that did exist are deleted.
"""
from __future__ import annotations

import click

from podnet.errors import NotFound, PodnetError

from .common import (label_selector, name_choices, namespace_option, open_resources, refuse_names_with_selector,
                     split_kind_names, user_errors)


@click.command("delete")
@click.argument("args", nargs=-1, metavar="[KIND NAME… | KIND/NAME…]", shell_complete=name_choices)
@click.option("-f", "--filename", "filenames", multiple=True, type=click.Path(allow_dash=True),
              help="Delete the objects these manifests describe.")
@click.option("-R", "--recursive", is_flag=True, help="With -f DIR: also subdirectories.")
@namespace_option
@click.option("-l", "--selector", default=None, help="Delete objects of KIND matching this label selector.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.option("--ignore-not-found", is_flag=True, help="Treat absent objects as deleted.")
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], filenames: tuple[str, ...], recursive: bool,
            namespace: str | None, selector: str | None, all_: bool, ignore_not_found: bool) -> None:
    """Delete objects by manifest, by name, by selector or all of a kind."""
    from .apply import load_objects
    from .output import type_name

    matcher = label_selector(selector)
    refs: list = []
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
        deleted = store.delete_many(refs, missing_ok=True)
    missing = []
    for (cls, name, _), obj in zip(refs, deleted):
        if obj is not None:
            click.echo(f'{type_name(cls)} "{name}" deleted')
        else:
            missing.append(f'{cls.resource_name()} "{name}" not found')
    if missing and not ignore_not_found:
        raise NotFound("\n".join(missing))
