"""What a container image means here: images are mapped to built-in workloads, never pulled.

nginx / httpd → an HTTP server on the container's ports (default 80) answering with the pod's
name; busybox → the pod's own command, with Debian's busybox applets on PATH; any image whose
name contains ``agnhost`` → a server on every declared port and protocol, like Kubernetes'
agnhost. Anything else is refused with a message the pod's status shows.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.model.core import Container, Pod

SERVE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")
PYTHON = "/usr/bin/python3"
HTTP_IMAGES = ("nginx", "httpd")
COMMAND_IMAGES = ("busybox", "alpine")


class UnknownImage(PodnetError):
    """The image maps to no built-in workload."""


@dataclass(frozen=True)
class Launch:
    """How to start one container: argv and extra environment (run inside the pod's netns)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


def image_base(image: str) -> str:
    """docker.io/library/nginx:1.25 → nginx."""
    name = image.rsplit("/", 1)[-1]
    return name.split("@", 1)[0].split(":", 1)[0]


def _ports(c: Container, default: Sequence[str]) -> list[str]:
    ports = [f"{p.protocol.lower()}:{p.container_port}" for p in (c.ports or [])]
    return ports or list(default)


def launch_for(pod: Pod, c: Container, podbin: str) -> Launch:
    """The process for container ``c`` of ``pod``; raises UnknownImage with the fix."""
    image = c.image or ""
    base = image_base(image)
    env = (("POD_NAME", pod.name), ("POD_NAMESPACE", pod.namespace or "default"), ("HOSTNAME", pod.name),
           ("PATH", f"{podbin}:/usr/sbin:/usr/bin:/sbin:/bin"))
    if "agnhost" in image:
        cmd = list(c.args or c.command or [])
        if cmd[:1] == ["connect"] or (cmd[:1] and cmd[0].endswith("agnhost") and cmd[1:2] == ["connect"]):
            args = cmd[1:] if cmd[0] == "connect" else cmd[2:]
            return Launch((PYTHON, "-IS", SERVE_SCRIPT, "connect", *args), env)
        return Launch((PYTHON, "-IS", SERVE_SCRIPT, "serve", "--name", pod.name,
                       *_ports(c, ["tcp:80", "udp:80"])), env)
    if base in HTTP_IMAGES:
        http = [p for p in _ports(c, ["tcp:80"]) if p.startswith("tcp:")] or ["tcp:80"]
        return Launch((PYTHON, "-IS", SERVE_SCRIPT, "serve", "--http", "--name", pod.name, *http), env)
    if base in COMMAND_IMAGES:
        argv = list(c.command or []) + list(c.args or [])
        return Launch(tuple(argv or ["sh"]), env)
    raise UnknownImage(f"container {c.name!r}: image {image!r} is not one podnet can run",
                       hint="use nginx or httpd (HTTP server), busybox (runs the command) or an agnhost image")
