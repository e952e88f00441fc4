"""``podnet get``: list or show objects as kubectl (and calicoctl, for Calico kinds) prints them."""
from __future__ import annotations

import click

from podnet.errors import NotFound, PodnetError
from podnet.model import Resource

from .common import (
    label_selector,
    name_choices,
    namespace_option,
    no_resources,
    now,
    open_resources,
    refuse_names_with_selector,
    split_kind_names,
    user_errors,
)

OUTPUTS = ("wide", "yaml", "json", "name")
#: What ``get all`` lists (kubectl's "all" category, of the kinds podnet has).
ALL = "pods,services,deployments"


def _check_output(value: str | None) -> str | None:
    if value is None or value in OUTPUTS or value.startswith(("jsonpath=", "custom-columns=")):
        return value
    raise click.BadParameter(f"{value!r} is not one of {', '.join(OUTPUTS)}, jsonpath=TEMPLATE or "
                             "custom-columns=HEADER:PATH,…")


def _expand_all(args: tuple[str, ...]) -> tuple[str, ...]:
    """``get all`` (or ``all,ippools``) → the kinds of kubectl's "all" category."""
    if not args or "/" in args[0]:
        return args
    kinds = [ALL if kind == "all" else kind for kind in args[0].split(",")]
    return (",".join(kinds), *args[1:])


@click.command("get")
@click.argument("args", nargs=-1, metavar="KIND[,KIND…] [NAME…] | KIND/NAME…", shell_complete=name_choices)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db,env in (a,b).")
@click.option("-o", "--output", default=None, callback=lambda ctx, param, value: _check_output(value),
              help="Output format: wide, yaml, json, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,….")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], namespace: str | None, all_namespaces: bool,
            selector: str | None, output: str | None, show_labels: bool) -> None:
    """Show objects: pods (po), namespaces (ns), nodes (no), services (svc), deployments
    (deploy), networkpolicies (netpol), ippools, bgppeers, bgpconfigurations, caliconodes."""
    from . import output as out
    from .columns import rows_for

    if all_namespaces and namespace:
        raise click.UsageError("-A and -n cannot be used together")
    groups = split_kind_names(_expand_all(args))
    refuse_names_with_selector(groups, selector)
    if all_namespaces and any(names and cls.NAMESPACED for cls, names in groups):
        raise PodnetError("a resource cannot be retrieved by name across all namespaces", hint="use -n NAMESPACE")
    matcher = label_selector(selector)
    ns = None if all_namespaces else (namespace or "default")
    results: list[tuple[type[Resource], list[str], list[Resource]]] = []
    missing: list[str] = []
    single = len(groups) == 1 and len(groups[0][1]) == 1
    with open_resources(ctx) as store:
        for cls, names in groups:
            if names:
                objs = []
                for name in names:
                    obj = store.get(cls, name, ns if cls.NAMESPACED else None)
                    if obj is None:
                        missing.append(f'{cls.resource_name()} "{name}" not found')
                    else:
                        objs.append(obj)
            else:
                objs = store.list(cls, ns if cls.NAMESPACED else None, matcher)
            if objs:
                results.append((cls, names, objs))
    found = [obj for _, _, objs in results for obj in objs]
    tables: list[str] = []
    if output in (None, "wide"):
        with_kind = len(groups) > 1  # kubectl names rows kind/name when several kinds are asked for
        for cls, names, objs in results:
            headers, rows = rows_for(cls, objs, now(), output == "wide", all_namespaces and not names,
                                     show_labels, with_kind)
            tables.append(out.table(headers, rows))
    if output == "yaml" and (found or not missing):
        click.echo(out.to_yaml(found, single), nl=False)
    elif output == "json" and (found or not missing):
        click.echo(out.to_json(found, single))
    elif output and output.startswith("jsonpath="):
        import json

        from .jsonpath import render

        click.echo(render(output[len("jsonpath="):], json.loads(out.to_json(found, single))), nl=False)
    elif output and output.startswith("custom-columns="):
        import json

        from .jsonpath import custom_columns

        documents = json.loads(out.to_json(found, single=False))["items"]
        if documents:
            click.echo(out.table(*custom_columns(output[len("custom-columns="):], documents)))
    elif output == "name":
        for obj in found:
            click.echo(out.ref_name(obj))
    elif tables:
        click.echo("\n\n".join(tables))
    if missing:
        raise NotFound("\n".join(missing))
    if not found and (output in (None, "wide") or (output or "").startswith("custom-columns=")):
        click.echo(no_resources([cls for cls, _ in groups], ns), err=True)
