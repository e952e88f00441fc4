"""The PATH directory pods and ``podnet exec`` see: Debian's busybox applets (wget, ping,
nc, sh …) as symlinks, plus ``agnhost``/``podnet-agnhost`` for the connect prober."""
from __future__ import annotations

import os
import subprocess

from .images import PYTHON, SERVE_SCRIPT

BUSYBOX = "/bin/busybox"


def ensure_podbin(directory: str) -> str:
    """Create (idempotently) and return the directory."""
    os.makedirs(directory, exist_ok=True)
    marker = os.path.join(directory, ".complete")
    if os.path.exists(marker):
        return directory
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        link = os.path.join(directory, a)
        if not os.path.lexists(link):
            os.symlink(BUSYBOX, link)
    for name in ("agnhost", "podnet-agnhost"):
        path = os.path.join(directory, name)
        with open(path + ".tmp", "w") as f:
            f.write(f'#!/bin/sh\nexec {PYTHON} -IS {SERVE_SCRIPT} "$@"\n')
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
    open(marker, "w").close()
    return directory
