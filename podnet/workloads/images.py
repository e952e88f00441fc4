"""What a container image means here: images are mapped to built-in workloads, never pulled.

nginx / httpd → an HTTP server on the container's ports (default 80) answering with the pod's
name; busybox → the pod's own command, with Debian's busybox applets on PATH; any image whose
name contains ``agnhost`` → Kubernetes' agnhost: ``netexec``, ``serve-hostname``, ``pause``,
``liveness``, ``connect`` and ``grpc-health-checking`` with their flags, or without a
subcommand a server on every declared port and protocol; coredns → podnet's cluster DNS server
(its Corefile arguments are ignored: it serves what kubeadm's Corefile configures). Anything
else is refused with a message the pod's status shows. An image under ``ingress-nginx`` runs
podnet's ingress controller, which runs Debian's nginx.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.errors import PodnetError
from podnet.model.core import Container, Pod

WORKLOADS_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(WORKLOADS_DIR)  # podnet's code: visible read-only inside every sandbox
SERVE_SCRIPT = os.path.join(WORKLOADS_DIR, "serve.py")
GRPC_SCRIPT = os.path.join(WORKLOADS_DIR, "grpc_server.py")
WGET_SCRIPT = os.path.join(WORKLOADS_DIR, "wget.py")
PYTHON = "/usr/bin/python3"
HTTP_IMAGES = ("nginx", "httpd")
DNS_IMAGES = ("coredns",)  # podnet's cluster DNS server (podnet/dns), configured by flags, not a Corefile
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
        return Launch(_agnhost(pod, c), env)
    if base in HTTP_IMAGES:
        http = [p for p in _ports(c, ["tcp:80"]) if p.startswith("tcp:")] or ["tcp:80"]
        return Launch((PYTHON, "-IS", SERVE_SCRIPT, "serve", "--http", "--name", pod.name, *http), env)
    if "ingress-nginx" in image:  # registry.k8s.io/ingress-nginx/controller: nginx and its controller
        return Launch((sys.executable, "-I", "-m", "podnet.ingress.controller", *(c.args or ())), env)
    if base in DNS_IMAGES:
        return Launch((sys.executable, "-I", "-m", "podnet.dns.server"), env)
    if base in COMMAND_IMAGES:
        argv = list(c.command or []) + list(c.args or [])
        return Launch(tuple(argv or ["sh"]), env)
    raise UnknownImage(f"container {c.name!r}: image {image!r} is not one podnet can run",
                       hint="use nginx or httpd (HTTP server), busybox (runs the command) or an agnhost image")


def _flags(words: Sequence[str]) -> dict[str, str]:
    """``--a=1 --b 2 --c`` → {"a": "1", "b": "2", "c": "true"} (cobra's flag forms)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
                value, i = words[i + 1], i + 1
            out[name] = value if (eq or value) else "true"
        i += 1
    return out


def _agnhost(pod: Pod, c: Container) -> tuple[str, ...]:
    words = list(c.command or []) + list(c.args or [])
    if words and words[0].endswith("agnhost"):
        words = words[1:]
    sub, rest = (words[0], words[1:]) if words else ("", [])
    flags = _flags(rest)
    serve = (PYTHON, "-IS", SERVE_SCRIPT)
    delay = ("--delay-shutdown", flags.get("delay-shutdown", "0"))
    if sub == "connect":
        return (*serve, "connect", *rest)
    if sub == "pause":
        return (*serve, "pause", *delay)
    if sub == "netexec":
        ports = [f"tcp:{flags.get('http-port', '8080')}"]
        if flags.get("udp-port", "8081") != "-1":
            ports.append(f"udp:{flags.get('udp-port', '8081')}")
        if flags.get("sctp-port", "-1") != "-1":
            ports.append(f"sctp:{flags['sctp-port']}")
        return (*serve, "serve", "--name", pod.name, *delay, *ports)
    if sub == "serve-hostname":
        port = flags.get("port", "9376")
        protos = [p for p in ("tcp", "udp") if flags.get(p) == "true"] or ["tcp"]
        return (*serve, "serve", "--name", pod.name, *[f"{p}:{port}" for p in protos])
    if sub == "liveness":
        return (*serve, "serve", "--name", pod.name, "--liveness", "tcp:8080")
    if sub == "grpc-health-checking":
        return (sys.executable, "-I", GRPC_SCRIPT, *rest)
    return (*serve, "serve", "--name", pod.name, *_ports(c, ["tcp:80", "udp:80"]))
