"""The lab's "internet" has names too: the first external host runs Debian's unbound as the
authoritative resolver of a small zone, ``internet.test`` (RFC 2606 keeps ``.test`` for
testing), and the cluster DNS forwards every name outside the cluster to it, as CoreDNS's
``forward . /etc/resolv.conf`` forwards to a site's resolver. Every other name answers
NXDOMAIN at once: the lab has no way to the real internet."""
from __future__ import annotations

import os
import shutil
import subprocess

from podnet.errors import PodnetError

from . import processes
from .topology import ExternalHost

ZONE = "internet.test"
UNBOUND = "unbound"


def zone_records(host: ExternalHost) -> dict[str, str]:
    """name → address: the host itself and a web name on it."""
    return {f"{host.name}.{ZONE}": host.address, f"www.{ZONE}": host.address}


def unbound_config(host: ExternalHost, run_dir: str) -> str:
    lines = ["server:", f"  interface: {host.address}", "  port: 53", "  do-daemonize: no", '  username: ""',
             '  chroot: ""', f'  directory: "{run_dir}"', f'  pidfile: "{os.path.join(run_dir, "unbound.pid")}"',
             "  use-syslog: no", "  log-time-ascii: yes", "  verbosity: 1", "  access-control: 0.0.0.0/0 allow",
             "  num-threads: 1", '  local-zone: "." static', f'  local-zone: "{ZONE}." static']
    lines += [f'  local-data: "{name}. 60 IN A {ip}"' for name, ip in zone_records(host).items()]
    lines += ["remote-control:", "  control-enable: no"]
    return "\n".join(lines) + "\n"


def start(state_dir: str, host: ExternalHost) -> processes.ProcessRecord:
    """unbound in the external host's namespace, in the foreground under the lab's records."""
    binary = shutil.which(UNBOUND)
    if binary is None:
        raise PodnetError("unbound is not installed", hint="install Debian's unbound package (make setup does)")
    run_dir = os.path.join(state_dir, "external-dns")
    os.makedirs(run_dir, exist_ok=True)
    conf = os.path.join(run_dir, "unbound.conf")
    with open(conf, "w") as f:
        f.write(unbound_config(host, run_dir))
    check = subprocess.run([f"{binary}-checkconf", conf], capture_output=True, text=True)
    if check.returncode != 0:
        raise PodnetError(f"unbound refused its configuration: {(check.stderr or check.stdout).strip()}")
    return processes.start("external-dns", [binary, "-d", "-c", conf],
                           os.path.join(state_dir, "logs", "external-dns.log"), host.netns)
