"""Apply one node's routing plan to the kernel: VTEP, FDB, neighbours, routes, NAT table,
subnet.env and BIRD, each reconciled (read back, diff, smallest change).

Restart-safe: everything is found again by name (VTEP), route protocol (podnet's number), nft
table (``podnet-nat``) or PID file (bird), so a restarted agent adopts what is there instead of
duplicating it. A failing step is reported in the status and does not stop the others."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from podnet.dataplane.bird_config import render_bird_config
from podnet.dataplane.routes import desired_routing
from podnet.routing.plan import RoutingPlan

from . import nat, netns, routes, vxlan
from .bird import Bird
from .underlay import ipr_in

STATUS_FILE = "routing-status.json"


@dataclass
class RoutingStatus:
    """What the last reconcile did and what it could not do (shown by ``podnet node status``)."""

    node: str
    backend: str
    time: float
    routes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    bird: str | None = None
    vtep: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return not self.errors


def read_status(run_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(run_dir, STATUS_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _in_ns(ns: str | None, fn, *args):
    if ns is None:
        return fn(*args)
    with netns.enter(ns):
        return fn(*args)


def apply_routing(plan: RoutingPlan, run_dir: str, netns_name: str | None = None,
                  underlay_dev: str = "eth0") -> RoutingStatus:
    """Make the node's kernel match ``plan``. ``netns_name`` None: the caller's namespace."""
    os.makedirs(run_dir, exist_ok=True)
    want = desired_routing(plan, underlay_dev)
    st = RoutingStatus(node=plan.node, backend=plan.backend, time=time.time(),
                       refusals=[f"{r.reason} [{r.dst}]" for r in plan.refusals], problems=list(plan.problems))
    with ipr_in(netns_name) as ipr:
        try:
            if want.vxlan is not None:
                st.changes += vxlan.ensure_vtep(ipr, want.vxlan)
                st.changes += vxlan.apply_fdb(ipr, want.vxlan.name, want.fdb)
                st.changes += vxlan.apply_neighbours(ipr, want.vxlan.name, want.neighbours)
                st.vtep = {"name": want.vxlan.name, "mac": want.vxlan.mac, "address": want.vxlan.address,
                           "mtu": want.vxlan.mtu, "vni": want.vxlan.vni, "port": want.vxlan.port}
            st.changes += vxlan.remove_vteps(ipr, keep=want.vxlan.name if want.vxlan else None)
        except Exception as exc:  # keep going: routes and BGP may still work
            st.errors.append(f"vxlan: {exc}")
        added, removed, errors = routes.apply_routes(ipr, want.routes)
        st.changes += [f"route +{r.dst} via {r.gateway} dev {r.dev}" for r in added]
        st.changes += [f"route -{r.dst} via {r.gateway} dev {r.dev}" for r in removed]
        st.errors += errors
        st.routes = sorted(f"{r.dst} via {r.gateway} dev {r.dev}{' onlink' if r.onlink else ''}"
                           for r in want.routes)
    try:
        if _in_ns(netns_name, nat.apply_nat, want.nat):
            st.changes.append("nat table podnet-nat updated")
    except Exception as exc:
        st.errors.append(f"natOutgoing: {exc}")
    _write(os.path.join(run_dir, "subnet.env"), want.subnet_env)
    bird = Bird(run_dir, netns_name)
    try:
        if plan.bgp is not None:
            st.bird = bird.apply(render_bird_config(plan.bgp, plan.node, bird.log))
        elif bird.stop():
            st.bird = "stopped"
    except Exception as exc:
        st.errors.append(f"bird: {exc}")
    _write(os.path.join(run_dir, STATUS_FILE), json.dumps(asdict(st), indent=1))
    return st


def teardown_routing(run_dir: str, netns_name: str | None = None) -> None:
    """Remove everything ``apply_routing`` made on the node (idempotent)."""
    Bird(run_dir, netns_name).stop()
    with ipr_in(netns_name) as ipr:
        routes.apply_routes(ipr, frozenset())
        vxlan.remove_vteps(ipr)
    _in_ns(netns_name, nat.remove_nat)
    for name in ("subnet.env", STATUS_FILE):
        _write(os.path.join(run_dir, name), None)


def _write(path: str, text: str | None) -> None:
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
