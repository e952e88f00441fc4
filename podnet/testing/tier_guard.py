"""The tiered guard the kernel tests enforce: a ``security`` tier whose GlobalNetworkPolicy
passes one client to the default tier and denies the rest, in front of a NetworkPolicy that
lets every pod of ``default`` reach ``app=web`` on port 80."""
from __future__ import annotations

from typing import Any

from podnet.kernel.probe import REACHED, probe
from podnet.testing.policy_lab import PolicyLab

WEB_FROM_CLIENTS: dict[str, Any] = {
    "metadata": {"name": "web-from-clients", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]},
}
SECURITY_TIER: dict[str, Any] = {"metadata": {"name": "security"}, "spec": {"order": 100}}


def guard_web(passed: str) -> dict[str, Any]:
    """The guard: pods with ``run=<passed>`` go on to the default tier; every other source is
    denied in ``security``."""
    return {"metadata": {"name": "security.guard-web"},
            "spec": {"tier": "security", "selector": "app == 'web'", "ingress": [
                {"action": "Pass", "source": {"selector": f"run == '{passed}'"}}, {"action": "Deny"}]}}


def reaches_web(lab: PolicyLab, src: str, dst: str) -> bool:
    """A real TCP connection from ``src`` to ``dst``'s port 80 was answered."""
    return probe(lab.pods[src].netns, lab.pods[dst].ip, 80, "TCP", 0.4)[0] in REACHED
