"""Apply a node's desired routing to its kernel: VTEP, FDB, neighbours, routes, the NAT table,
subnet.env and BIRD, each reconciled (read back, diff, smallest change).

Restart-safe: everything is found again by name (VTEP), route protocol (podnet's number), nft
table (``ip podnet-nat``) or PID file (bird), so a restarted agent adopts what is there instead
of duplicating it. A failing step is reported and does not stop the others. The values come
rendered (``dataplane.node_routing``); deciding them is the agent's routing manager's job.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from podnet.dataplane.nft.model import NAT_TABLE
from podnet.dataplane.routes import DesiredRouting

from . import lb_addresses, routes, vxlan
from .bird import Bird
from .netns import ipr_in
from .nft.apply import NftApplier


@dataclass
class AppliedRouting:
    """What one apply changed, and what it could not do."""

    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bird: str | None = None
    vtep: dict[str, Any] | None = None


class RoutingApplier:
    """The routing state of one node's namespace (None: the caller's); files in ``run_dir``."""

    def __init__(self, run_dir: str, netns_name: str | None = None, supervised_bird: bool = False) -> None:
        self.run_dir = run_dir
        self.netns = netns_name
        self.bird = Bird(run_dir, netns_name, supervised=supervised_bird)
        self.nat = NftApplier(netns_name, table=NAT_TABLE)

    def apply(self, want: DesiredRouting, bird_config: str | None, underlay_dev: str = "eth0") -> AppliedRouting:
        """Make the kernel hold ``want``; BIRD runs ``bird_config`` (None: no BIRD)."""
        os.makedirs(self.run_dir, exist_ok=True)
        done = AppliedRouting()
        with ipr_in(self.netns) as ipr:
            try:
                if want.vxlan is not None:
                    done.changes += vxlan.ensure_vtep(ipr, want.vxlan)
                    done.changes += vxlan.apply_fdb(ipr, want.vxlan.name, want.fdb)
                    done.changes += vxlan.apply_neighbours(ipr, want.vxlan.name, want.neighbours)
                    done.vtep = {"name": want.vxlan.name, "mac": want.vxlan.mac, "address": want.vxlan.address,
                                 "mtu": want.vxlan.mtu, "vni": want.vxlan.vni, "port": want.vxlan.port}
                done.changes += vxlan.remove_vteps(ipr, keep=want.vxlan.name if want.vxlan else None)
            except Exception as exc:  # keep going: routes and BGP may still work
                done.errors.append(f"vxlan: {exc}")
            added, removed, errors = routes.apply_routes(ipr, want.routes)
            done.changes += [f"route +{r.dst} via {r.gateway} dev {r.dev}" for r in added]
            done.changes += [f"route -{r.dst} via {r.gateway} dev {r.dev}" for r in removed]
            done.errors += errors
            taken, given_up, errors = lb_addresses.apply(ipr, underlay_dev, want.lb_addresses)
            done.changes += [f"lb address +{ip} on {underlay_dev}" for ip in taken]
            done.changes += [f"lb address -{ip} on {underlay_dev}" for ip in given_up]
            done.errors += errors
        for ip in taken:
            lb_addresses.announce(underlay_dev, ip, self.netns)
        try:
            # Read back every time: the resync timer is what repairs a table changed by hand.
            changed = self.nat.remove() if want.nat is None else not self.nat.sync(want.nat, read_back=True).empty
            if changed:
                done.changes.append(f"nat table {NAT_TABLE.name} updated")
        except Exception as exc:
            done.errors.append(f"natOutgoing: {exc}")
        write_file(os.path.join(self.run_dir, "subnet.env"), want.subnet_env)
        try:
            if bird_config is not None:
                done.bird = self.bird.apply(bird_config)
            elif not self.bird.supervised and self.bird.stop():
                done.bird = "stopped"
        except Exception as exc:
            done.errors.append(f"bird: {exc}")
        return done

    def teardown(self) -> None:
        """Remove everything ``apply`` made on the node (idempotent)."""
        self.bird.stop()
        with ipr_in(self.netns) as ipr:
            routes.apply_routes(ipr, frozenset())
            vxlan.remove_vteps(ipr)
        self.nat.remove()
        write_file(os.path.join(self.run_dir, "subnet.env"), None)


def write_file(path: str, text: str | None) -> None:
    """Replace ``path`` atomically with ``text``; None removes it."""
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
