"""``podnet completion bash|zsh|fish``: the shell script that wires up click's completion.

Use: ``source <(podnet completion bash)``. Kinds complete from the registry, names of objects
from the store.
"""
from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (source it from your shell's rc file)."""
    from click.shell_completion import get_completion_class

    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root, {}, "podnet", "_PODNET_COMPLETE").source())
