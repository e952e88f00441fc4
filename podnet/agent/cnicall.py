"""Calling a CNI plugin exactly as a container runtime does: exec, CNI_* env, JSON on stdin.

Like libcni for a single-plugin conflist: the plugin's config gets the list's ``name`` and
``cniVersion``; DEL and CHECK get the ADD result as ``prevResult``; GC gets
``cni.dev/valid-attachments``. A non-zero exit is turned into ``CniCallFailed`` carrying the
plugin's error JSON (code, msg, details).
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import PodnetError


class CniCallFailed(PodnetError):
    """The plugin reported an error (its spec error code is in ``code``)."""

    def __init__(self, command: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI {command} failed (code {code}): {msg}" + (f" ({details})" if details else ""))
        self.command, self.code, self.msg, self.details = command, code, msg, details


@dataclass(frozen=True)
class CniRuntime:
    """One network (a conflist with one plugin) and where its plugin binaries are."""

    conflist: Mapping[str, Any]
    bin_dirs: Sequence[str] = ("/opt/cni/bin",)
    netns_exec: Sequence[str] = ()  # e.g. nsenter --net=… to call the plugin inside a node netns
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def plugin_conf(self) -> dict[str, Any]:
        plugin = dict(self.conflist["plugins"][0])
        plugin["name"] = self.conflist["name"]
        plugin["cniVersion"] = self.conflist["cniVersion"]
        return plugin

    def plugin_path(self) -> str:
        kind = self.plugin_conf["type"]
        for d in self.bin_dirs:
            p = os.path.join(d, kind)
            if os.access(p, os.X_OK):
                return p
        raise PodnetError(f"CNI plugin {kind!r} not found in {', '.join(self.bin_dirs)}",
                          hint="run `podnet install-cni --bin-dir DIR` or fix the CNI bin directories")

    def call(self, command: str, container_id: str = "", netns: str = "", ifname: str = "eth0",
             args: Mapping[str, str] | None = None, prev_result: Mapping[str, Any] | None = None,
             valid_attachments: Sequence[Mapping[str, str]] | None = None,
             env: Mapping[str, str] | None = None, conf: Mapping[str, Any] | None = None,
             timeout: float = 60) -> dict[str, Any] | None:
        """Run one command; returns the parsed stdout (None when the plugin printed nothing)."""
        body = dict(conf if conf is not None else self.plugin_conf)
        if prev_result is not None:
            body["prevResult"] = dict(prev_result)
        if valid_attachments is not None:
            body["cni.dev/valid-attachments"] = [dict(a) for a in valid_attachments]
        full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    "CNI_COMMAND": command, "CNI_PATH": ":".join(self.bin_dirs), **self.extra_env, **(env or {})}
        if container_id:
            full_env["CNI_CONTAINERID"] = container_id
        if netns:
            full_env["CNI_NETNS"] = netns
        if ifname:
            full_env["CNI_IFNAME"] = ifname
        if args:
            full_env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in args.items())
        try:
            proc = subprocess.run([*self.netns_exec, self.plugin_path()], input=json.dumps(body).encode(),
                                  env=full_env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:  # run() has killed it
            raise CniCallFailed(command, -1, f"plugin {self.plugin_path()} did not answer within {timeout:g} s") from None
        out = proc.stdout.decode(errors="replace").strip()
        try:
            parsed = json.loads(out) if out else None
        except ValueError:
            raise CniCallFailed(command, -1, f"plugin {self.plugin_path()} printed something that is not JSON: "
                                f"{out[:200]!r}", proc.stderr.decode(errors="replace").strip()[:500]) from None
        if proc.returncode != 0:
            err = parsed if isinstance(parsed, dict) else {}
            raise CniCallFailed(command, int(err.get("code", -1)),
                                err.get("msg") or proc.stderr.decode().strip() or f"exit {proc.returncode}",
                                err.get("details", ""))
        return parsed
