"""What the resource commands share: the store, kind names, argument shapes, error exits.

Exit codes as kubectl: 0 ok, 1 a user error (bad input, missing object), 2 a usage error
(click's own). Every user error is printed as ``error: …`` with its hint.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from podnet.errors import NotFound, PodnetError

if TYPE_CHECKING:
    from podnet.model import Resource
    from podnet.model.selectors import LabelSelector
    from podnet.store.resources import ResourceStore

F = TypeVar("F", bound=Callable[..., Any])


def state_dir(ctx: click.Context) -> str:
    """``--state-dir`` of the root command (also while completing, when callbacks don't run)."""
    obj = ctx.find_root().obj or {}
    if obj.get("state_dir"):
        return str(obj["state_dir"])
    from podnet.store.open import default_state_dir

    return str(ctx.find_root().params.get("state_dir") or default_state_dir())


@contextlib.contextmanager
def open_resources(ctx: click.Context, create: bool = False) -> Iterator[ResourceStore]:
    """The cluster's store (namespaces default and kube-system made sure of), closed after use.

    Only ``create=True`` (apply) makes a new store: a read, a delete or a label at a mistyped
    ``--state-dir`` says there is no cluster there."""
    from podnet.store.open import open_store

    store = open_store(state_dir(ctx), create=create)
    try:
        yield store
    finally:
        store.close()


def now() -> datetime:
    return datetime.now(UTC)


def store_damage(exc: BaseException) -> PodnetError | None:
    """A SQLite error from a damaged store file as a user error (None for anything else)."""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or not isinstance(exc, sqlite3.DatabaseError):
        return None
    from podnet.store.open import damaged_store

    return damaged_store("", exc)


def user_errors(fn: F) -> F:
    """Print a PodnetError as kubectl would and exit 1 (works under click's test runner too)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotFound as exc:
            for line in exc.message.splitlines():  # one line per missing object, as kubectl
                click.echo(f"Error from server (NotFound): {line}", err=True)
            if exc.hint:
                click.echo(f"  hint: {exc.hint}", err=True)
        except PodnetError as exc:
            click.echo(f"error: {exc}", err=True)
        except Exception as exc:
            damaged = store_damage(exc)
            if damaged is None:
                raise
            click.echo(f"error: {damaged}", err=True)
        click.get_current_context().exit(1)

    return wrapper  # type: ignore[return-value]


def resolve_kind(name: str) -> type[Resource]:
    """``po``, ``pods``, ``netpol``, ``networkpolicies.networking.k8s.io``, ``ippool`` → class."""
    from podnet.manifest.problems import did_you_mean
    from podnet.model.registry import all_resource_names, lookup_resource

    cls = lookup_resource(name)
    if cls is None:
        near = did_you_mean(name, all_resource_names())
        raise PodnetError(f'the server doesn\'t have a resource type "{name}"',
                          hint=f"did you mean {near!r}?" if near else "see 'podnet get --help' for the kinds podnet knows")
    return cls


def split_kind_names(args: tuple[str, ...]) -> list[tuple[type[Resource], list[str]]]:
    """kubectl's argument shapes: ``KIND [NAME…]``, ``KIND1,KIND2``, ``KIND/NAME [KIND/NAME…]``;
    the two forms mixed (``deploy web netpol/x``) are refused in kubectl's words."""
    if not args:
        raise click.UsageError("You must specify the type of resource (e.g. pods, networkpolicies, ippools)")
    slashed = sum("/" in arg for arg in args)
    if slashed and slashed != len(args):
        raise PodnetError("there is no need to specify a resource type as a separate argument when passing "
                          "arguments in resource/name form (e.g. 'podnet get resource/<resource_name>' instead "
                          "of 'podnet get resource resource/<resource_name>'")
    if slashed:
        groups: dict[type[Resource], list[str]] = {}
        for arg in args:
            kind, _, name = arg.partition("/")
            if not kind or not name or "/" in name:
                raise PodnetError("arguments in resource/name form must have a single resource and name",
                                  hint=f"write e.g. pod/web, not {arg!r}")
            groups.setdefault(resolve_kind(kind), []).append(name)
        return list(groups.items())
    kinds = [resolve_kind(k) for k in args[0].split(",") if k]
    names = list(args[1:])
    if names and len(kinds) > 1:
        raise click.UsageError("names may only be given with a single resource type")
    return [(cls, names) for cls in kinds]


def refuse_names_with_selector(groups: list[tuple[type[Resource], list[str]]], selector: str | None) -> None:
    """kubectl refuses NAMEs and ``-l`` together rather than silently ignoring one of them."""
    if selector and any(names for _, names in groups):
        raise PodnetError("name cannot be provided when a selector is specified",
                          hint="drop the names to use the selector, or drop -l")


def kind_choices(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion for the KIND argument."""
    from click.shell_completion import CompletionItem

    from podnet.model.registry import all_resource_names

    return [CompletionItem(n) for n in all_resource_names() if n.startswith(incomplete)]


def name_choices(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion: the kind (first word) or names of objects of that kind in the store."""
    from click.shell_completion import CompletionItem

    done = [a for a in ctx.params.get(param.name or "", ()) or ()]
    if not done:
        return kind_choices(ctx, param, incomplete)
    try:
        from podnet.model.registry import lookup_resource
        from podnet.store.open import open_store

        cls = lookup_resource(done[0].split("/")[0])
        if cls is None:
            return []
        store = open_store(state_dir(ctx), bootstrap=False, create=False)
        try:
            namespace = ctx.params.get("namespace") or "default"
            objs = store.list(cls, namespace if cls.NAMESPACED else None)
        finally:
            store.close()
        return [CompletionItem(o.name) for o in objs if o.name.startswith(incomplete)]
    except Exception:  # completion must never break the shell
        return []


def label_selector(text: str | None) -> LabelSelector | None:
    """The ``-l`` option as a selector (None when not given); a bad one is a user error."""
    if not text:
        return None
    from podnet.model.selectors import parse_label_selector_string

    try:
        return parse_label_selector_string(text)
    except ValueError as exc:
        raise PodnetError(f"invalid label selector {text!r}: {exc}",
                          hint="write e.g. app=web,tier!=db,env in (a,b),!legacy") from None


def no_resources(kinds: list[type[Resource]], namespace: str | None) -> str:
    """kubectl's note for an empty result: the namespace is named only if it was searched."""
    where = f" in {namespace} namespace" if namespace and any(cls.NAMESPACED for cls in kinds) else ""
    return f"No resources found{where}."


def namespace_option(fn: F) -> F:
    return click.option("-n", "--namespace", default=None, metavar="NS",
                        help="The namespace (default: default).")(fn)
