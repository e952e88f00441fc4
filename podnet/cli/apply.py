"""``podnet apply -f``: create or update every object in the inputs, all or nothing.

Invalid input anywhere → every problem printed with file:line:column, nothing written, exit 1.
Each applied object remembers where it came from (annotation ``podnet.io/source``).
"""
from __future__ import annotations

import sys

import click

from typing import TYPE_CHECKING

from podnet.errors import FieldProblem, PodnetError, ValidationError

from .common import namespace_option, open_resources, user_errors

if TYPE_CHECKING:
    from podnet.manifest import Loaded


def load_objects(filenames: tuple[str, ...], recursive: bool, namespace: str | None) -> list:
    """Validated objects from the inputs, with -n applied and their source recorded."""
    from podnet.manifest import load_paths, with_source

    if not filenames:
        raise click.UsageError("must specify one of -f")
    loaded = load_paths(list(filenames), recursive=recursive, stdin=sys.stdin)
    objs = []
    seen: dict[tuple[str, str | None, str], str] = {}
    unsupported = [problem for item in loaded if (problem := _kernel_cannot_run(item)) is not None]
    if unsupported:
        raise ValidationError(unsupported)
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
                              "nothing was applied", hint="keep one definition, or apply the files one at a time")
        seen[key] = str(item.source)
        objs.append(obj)
    return objs


def _kernel_cannot_run(item: "Loaded") -> FieldProblem | None:
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


@click.command("apply")
@click.option("-f", "--filename", "filenames", multiple=True, required=True, type=click.Path(allow_dash=True),
              help="A manifest file, a directory of them, or '-' for standard input. Repeatable.")
@click.option("-R", "--recursive", is_flag=True, help="Also read manifests in subdirectories.")
@namespace_option
@click.pass_context
@user_errors
def command(ctx: click.Context, filenames: tuple[str, ...], recursive: bool, namespace: str | None) -> None:
    """Create or update objects from manifests (all or nothing), as kubectl apply does."""
    from .output import ref_name

    objs = load_objects(filenames, recursive, namespace)
    if not objs:
        raise PodnetError("no objects passed to apply", hint="the inputs hold no manifests (only comments?)")
    with open_resources(ctx) as store:
        results = store.apply(objs)
    for obj, action in results:
        click.echo(f"{ref_name(obj)} {action}")
