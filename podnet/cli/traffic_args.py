"""The traffic options that ``matrix``, ``probe`` and ``verify`` share (``-n``, ``--ports``,
``--protocols``), parsed one way so the engine's table and the kernel's are always over the
same cells."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from podnet.errors import PodnetError
from podnet.policy.cluster import ICMP, PROTOCOLS, Endpoint

KNOWN_PROTOCOLS = PROTOCOLS + (ICMP,)


def split_list(values: Sequence[str]) -> list[str]:
    """``("a,b", "c")`` → ``["a", "b", "c"]``: repeated options and comma lists alike."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def namespaces_arg(namespaces: Sequence[str], known: Iterable[str]) -> set[str]:
    """The namespaces asked for (empty: all); an unknown one is an error."""
    wanted = set(split_list(namespaces))
    unknown = sorted(wanted - set(known))
    if unknown:
        raise PodnetError(f"namespace {unknown[0]} not found", hint="list them with `podnet get ns`")
    return wanted


def ports_arg(text: str | None, pods: Sequence[Endpoint]) -> list[int]:
    """``--ports 80,81``; without it every port the pods declare (80 if none)."""
    if not text:
        return sorted({num for ep in pods for num, _ in ep.container_ports}) or [80]
    try:
        ports = sorted({int(p) for p in split_list([text])})
    except ValueError:
        raise PodnetError(f"--ports {text!r}: ports are numbers separated by commas", hint="e.g. --ports 80,81") from None
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad:
        raise PodnetError(f"--ports: {bad[0]} is outside 1-65535")
    return ports


def protocols_arg(text: str) -> list[str]:
    """``--protocols TCP,UDP``, upper-cased and checked."""
    out = [p.upper() for p in split_list([text])]
    for proto in out:
        if proto not in KNOWN_PROTOCOLS:
            raise PodnetError(f"--protocols: unknown protocol {proto!r}", hint=f"use {','.join(KNOWN_PROTOCOLS)}")
    return out
