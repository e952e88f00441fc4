"""``podnet label KIND NAME… k=v k2- [--overwrite]``: change objects' labels, as kubectl does.

Objects are named (``pods web api``, ``pod/web``) or selected (``-l app=web``, ``--all``).
Setting a key that already has a different value needs ``--overwrite``; ``k-`` removes a key.
The update is made at the revision that was read and retried on conflict, so a concurrent
change is never lost.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from podnet.errors import Conflict, NotFound, PodnetError

from .common import (
    label_selector,
    name_choices,
    namespace_option,
    no_resources,
    open_resources,
    refuse_names_with_selector,
    split_kind_names,
    user_errors,
)

if TYPE_CHECKING:
    from podnet.model import Resource
    from podnet.store.resources import ResourceStore

ATTEMPTS = 5


def parse_changes(specs: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """``k=v`` → set, ``k-`` → remove; keys and values checked as the API server checks them."""
    from podnet.model import validation as v

    sets: dict[str, str] = {}
    removes: list[str] = []
    for spec in specs:
        if spec.endswith("-") and "=" not in spec:
            key = spec[:-1]
            removes.append(key)
        elif "=" in spec:
            key, _, value = spec.partition("=")
            if "=" in value:
                raise PodnetError(f"invalid label spec: {spec}", hint="write key=value (one '=')")
            try:
                v.check_label_value(value)
            except ValueError as exc:
                raise PodnetError(f"invalid label spec: {spec}: {exc}") from None
            sets[key] = value
        else:
            raise PodnetError(f"invalid label spec: {spec}", hint="write key=value to set or key- to remove")
        try:
            v.check_qualified_name(key)
        except ValueError as exc:
            raise PodnetError(f"invalid label spec: {spec}: {exc}") from None
    both = set(sets) & set(removes)
    if both:
        raise PodnetError(f"can not both modify and remove a label in the same command: {', '.join(sorted(both))}")
    return sets, removes


def relabel(labels: dict[str, str], sets: dict[str, str], removes: list[str], overwrite: bool) -> tuple[dict[str, str], list[str]]:
    """The new labels and warnings; raises if a key would be overwritten without ``overwrite``."""
    new = dict(labels)
    warnings = []
    for key, value in sets.items():
        if key in new and new[key] != value and not overwrite:
            raise PodnetError(f"'{key}' already has a value ({new[key]}), and --overwrite is false",
                              hint="add --overwrite to replace it")
        new[key] = value
    for key in removes:
        if key in new:
            del new[key]
        else:
            warnings.append(f'label "{key}" not found.')
    return new, warnings


def split_label_args(args: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """kubectl's reading of ``label`` arguments: those with '=' or ending in '-' are changes,
    the others name the objects (``pods web api``, ``pod/web``)."""
    changes = tuple(a for a in args if "=" in a or a.endswith("-"))
    return tuple(a for a in args if a not in changes), changes


@click.command("label")
@click.argument("args", nargs=-1, metavar="KIND NAME…|KIND/NAME…|KIND -l SEL|KIND --all KEY=VALUE… KEY-…",
                shell_complete=name_choices)
@click.option("--overwrite", is_flag=True, help="Allow replacing the value of an existing label.")
@click.option("-l", "--selector", default=None, help="Label the objects of KIND matching this label selector.")
@click.option("--all", "all_", is_flag=True, help="Label every object of KIND in the namespace.")
@namespace_option
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool,
            namespace: str | None) -> None:
    """Add, change or remove labels of objects, named or selected (-l, --all)."""
    resources, changes = split_label_args(args)
    if not changes:
        raise click.UsageError("at least one label update is required")
    groups = split_kind_names(resources)
    refuse_names_with_selector(groups, selector)
    if not selector and not all_ and not any(names for _, names in groups):
        raise PodnetError("one or more resources must be specified as <resource> <name> or <resource>/<name>",
                          hint="or select them with -l SELECTOR or --all")
    matcher = label_selector(selector)
    sets, removes = parse_changes(changes)
    ns = namespace or "default"
    missing: list[str] = []
    with open_resources(ctx) as store:
        for cls, names in groups:
            scope = ns if cls.NAMESPACED else None
            if not names:
                names = [o.metadata.name for o in store.list(cls, scope, matcher)]
                if not names:
                    click.echo(no_resources([cls], scope), err=True)
            for name in names:
                if not _label_one(store, cls, name, scope, sets, removes, overwrite):
                    missing.append(f'{cls.resource_name()} "{name}" not found')
    if missing:
        raise NotFound("\n".join(missing))


def _label_one(store: ResourceStore, cls: type[Resource], name: str, namespace: str | None,
               sets: dict[str, str], removes: list[str], overwrite: bool) -> bool:
    """Change one object's labels at the revision read, retried on conflict; False if absent."""
    from .output import ref_name

    for _ in range(ATTEMPTS):
        obj = store.get(cls, name, namespace)
        if obj is None:
            return False
        labels, warnings = relabel(obj.labels, sets, removes, overwrite)
        for warning in warnings:
            click.echo(warning, err=True)
        if labels == obj.labels:
            click.echo(f"{ref_name(obj)} not labeled")
            return True
        try:
            store.update(obj.with_meta(labels=labels), check_version=True)
        except Conflict:
            continue
        click.echo(f"{ref_name(obj)} {'labeled' if sets or not removes else 'unlabeled'}")
        return True
    raise Conflict(f"{cls.resource_name()} {name!r} kept changing while labelling it", hint="try again")
