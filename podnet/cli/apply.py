"""``podnet apply -f``: create or update every object in the inputs, all or nothing.

Invalid input anywhere → every problem printed with file:line:column, nothing written, exit 1.
Each applied object remembers where it came from (annotation ``podnet.io/source``).
``--dry-run=client`` checks the files and says what would change; ``--dry-run=server`` also
asks the store (namespaces exist, what is stored); ``-o yaml|json|name`` prints the objects.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import click

from podnet.errors import FieldProblem, NotFound, PodnetError, ValidationError

from .common import namespace_option, open_resources, state_dir, user_errors

if TYPE_CHECKING:
    from podnet.manifest import Loaded
    from podnet.model import Resource
    from podnet.store.resources import ResourceStore

OUTPUTS = ("yaml", "json", "name")


class Input(NamedTuple):
    """An object ready to send, and where its manifest is."""

    obj: Resource
    item: Loaded


def load_objects(filenames: tuple[str, ...], recursive: bool, namespace: str | None,
                 outcome: str = "nothing was applied") -> list[Input]:
    """Validated objects from the inputs, with -n applied and their source recorded.

    ``outcome`` ends an error message: what failing means for the command (apply, delete)."""
    from podnet.manifest import load_paths, with_source

    if not filenames:
        raise click.UsageError("must specify one of -f")
    try:
        loaded = load_paths(list(filenames), recursive=recursive, stdin=sys.stdin)
    except ValidationError as exc:
        raise exc.with_outcome(outcome) from None
    inputs: list[Input] = []
    seen: dict[tuple[str, str | None, str], str] = {}
    unsupported = [problem for item in loaded if (problem := _kernel_cannot_run(item)) is not None]
    if unsupported:
        raise ValidationError(unsupported, outcome)
    for item in loaded:
        obj = with_source(item)
        if type(obj).NAMESPACED:
            own = obj.metadata.namespace
            if namespace and own and own != namespace:
                raise PodnetError(
                    f'the namespace from the provided object "{own}" does not match the namespace "{namespace}" '
                    f"({item.source})", hint=f"pass --namespace={own}, or remove the namespace from the manifest")
            if not own:
                obj = obj.with_meta(namespace=namespace or "default")
        key = (type(obj).resource_name(), obj.metadata.namespace, obj.metadata.name)
        if key in seen:
            raise PodnetError(f"{type(obj).KIND} {obj.ref} is defined twice: at {seen[key]} and at {item.source}; "
                              f"{outcome}", hint="keep one definition, or give the files one at a time")
        seen[key] = str(item.source)
        inputs.append(Input(obj, item))
    return inputs


def _kernel_cannot_run(item: Loaded) -> FieldProblem | None:
    """An IPPool asking for IPIP on a kernel without the ipip module can never carry traffic:
    refuse it at apply time, where the user can still pick VXLAN, not later in an agent log."""
    from podnet.model import IPPool

    obj = item.obj
    if not isinstance(obj, IPPool) or obj.spec.ipip_mode == "Never":
        return None
    from podnet.kernel.routes import kernel_has_ipip  # netlink libraries only when a pool asks for IPIP

    if kernel_has_ipip():
        return None
    path = ("spec", "ipipMode")
    return FieldProblem(
        path=path, location=item.locate(path), kind="IPPool", name=obj.metadata.name,
        message=f"ipipMode {obj.spec.ipip_mode} needs the kernel's IPIP module, which this kernel does not have",
        hint=f"use vxlanMode: {obj.spec.ipip_mode} and ipipMode: Never",
    )


def absent_namespaces(store: ResourceStore, objs: Sequence[Resource]) -> set[str]:
    """The namespaces the objects are in that neither exist nor are created along with them."""
    from podnet.model import Namespace

    creating = {o.metadata.name for o in objs if isinstance(o, Namespace)}
    needed = {o.metadata.namespace for o in objs if type(o).NAMESPACED and o.metadata.namespace} - creating
    return {ns for ns in needed if ns is not None and store.get(Namespace, ns) is None}


def missing_namespaces(store: ResourceStore, inputs: list[Input]) -> None:
    """NotFound naming the file, line and object of each object whose namespace neither exists
    nor is created by the same apply (kubectl names the file too)."""
    absent = absent_namespaces(store, [i.obj for i in inputs])
    lines = []
    for obj, item in inputs:
        if type(obj).NAMESPACED and obj.metadata.namespace in absent:
            given = item.obj.metadata.namespace is not None
            where = item.locate(("metadata", "namespace")) if given else item.source
            lines.append(f'{where}: {obj.KIND}/{obj.metadata.name}: namespaces "{obj.metadata.namespace}" not found')
    if lines:
        raise NotFound("\n".join(lines), hint="nothing was applied: create the namespace first (apiVersion: v1, "
                                              "kind: Namespace), or include it in the same apply")


@click.command("apply")
@click.option("-f", "--filename", "filenames", multiple=True, required=True, type=click.Path(allow_dash=True),
              help="A manifest file, a directory of them, or '-' for standard input. Repeatable.")
@click.option("-R", "--recursive", is_flag=True, help="Also read manifests in subdirectories.")
@namespace_option
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none",
              is_flag=False, flag_value="client", show_default=True,
              help="client: check the files and say what would change; server: also check against the store. "
                   "Nothing is written.")
@click.option("-o", "--output", type=click.Choice(OUTPUTS), default=None,
              help="Print the applied objects (yaml, json) or their names instead of what happened.")
@click.pass_context
@user_errors
def command(ctx: click.Context, filenames: tuple[str, ...], recursive: bool, namespace: str | None, dry_run: str,
            output: str | None) -> None:
    """Create or update objects from manifests (all or nothing), as kubectl apply does."""
    from podnet.store.open import DB_NAME

    from .progress import Progress

    with Progress("podnet apply") as progress:
        progress.step("reading manifests")
        inputs = load_objects(filenames, recursive, namespace)
        if not inputs:
            raise PodnetError("no objects passed to apply", hint="the inputs hold no manifests (only comments?)")
        objs = [i.obj for i in inputs]
        progress.step(f"applying {len(objs)} object{'s' if len(objs) != 1 else ''}")
        if dry_run == "client":
            import os

            exists = os.path.exists(os.path.join(state_dir(ctx), DB_NAME))
            results: Sequence[tuple[Resource, str]] = (_client_dry_run(ctx, objs) if exists else
                                                       [(obj, "created") for obj in objs])
        else:
            with open_resources(ctx, create=dry_run == "none") as store:
                missing_namespaces(store, inputs)
                results = store.apply(objs, dry_run=dry_run == "server")
    _report(results, output, {"none": "", "client": " (dry run)", "server": " (server dry run)"}[dry_run])


def _client_dry_run(ctx: click.Context, objs: list[Resource]) -> list[tuple[Resource, str]]:
    """What apply would do to each object, judged against what is stored (as kubectl's client
    dry run reads the live objects); the objects are the ones that would be sent. An object in
    a namespace that does not exist yet would be created (the client does not check)."""
    with open_resources(ctx) as store:
        absent = absent_namespaces(store, objs)
        known = [o for o in objs if not type(o).NAMESPACED or o.metadata.namespace not in absent]
        planned = {id(o): action for o, (_, action) in zip(known, store.apply(known, dry_run=True) if known else [])}
    return [(obj, planned.get(id(obj), "created")) for obj in objs]


def _report(results: Sequence[tuple[Resource, str]], output: str | None, suffix: str) -> None:
    from . import output as out

    objs = [obj for obj, _ in results]
    if output == "yaml":
        click.echo(out.to_yaml(objs, single=len(objs) == 1), nl=False)
    elif output == "json":
        click.echo(out.to_json(objs, single=len(objs) == 1))
    elif output == "name":
        for obj in objs:
            click.echo(out.ref_name(obj))
    else:
        for obj, action in results:
            click.echo(f"{out.ref_name(obj)} {action}{suffix}")
