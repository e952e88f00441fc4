"""``podnet rollout status|history|undo|restart|pause|resume``, ``podnet scale`` and
``podnet set image``: kubectl's commands for Deployments (and ReplicaSets where kubectl takes
them), worded as kubectl words them."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from podnet.controllers.deployments import CHANGE_CAUSE, REVISION, without_hash
from podnet.errors import NotFound, PodnetError
from podnet.model import Deployment, ReplicaSet, Resource

from .common import namespace_option, open_resources, split_kind_names, user_errors
from .output import NONE, ref_name, table


def _target(args: tuple[str, ...], kinds: tuple[type[Resource], ...] = (Deployment,)) -> tuple[type[Resource], str]:
    groups = split_kind_names(args)
    if len(groups) != 1 or len(groups[0][1]) != 1:
        raise click.UsageError("give one object: deployment/NAME or deployment NAME")
    cls, names = groups[0]
    if cls not in kinds:
        raise PodnetError(f"{cls.PLURAL} {names[0]!r}: this command works on "
                          f"{' and '.join(k.PLURAL for k in kinds)} only")
    return cls, names[0]


def _get(store: Any, cls: type[Resource], name: str, ns: str) -> Any:
    obj = store.get(cls, name, ns)
    if obj is None:
        raise NotFound(f'{cls.resource_name()} "{name}" not found')
    return obj


def status_message(dep: Deployment) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); raises when the deadline passed."""
    status = dep.status or {}
    if (dep.metadata.generation or 1) > int(status.get("observedGeneration", 0)):
        return "Waiting for deployment spec update to be observed...", False
    progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        raise PodnetError(f'deployment "{dep.name}" exceeded its progress deadline')
    want, updated = dep.spec.replicas, int(status.get("updatedReplicas", 0))
    replicas, available = int(status.get("replicas", 0)), int(status.get("availableReplicas", 0))
    name = dep.name
    if updated < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new replicas have '
                "been updated..."), False
    if replicas > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old replicas are pending '
                "termination..."), False
    if available < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas '
                "are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def _history(store: Any, dep: Deployment) -> dict[int, ReplicaSet]:
    """Revision → ReplicaSet, for the sets the Deployment controls."""
    out: dict[int, ReplicaSet] = {}
    for rs in store.list(ReplicaSet, dep.namespace or "default"):
        ref: dict[str, Any] = next((r for r in rs.metadata.owner_references or [] if r.get("controller")), {})
        if ref.get("uid") == dep.metadata.uid and rs.metadata.annotations.get(REVISION, "").isdigit():
            out[int(rs.metadata.annotations[REVISION])] = rs
    return out


@click.group("rollout")
def rollout() -> None:
    """Manage the rollout of a Deployment."""


@rollout.command("status")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.option("-w", "--watch", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Follow until it is done (--watch=false: print once).")
@click.option("--timeout", default=0.0, help="Seconds to wait (0: no limit).")
@click.option("--revision", default=0, help="Pin to this revision (fails if it is not the current one).")
@click.pass_context
@user_errors
def status(ctx: click.Context, args: tuple[str, ...], namespace: str | None, watch: bool, timeout: float,
           revision: int) -> None:
    """Show the rollout's progress, following it until it is done."""
    cls, name = _target(args)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last = ""
    with open_resources(ctx) as store:
        while True:
            dep = _get(store, cls, name, namespace or "default")
            if revision and dep.metadata.annotations.get(REVISION) != str(revision):
                raise PodnetError(f"desired revision ({revision}) is different from the running revision "
                                  f"({dep.metadata.annotations.get(REVISION, '0')})")
            message, done = status_message(dep)
            if message != last:
                click.echo(message)
                last = message
            if done or not watch:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise PodnetError("timed out waiting for the condition")
            time.sleep(0.2)


@rollout.command("history")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.option("--revision", default=0, help="Show the pod template of this revision.")
@click.pass_context
@user_errors
def history(ctx: click.Context, args: tuple[str, ...], namespace: str | None, revision: int) -> None:
    """List the Deployment's revisions (or show one)."""
    cls, name = _target(args)
    with open_resources(ctx) as store:
        dep = _get(store, cls, name, namespace or "default")
        revisions = _history(store, dep)
    if revision:
        if revision not in revisions:
            raise PodnetError(f"unable to find the specified revision {revision}")
        click.echo(f"{ref_name(dep)} with revision #{revision}")
        click.echo(pod_template_text(revisions[revision]))
        return
    click.echo(f"{ref_name(dep)} ")
    rows = [[str(r), revisions[r].metadata.annotations.get(CHANGE_CAUSE, NONE)] for r in sorted(revisions)]
    click.echo(table(["REVISION", "CHANGE-CAUSE"], rows) + "\n")


def pod_template_text(rs: ReplicaSet) -> str:
    assert rs.spec.template is not None
    tmpl = rs.spec.template
    labels = [f"{k}={v}" for k, v in sorted(tmpl.metadata.labels.items())] or [NONE]
    lines = ["Pod Template:", f"  Labels:\t{labels[0]}"] + [f"\t{label}" for label in labels[1:]]
    cause = rs.metadata.annotations.get(CHANGE_CAUSE)
    if cause:
        lines.append(f"  Annotations:\t{CHANGE_CAUSE}: {cause}")
    lines.append("  Containers:")
    for c in tmpl.spec.containers:
        ports = ", ".join(f"{p.container_port}/{p.protocol}" for p in c.ports or []) or NONE
        lines += [f"   {c.name}:", f"    Image:\t{c.image or ''}", f"    Port:\t{ports}"]
    return "\n".join(lines) + "\n"


@rollout.command("undo")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.option("--to-revision", default=0, help="The revision to go back to (default: the previous one).")
@click.pass_context
@user_errors
def undo(ctx: click.Context, args: tuple[str, ...], namespace: str | None, to_revision: int) -> None:
    """Roll back to a previous revision's pod template."""
    cls, name = _target(args)
    with open_resources(ctx) as store:
        dep = _get(store, cls, name, namespace or "default")
        revisions = _history(store, dep)
        if to_revision:
            if to_revision not in revisions:
                raise PodnetError(f"unable to find specified revision {to_revision} in history")
            target = to_revision
        else:
            if len(revisions) < 2:
                raise PodnetError(f'no rollout history found for deployment "{name}"')
            target = sorted(revisions)[-2]
        chosen = revisions[target].spec.template
        assert chosen is not None
        template = without_hash(chosen.to_dict())
        if template == without_hash(dep.spec.template.to_dict()):
            click.echo(f"{ref_name(dep)} skipped rollback (current template already matches revision {target})")
            return
        data = dep.to_dict()
        data["spec"]["template"] = template
        store.update(Deployment.model_validate(data), check_version=True)
    click.echo(f"{ref_name(dep)} rolled back")


def _patch_deployment(ctx: click.Context, args: tuple[str, ...], namespace: str | None, verb: str,
                      change: Any) -> None:
    cls, name = _target(args)
    with open_resources(ctx) as store:
        dep = _get(store, cls, name, namespace or "default")
        data = dep.to_dict()
        change(data)
        store.update(Deployment.model_validate(data), check_version=True)
    click.echo(f"{ref_name(dep)} {verb}")


@rollout.command("restart")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.pass_context
@user_errors
def restart(ctx: click.Context, args: tuple[str, ...], namespace: str | None) -> None:
    """Replace every pod by a rollout (a new pod template annotation, as kubectl sets)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def change(data: dict[str, Any]) -> None:
        meta = data["spec"]["template"].setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), "kubectl.kubernetes.io/restartedAt": stamp}
    _patch_deployment(ctx, args, namespace, "restarted", change)


@rollout.command("pause")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.pass_context
@user_errors
def pause(ctx: click.Context, args: tuple[str, ...], namespace: str | None) -> None:
    """Stop rolling out template changes (scaling still works)."""
    _patch_deployment(ctx, args, namespace, "paused", lambda d: d["spec"].__setitem__("paused", True))


@rollout.command("resume")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME")
@namespace_option
@click.pass_context
@user_errors
def resume(ctx: click.Context, args: tuple[str, ...], namespace: str | None) -> None:
    """Roll out template changes again."""
    _patch_deployment(ctx, args, namespace, "resumed", lambda d: d["spec"].pop("paused", None))


@click.command("scale")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME | deployment NAME")
@namespace_option
@click.option("--replicas", type=int, required=True, help="The new number of replicas.")
@click.option("--current-replicas", type=int, default=-1, help="Only if the current number is this.")
@click.pass_context
@user_errors
def scale(ctx: click.Context, args: tuple[str, ...], namespace: str | None, replicas: int,
          current_replicas: int) -> None:
    """Set the number of replicas of a Deployment or ReplicaSet."""
    if replicas < 0:
        raise PodnetError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    cls, name = _target(args, (Deployment, ReplicaSet))
    with open_resources(ctx) as store:
        obj = _get(store, cls, name, namespace or "default")
        if current_replicas >= 0 and obj.spec.replicas != current_replicas:
            raise PodnetError(f"Expected replicas to be {current_replicas}, was {obj.spec.replicas}")
        data = obj.to_dict()
        data["spec"]["replicas"] = replicas
        store.update(cls.model_validate(data), check_version=True)
    click.echo(f"{ref_name(obj)} scaled")


@click.group("set")
def set_() -> None:
    """Change fields of existing objects."""


@set_.command("image")
@click.argument("args", nargs=-1, required=True, metavar="deployment/NAME CONTAINER=IMAGE…")
@namespace_option
@click.pass_context
@user_errors
def image(ctx: click.Context, args: tuple[str, ...], namespace: str | None) -> None:
    """Set container images of a Deployment's (or ReplicaSet's) pod template (``*=IMAGE``: all)."""
    objs = [a for a in args if "=" not in a]
    pairs = dict(a.split("=", 1) for a in args if "=" in a)
    if not pairs:
        raise click.UsageError("give at least one CONTAINER=IMAGE")
    cls, name = _target(tuple(objs), (Deployment, ReplicaSet))
    with open_resources(ctx) as store:
        obj = _get(store, cls, name, namespace or "default")
        data = obj.to_dict()
        containers = data["spec"]["template"]["spec"]["containers"]
        names = {c["name"] for c in containers}
        for wanted in pairs:
            if wanted != "*" and wanted not in names:
                raise PodnetError(f'unable to find container named "{wanted}"')
        for c in containers:
            new = pairs.get(c["name"], pairs.get("*"))
            if new is not None:
                c["image"] = new
        store.update(cls.model_validate(data), check_version=True)
    click.echo(f"{ref_name(obj)} image updated")
