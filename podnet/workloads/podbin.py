"""The PATH directory pods and ``podnet exec`` see: Debian's busybox applets (ping, nc,
nslookup, ls …) as symlinks, podnet's own ``wget`` in place of busybox's (whose ``-T``
crashes), plus ``agnhost``/``podnet-agnhost`` for the connect prober.

busybox-static runs its own applet whenever a command it starts has an applet's name, PATH
or not, so ``sh -c 'wget …'`` or ``timeout 5 wget …`` would still reach busybox's wget. The
commands that start other commands are therefore the host's (``sh`` is dash, ``timeout``,
``env``, ``xargs``… are coreutils/findutils), which look programs up on PATH."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from .images import PYTHON, SERVE_SCRIPT, WGET_SCRIPT

BUSYBOX = "/bin/busybox"
VERSION = "3"  # bumped when the directory's contents change: an older one is rebuilt
MARKER = ".complete"
SCRIPTS = {"agnhost": SERVE_SCRIPT, "podnet-agnhost": SERVE_SCRIPT, "wget": WGET_SCRIPT}
LAUNCHERS = {"sh": "/bin/dash", "ash": "/bin/dash", "timeout": "/usr/bin/timeout", "env": "/usr/bin/env",
             "xargs": "/usr/bin/xargs", "nohup": "/usr/bin/nohup", "nice": "/usr/bin/nice", "setsid": "/usr/bin/setsid",
             "watch": "/usr/bin/watch"}


def _current(directory: str) -> bool:
    try:
        with open(os.path.join(directory, MARKER)) as f:
            return f.read().strip() == VERSION
    except OSError:
        return False


def ensure_podbin(directory: str) -> str:
    """Create (idempotently) and return the directory.

    Several agents start at once and may all find it missing: each builds a private copy and
    renames it into place, so whoever loses the race just uses the winner's (identical) copy."""
    if _current(directory):
        return directory
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".podbin-", dir=parent)
    try:
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        launchers = {name: path for name, path in LAUNCHERS.items() if os.path.exists(path)}
        for applet in applets:
            if applet not in SCRIPTS:
                os.symlink(launchers.get(applet, BUSYBOX), os.path.join(staging, applet))
        for name, script in SCRIPTS.items():
            path = os.path.join(staging, name)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec {PYTHON} -IS {script} "$@"\n')
            os.chmod(path, 0o755)
        with open(os.path.join(staging, MARKER), "w") as f:
            f.write(VERSION)
        os.chmod(staging, 0o755)
        if os.path.isdir(directory) and not _current(directory):  # an older podnet's
            shutil.rmtree(directory, ignore_errors=True)
        try:
            os.rename(staging, directory)
        except OSError:
            if not _current(directory):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
