"""The PATH directory pods and ``podnet exec`` see: Debian's busybox applets (wget, ping,
nc, sh …) as symlinks, plus ``agnhost``/``podnet-agnhost`` for the connect prober."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from .images import PYTHON, SERVE_SCRIPT

BUSYBOX = "/bin/busybox"


def ensure_podbin(directory: str) -> str:
    """Create (idempotently) and return the directory.

    Several agents start at once and may all find it missing: each builds a private copy and
    renames it into place, so whoever loses the race just uses the winner's (identical) copy."""
    if os.path.exists(os.path.join(directory, ".complete")):
        return directory
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".podbin-", dir=parent)
    try:
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            os.symlink(BUSYBOX, os.path.join(staging, applet))
        for name in ("agnhost", "podnet-agnhost"):
            path = os.path.join(staging, name)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec {PYTHON} -IS {SERVE_SCRIPT} "$@"\n')
            os.chmod(path, 0o755)
        open(os.path.join(staging, ".complete"), "w").close()
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, directory)
        except OSError:
            if not os.path.exists(os.path.join(directory, ".complete")):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
