"""The plugin's slow path: run the handler inside the plugin process (no agent listening)."""
from __future__ import annotations

from collections.abc import Mapping

from podnet.store.api import Store
from podnet.store.open import open_state_backend

from .handler import Handler
from .spec import NetConf


def _store(conf: NetConf) -> Store:
    return open_state_backend(conf.state_dir)


def run(env: Mapping[str, str], data: bytes) -> tuple[int, str]:
    """One invocation in this process; the host side is the namespace we were started in."""
    return Handler(_store).run(env, data, "/proc/thread-self/ns/net")
