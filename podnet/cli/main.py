"""The ``podnet`` command: a thin shell. Each subcommand lives in its own module and is
imported only when used, so ``podnet --help`` and small commands start fast."""
from __future__ import annotations

import importlib
import sys

import click

from podnet.errors import PodnetError

from .common import store_damage

# command name → "module:attribute" of a click command. Add a line to add a command.
COMMANDS: dict[str, str] = {
    "agent": "podnet.cli.process_cmds:agent",
    "controllers": "podnet.cli.process_cmds:controllers",
    "policy-loop": "podnet.cli.process_cmds:policy_loop",
    "routing-loop": "podnet.cli.process_cmds:routing_loop",
    "apiserver": "podnet.cli.process_cmds:apiserver",
    "supervise": "podnet.cli.process_cmds:supervise",
    "proxy": "podnet.cli.process_cmds:proxy",
    "exec": "podnet.cli.pods_cmds:exec_",
    "logs": "podnet.cli.pods_cmds:logs",
    "ipam": "podnet.cli.pods_cmds:ipam",
    "install-cni": "podnet.cli.pods_cmds:install_cni",
    "up": "podnet.cli.cluster_cmds:up",
    "down": "podnet.cli.cluster_cmds:down",
    "status": "podnet.cli.cluster_cmds:status",
    "node": "podnet.cli.cluster_cmds:node",
    "apply": "podnet.cli.apply:command",
    "completion": "podnet.cli.completion:command",
    "delete": "podnet.cli.delete:command",
    "describe": "podnet.cli.describe:command",
    "get": "podnet.cli.get:command",
    "label": "podnet.cli.label:command",
    "explain": "podnet.cli.policy_cmds:explain",
    "flows": "podnet.cli.flows_cmd:command",
    "flow-logger": "podnet.cli.flows_cmd:flow_logger",
    "expose": "podnet.cli.expose:command",
    "matrix": "podnet.cli.policy_cmds:matrix",
    "lint": "podnet.cli.policy_cmds:lint",
    "diff": "podnet.cli.diff:command",
    "report": "podnet.cli.report_cmd:command",
    "probe": "podnet.cli.probe_cmds:probe",
    "rollout": "podnet.cli.rollout:rollout",
    "scale": "podnet.cli.rollout:scale",
    "set": "podnet.cli.rollout:set_",
    "verify": "podnet.cli.probe_cmds:verify",
    "wait": "podnet.cli.wait:command",
}


#: Options of the podnet command itself, which kubectl-style may come anywhere on the line.
GLOBAL_OPTIONS = ("--state-dir",)


def hoist_global_options(args: list[str]) -> list[str]:
    """``apply -f x --state-dir D`` → ``--state-dir D apply -f x``: kubectl takes its global
    flags anywhere; click only before the command. Nothing after ``--`` is touched."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg in GLOBAL_OPTIONS and index + 1 < len(args):
            front += args[index:index + 2]
            index += 2
            continue
        (front if arg.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)) else rest).append(arg)
        index += 1
    return front + rest


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use, and takes the global
    options anywhere on the line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", envvar="PODNET_STATE_DIR", default="/var/lib/podnet", show_default=True,
              help="Where the embedded store and cluster state live.")
@click.version_option(package_name="podnet")
@click.pass_context
def cli(ctx: click.Context, state_dir: str) -> None:
    """podnet: Kubernetes pod networking on the real Linux kernel."""
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors exit 1 with a message, usage errors exit 2 (click's own).

    Returns the exit code (a command's ``ctx.exit(n)`` arrives here as ``n``)."""
    try:
        result = cli.main(args=argv, prog_name="podnet", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PodnetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        damaged = store_damage(exc)
        if damaged is None:
            raise
        click.echo(f"error: {damaged}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
