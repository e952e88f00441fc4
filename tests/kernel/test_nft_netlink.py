"""Element updates sent as raw netlink batches (``kernel/nft/netlink.py``) on the real kernel:
after every pod change the kernel's table equals a full render, a refused batch changes
nothing, and the applier recovers by reading the kernel back."""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.live import LiveTable
from podnet.dataplane.nft.render import render_indexed
from podnet.errors import DataplaneError, PodnetError
from podnet.kernel import netns
from podnet.kernel.nft.apply import NftApplier
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ClusterState, Endpoint, endpoint_for_pod

pytestmark = pytest.mark.kernel

NODE_IPS = ["10.99.0.1", "10.99.0.2"]
NAMESPACES = [Namespace.model_validate({"metadata": {"name": "default"}})]
POLICIES = [NetworkPolicy.model_validate({
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": f"np-{app}", "namespace": "default"},
    "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress", "Egress"],
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": peer}}}], "ports": [{"port": 80}]}],
             "egress": [{"to": [{"podSelector": {"matchLabels": {"app": peer}}}]}]}})
    for app, peer in (("web", "client"), ("client", "web"), ("db", "web"))]
APPS = ["web", "client", "db", "other"]


def _pod(name: str, ip: str, node: str, app: str) -> Endpoint:
    return endpoint_for_pod(Pod.model_validate({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": NODE_IPS[node == "n2"]}}))


@pytest.fixture()
def ns(prefix: str) -> Iterator[str]:
    name = f"{prefix}nft"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)


def _state(pods: dict[str, Endpoint]) -> ClusterState:
    return ClusterState.from_parts(NAMESPACES, list(pods.values()), ClusterState.build(NAMESPACES, [], POLICIES).policies)


def test_pod_changes_by_netlink_leave_the_kernel_equal_to_a_full_render(ns: str) -> None:
    rng = random.Random(5)
    pods = {f"p{i}": _pod(f"p{i}", f"10.244.{1 + i % 2}.{10 + i}", f"n{1 + i % 2}", APPS[i % 4]) for i in range(8)}
    applier = NftApplier(ns)
    state = _state(pods)
    table, index = render_indexed(state, "n1", node_ips=NODE_IPS)
    applier.sync(table)
    live = LiveTable(table, index)
    by_netlink = 0
    ips = iter(range(100, 250))
    for step in range(40):
        name = rng.choice(sorted(pods) + [f"new{step}"])
        old = pods.get(name)
        if old is not None and rng.random() < 0.2:
            new = None
            pods.pop(name)
        else:
            node = rng.choice(["n1", "n2"])
            ip = old.ip if old is not None and rng.random() < 0.6 else f"10.244.{1 if node == 'n1' else 2}.{next(ips)}"
            new = pods[name] = _pod(name, ip, node, rng.choice(APPS))  # type: ignore[arg-type]
        state = _state(pods)
        full, full_index = render_indexed(state, "n1", node_ips=NODE_IPS)
        update = live.plan_pods([(old, new)], state.policies_by_ns, state)
        if update is None:
            applier.sync(full)
            live = LiveTable(full, full_index)
        else:
            how = applier.apply_elements(update.commands, live, lambda live=live, update=update: live.commit(update))
            if update.commands:
                assert how == "netlink"
                by_netlink += 1
        kernel = applier.read()
        assert kernel is not None
        assert plan_sync(full, kernel).empty, f"step {step}: the kernel differs from a full render"
        assert plan_sync(full, live.table).empty, f"step {step}: the model differs from a full render"
    assert by_netlink >= 15


def test_a_refused_batch_changes_nothing_and_the_next_sync_reads_back(ns: str) -> None:
    pods = {"web": _pod("web", "10.244.1.2", "n1", "web"), "client": _pod("client", "10.244.2.2", "n2", "client")}
    applier = NftApplier(ns)
    table, index = render_indexed(_state(pods), "n1", node_ips=NODE_IPS)
    applier.sync(table)
    before = applier.read()
    pod_set = next(n for n in table.sets if n.startswith("pods-"))
    t = {"family": "inet", "table": "podnet"}
    cmds = [{"add": {"element": {**t, "name": pod_set, "elem": ["10.244.9.9"]}}},
            {"delete": {"element": {**t, "name": pod_set, "elem": ["10.244.9.10"]}}}]  # not there: refused
    with pytest.raises(PodnetError, match="element update") as refused:
        applier.apply_elements(cmds, table)
    assert isinstance(refused.value, DataplaneError) and not refused.value.retryable  # the kernel said no
    after = applier.read()
    assert after is not None and before is not None
    assert after.sets[pod_set].elements == before.sets[pod_set].elements  # the add did not land either
    # The model was dropped: the next sync reads the kernel back (and finds nothing to do).
    assert applier.sync(table).empty
    # With the model back, the valid half alone goes through.
    assert applier.apply_elements(cmds[:1], table) == "netlink"
    assert ((int.from_bytes(bytes([10, 244, 9, 9]), "big"),) * 2,) in applier.read().sets[pod_set].elements  # type: ignore[union-attr]


def test_a_burst_of_elements_is_one_batch(ns: str) -> None:
    """Thousands of elements (a burst of pod changes polled together) still go as one batch."""
    pods = {"web": _pod("web", "10.244.1.2", "n1", "web")}
    applier = NftApplier(ns)
    table, _ = render_indexed(_state(pods), "n1", node_ips=NODE_IPS)
    applier.sync(table)
    pod_set = next(n for n in table.sets if n.startswith("pods-"))
    before = len(table.sets[pod_set].elements)
    t = {"family": "inet", "table": "podnet"}
    ips = [f"10.250.{i // 250}.{1 + i % 250}" for i in range(5000)]
    assert applier.apply_elements([{"add": {"element": {**t, "name": pod_set, "elem": ips}}}], table) == "netlink"
    assert len(applier.read().sets[pod_set].elements) == before + 5000  # type: ignore[union-attr]
    assert applier.apply_elements([{"delete": {"element": {**t, "name": pod_set, "elem": ips}}}], table) == "netlink"
    assert len(applier.read().sets[pod_set].elements) == before  # type: ignore[union-attr]
    assert applier.model_matches_kernel()


RULE_POLICIES = [NetworkPolicy.model_validate({
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "default"},
    "spec": spec}) for name, spec in [
    ("web", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"],
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                                   {"namespaceSelector": {}}],
                          "ports": [{"port": 80}, {"protocol": "UDP", "port": 53}]},
                         {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.3.0/24"]}}]}],
             "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/64"}}], "ports": [{"port": 8000, "endPort": 8080},
                                                                         {"protocol": "UDP", "port": 9}]},
                        {"ports": [{"protocol": "TCP"}]}, {}]}),
    ("db", {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}),
]]


def _listing(applier: NftApplier) -> list[str]:
    """The table as nft lists it (handles off), one canonical line per object."""
    import json

    with applier._inside() as nft:
        items = applier._listing(nft) or []
    for item in items:
        for body in item.values():
            body.pop("handle", None)
    return sorted(json.dumps(i, sort_keys=True) for i in items)


def test_chains_rules_and_sets_by_netlink_list_as_libnftables_writes_them(ns: str) -> None:
    """The policy and signature chains of a table written by raw netlink messages (chains,
    rules with anonymous port sets, a new pod set) read back from the kernel exactly as the
    same table written by libnftables: same expressions, same comments."""
    import json

    from podnet.dataplane.nft.diff import set_elements
    from podnet.dataplane.nft.model import NftChain, NftTable
    from podnet.kernel.nft.netlink import encode

    other = f"{ns}2"  # under the test's prefix too
    netns.create(other)
    try:
        pods = {"web": _pod("web", "10.244.1.2", "n1", "web"), "client": _pod("client", "10.244.2.2", "n2", "client"),
                "db": _pod("db", "10.244.1.3", "n1", "db")}
        state = ClusterState.build(NAMESPACES, [], RULE_POLICIES)
        state = ClusterState.from_parts(NAMESPACES, list(pods.values()), state.policies)
        table, _ = render_indexed(state, "n1", node_ips=NODE_IPS)
        by_lib = NftApplier(ns)
        by_lib.sync(table)
        # The other namespace: the base chains (the dispatch chains empty) and the sets every
        # pod change needs through libnftables, then the rest as one raw netlink batch: a new
        # pod set, the rules' port sets, the dispatch membership sets, every other chain and
        # the dispatch rules.
        base = {"forward", "input", "from-wl", "to-wl", "egress-ok"}
        dispatch = {"from-wl", "to-wl"}
        new_set = next(n for n in table.sets if n.startswith("pods-") and table.sets[n].elements)
        late = {n for n in table.sets if n == new_set or n.startswith(("ports-", "from-", "to-"))}
        first = NftTable(table.family, table.name, sets={n: s for n, s in table.sets.items() if n not in late},
                         chains={n: (NftChain(n, ()) if n in dispatch else c)
                                 for n, c in table.chains.items() if n in base})
        by_nl = NftApplier(other)
        by_nl.sync(first)
        rest = [c for n, c in sorted(table.chains.items()) if n not in base]
        cmds = [{"add": table.sets[n].to_json(table.id)} for n in sorted(late)]
        cmds += [{"add": c.to_json(table.id)} for c in rest]
        cmds += [{"add": r} for c in rest + [table.chains[n] for n in sorted(dispatch)] for r in c.rules_json(table.id)]
        assert any("range" in json.dumps(c) for c in cmds) and any("ip6" in json.dumps(c) for c in cmds)
        encoded = encode(cmds, table.id, lambda name: None, 1000)
        assert encoded is not None, "the encoder declined a policy table"
        by_nl._element_socket().commit(*encoded)
        listed = _listing(by_nl)
        assert listed == _listing(by_lib)
        assert sum(line.startswith('{"rule"') for line in listed) == table.counts()["rules"]
        assert any('"range": [8000, 8080]' in line and "fd00::" not in line for line in listed)
        # Flush and refill one chain (the per-policy rewrite), again equal.
        pol_chain = next(c for n, c in sorted(table.chains.items()) if n.startswith("pi-"))
        again = encode([{"flush": {"chain": {"family": "inet", "table": "podnet", "name": pol_chain.name}}}]
                       + [{"add": r} for r in pol_chain.rules_json(table.id)], table.id, table.key_info, 2000)
        assert again is not None
        by_nl._element_socket().commit(*again)
        assert _listing(by_nl) == _listing(by_lib)
        # A rule's ports edited (its set's elements, deletes first, a range among them) and a
        # pod moved between dispatch sets, both ways, again equal.
        ports = next(s for n, s in sorted(table.sets.items()) if n.startswith("ports-") and len(s.elements) > 1)
        opened = next(n for n in sorted(table.sets) if n.startswith("from-") and n != "from-open"
                      and table.sets[n].elements)
        moved = sorted(table.sets[opened].elements)[0]
        edit = [("tcp", (1, 2)), ("udp", (53, 53))]
        for side in (by_lib, by_nl):
            cmds = [{"delete": set_elements(table.id, ports, sorted(ports.elements))},
                    {"add": set_elements(table.id, ports, edit)},
                    {"delete": set_elements(table.id, table.sets[opened], [moved])},
                    {"add": set_elements(table.id, table.sets["from-open"], [moved])}]
            if side is by_lib:
                with side._inside() as nft:
                    side._run(nft, cmds)
            else:
                batch = encode(cmds, table.id, table.key_info, 3000)
                assert batch is not None
                side._element_socket().commit(*batch)
        assert _listing(by_nl) == _listing(by_lib)
        assert any('"range": [1, 2]' in line for line in _listing(by_nl))
    finally:
        netns.remove(other)
