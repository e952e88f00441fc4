"""``podnet expose``: create a Service for a Deployment, Pod or Service, as ``kubectl expose``."""
from __future__ import annotations

import click

from podnet.errors import AlreadyExists, NotFound, PodnetError
from podnet.model import Resource

from .common import namespace_option, open_resources, resolve_kind, user_errors

EXPOSABLE = ("Pod", "Deployment", "Service")


def _target_port(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _map(text: str | None, option: str) -> dict[str, str] | None:
    if text is None:
        return None
    out: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise PodnetError(f"{option} {text!r}: write key=value pairs separated by commas", hint="e.g. app=web")
        out[key] = value
    return out


@click.command("expose")
@click.argument("args", nargs=-1, required=True, metavar="TYPE NAME | TYPE/NAME")
@namespace_option
@click.option("--port", type=int, default=None, help="The port the Service serves on (default: the declared ports).")
@click.option("--target-port", default=None, help="Name or number of the port the pods receive on (default: --port).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP", "SCTP"]), default=None, help="Protocol of the port.")
@click.option("--type", "service_type", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
              default=None, help="The Service type (default ClusterIP).")
@click.option("--name", default=None, help="Name of the Service (default: the exposed object's).")
@click.option("--selector", default=None, help="key=value,... selecting the pods (default: the object's).")
@click.option("-l", "--labels", default=None, help="key=value,... labels of the Service (default: the object's).")
@click.option("--cluster-ip", default=None, help="A ClusterIP to ask for, or None for a headless Service.")
@click.option("--external-ip", "external_ips", multiple=True, help="An external IP the Service also accepts.")
@click.option("--load-balancer-ip", default=None, help="The LoadBalancer address to ask for.")
@click.option("--session-affinity", type=click.Choice(["None", "ClientIP"]), default=None)
@click.option("--dry-run", type=click.Choice(["none", "client"]), default="none",
              help="client: print the Service without creating it.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "name"]), default=None)
@click.pass_context
@user_errors
def command(ctx: click.Context, args: tuple[str, ...], namespace: str | None, port: int | None,
            target_port: str | None, protocol: str | None, service_type: str | None, name: str | None,
            selector: str | None, labels: str | None, cluster_ip: str | None, external_ips: tuple[str, ...],
            load_balancer_ip: str | None, session_affinity: str | None, dry_run: str, output: str | None) -> None:
    """Expose a deployment, pod or service as a new Service, e.g.
    ``podnet expose deployment web --port 80 --target-port 8080 --type NodePort``."""
    from podnet.services.expose import ExposeOptions, service_for

    from . import output as out

    if len(args) == 1 and "/" in args[0]:
        kind_text, _, obj_name = args[0].partition("/")
    elif len(args) == 2:
        kind_text, obj_name = args
    else:
        raise click.UsageError("give TYPE NAME or TYPE/NAME, e.g. deployment web")
    cls = resolve_kind(kind_text)
    if cls.KIND not in EXPOSABLE:
        raise PodnetError(f"cannot expose a {cls.KIND}", hint="expose a pod, deployment or service")
    options = ExposeOptions(name=name, port=port, target_port=_target_port(target_port), protocol=protocol,
                            type=service_type, selector=_map(selector, "--selector"), labels=_map(labels, "--labels"),
                            cluster_ip=cluster_ip, external_ips=external_ips, load_balancer_ip=load_balancer_ip,
                            session_affinity=session_affinity)
    with open_resources(ctx) as store:
        obj = store.get(cls, obj_name, namespace or "default")
        if obj is None:
            raise NotFound(f'{cls.resource_name()} "{obj_name}" not found')
        svc: Resource = service_for(obj, options)
        if dry_run == "none":
            try:
                svc = store.create(svc)
            except AlreadyExists:
                raise AlreadyExists(f'services "{svc.name}" already exists',
                                    hint="delete it first, or give another --name") from None
    if output == "yaml":
        click.echo(out.to_yaml([svc], True), nl=False)
    elif output == "json":
        click.echo(out.to_json([svc], True))
    else:
        click.echo(f"{out.ref_name(svc)} {'exposed' if dry_run == 'none' else 'exposed (dry run)'}")
