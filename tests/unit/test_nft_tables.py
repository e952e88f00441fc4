"""The nftables model beyond the policy table: tables of other families with NAT base chains,
concatenated-key verdict maps, ``numgen``, ``dnat`` and ``masquerade``, rendered, read back and
diffed like the policy table (natOutgoing's ``ip podnet-nat``, and a Service proxy table)."""
from __future__ import annotations

import json
from pathlib import Path

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.model import NftChain, NftTable, parse_listing
from podnet.dataplane.nft.nat import render_nat
from podnet.testing.service_table import SERVICE_TABLE, service_table

DATA = Path(__file__).resolve().parent.parent / "data" / "nft"
SERVICES = {("10.96.0.10", "udp", 53): [("10.244.1.2", 53), ("10.244.2.2", 53)],
            ("10.96.0.1", "tcp", 443): [("10.99.0.1", 6443)]}


def _canonical(table: NftTable) -> list[str]:
    return sorted(json.dumps(c, sort_keys=True) for c in table.to_json())


def _listing(table: NftTable) -> list[dict]:  # type: ignore[type-arg]
    """What ``nft -j list table`` prints for the table (the objects, without the ``add``)."""
    return [c["add"] for c in table.to_json()]


def test_nat_outgoing_table_golden_and_round_trip() -> None:
    table = render_nat(("10.244.0.0/16",), ("10.244.0.0/16", "10.245.0.0/24"))
    got = _canonical(table)
    assert got == json.loads((DATA / "nat.json").read_text())
    chain = table.chains["postrouting"]
    assert (chain.type, chain.hook, chain.prio) == ("nat", "postrouting", 100)
    assert plan_sync(table, parse_listing(table.id, _listing(table))).empty


def test_nat_outgoing_change_is_element_deltas() -> None:
    before = render_nat(("10.244.0.0/16",), ("10.244.0.0/16",))
    after = render_nat(("10.244.0.0/16", "10.250.0.0/24"), ("10.244.0.0/16", "10.250.0.0/24"))
    plan = plan_sync(after, before)
    assert not plan.full and plan.chains_rewritten == 0
    assert [next(iter(c)) for c in plan.commands] == ["add", "add"]
    assert all(c["add"]["element"]["family"] == "ip" and c["add"]["element"]["table"] == "podnet-nat"
               for c in plan.commands)


def test_service_table_expresses_nat_hooks_concatenated_maps_and_numgen() -> None:
    table = service_table(SERVICES, "10.244.0.0/16")
    assert table.id == SERVICE_TABLE and table.family == "ip"
    pre = table.chains["nat-prerouting"]
    assert (pre.type, pre.hook, pre.prio) == ("nat", "prerouting", -100)
    assert (table.chains["nat-postrouting"].prio, table.chains["nat-postrouting"].type) == (100, "nat")
    ips = table.maps["service-ips"]
    assert ips.key_types == ("ipv4_addr", "inet_proto", "inet_service")
    svc = ips.elements[("10.96.0.10", "udp", "53")]
    (pick,) = table.chains[svc[1]].rules[0].expr
    assert pick["vmap"]["key"] == {"numgen": {"mode": "random", "mod": 2, "offset": 0}}
    assert [n for n, _ in pick["vmap"]["data"]["set"]] == [0, 1]
    targets = [verdict["goto"]["target"] for _, verdict in pick["vmap"]["data"]["set"]]
    assert [table.chains[t].rules[0].expr[-1] for t in targets] == [
        {"dnat": {"addr": "10.244.1.2", "port": 53}}, {"dnat": {"addr": "10.244.2.2", "port": 53}}]
    assert {"masquerade": None} in table.chains["nat-postrouting"].rules[0].expr
    # Every object carries the table's own family and name.
    for cmd in table.to_json()[1:]:
        (body,) = cmd["add"].values()
        assert (body["family"], body["table"]) == ("ip", "podnet-svc")


def test_service_table_round_trips_and_diffs_by_element() -> None:
    table = service_table(SERVICES, "10.244.0.0/16")
    assert plan_sync(table, parse_listing(table.id, _listing(table))).empty
    assert plan_sync(table, None).commands[0] == {"add": {"table": {"family": "ip", "name": "podnet-svc"}}}
    # One Service gone: its map entry and chains go, nothing else is rewritten.
    smaller = service_table({k: v for k, v in SERVICES.items() if k[1] == "udp"}, "10.244.0.0/16")
    plan = plan_sync(smaller, table)
    assert not plan.full and plan.chains_rewritten == 0 and plan.chains_removed == 2 and plan.map_changes == 1
    # A base chain of another type or priority cannot change in place: the table is replaced.
    moved = NftTable(table.family, table.name, table.sets, table.maps,
                     {**table.chains, "nat-output": NftChain("nat-output", table.chains["nat-output"].rules,
                                                             hook="output", prio=-150, type="nat")})
    assert plan_sync(moved, table).full
