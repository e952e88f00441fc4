"""The name of the tier Kubernetes NetworkPolicies go in (Calico's ``default``), in a module of
its own so the flow logger, which only names it, does not load the policy model."""
from __future__ import annotations

DEFAULT_TIER = "default"
