"""``podnet label KIND NAME k=v k2- [--overwrite]``: change an object's labels, as kubectl does.

Setting a key that already has a different value needs ``--overwrite``; ``k-`` removes a key.
The update is made at the revision that was read and retried on conflict, so a concurrent
change is never lost.
"""
from __future__ import annotations

import click

from podnet.errors import Conflict, NotFound, PodnetError

from .common import name_choices, namespace_option, open_resources, resolve_kind, user_errors

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


@click.command("label")
@click.argument("kind", metavar="KIND", shell_complete=name_choices)
@click.argument("name", metavar="NAME")
@click.argument("changes", nargs=-1, metavar="KEY=VALUE… KEY-…")
@click.option("--overwrite", is_flag=True, help="Allow replacing the value of an existing label.")
@namespace_option
@click.pass_context
@user_errors
def command(ctx: click.Context, kind: str, name: str, changes: tuple[str, ...], overwrite: bool,
            namespace: str | None) -> None:
    """Add, change or remove labels of one object."""
    from .output import ref_name

    if "/" in kind:  # podnet label pod/client1 k=v
        changes = (name, *changes)
        kind, _, name = kind.partition("/")
    if not changes:
        raise click.UsageError("at least one label update is required")
    cls = resolve_kind(kind)
    sets, removes = parse_changes(changes)
    ns = (namespace or "default") if cls.NAMESPACED else None
    with open_resources(ctx) as store:
        for _ in range(ATTEMPTS):
            obj = store.get(cls, name, ns)
            if obj is None:
                raise NotFound(f'{cls.resource_name()} "{name}" not found')
            labels, warnings = relabel(obj.labels, sets, removes, overwrite)
            for warning in warnings:
                click.echo(warning, err=True)
            if labels == obj.labels:
                click.echo(f"{ref_name(obj)} not labeled")
                return
            try:
                store.update(obj.with_meta(labels=labels), check_version=True)
            except Conflict:
                continue
            click.echo(f"{ref_name(obj)} {'labeled' if sets or not removes else 'unlabeled'}")
            return
    raise Conflict(f"{cls.resource_name()} {name!r} kept changing while labelling it", hint="try again")
