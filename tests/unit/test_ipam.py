"""IPAM: block affinity, claiming, borrowing, handles, pools, exhaustion and leak GC."""
from __future__ import annotations

import ipaddress

import pytest

from podnet.errors import PodnetError, ResourceExhausted
from podnet.ipam.allocator import IPAM
from podnet.ipam.blocks import POOLS, Block, LeakTracker, affinity_key, block_key, next_free_block, usage
from podnet.store.api import Put
from podnet.store.memory import MemoryStore


def pool(name: str, cidr: str, block: int = 26, **spec: object) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
            "spec": {"cidr": cidr, "blockSize": block, **spec}}


def add_pool(store: MemoryStore, name: str, cidr: str, block: int = 26, **spec: object) -> None:
    store.txn([], [Put(POOLS + name, pool(name, cidr, block, **spec))])


def add_node(store: MemoryStore, name: str, labels: dict[str, str]) -> None:
    store.txn([], [Put(f"/registry/nodes/{name}", {"apiVersion": "v1", "kind": "Node",
                                                   "metadata": {"name": name, "labels": labels}})])


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_default_pool_created_and_first_block_affine(store: MemoryStore) -> None:
    ipam = IPAM(store)
    a = ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"})
    assert [p.spec.cidr for p in ipam.pools()] == ["10.244.0.0/16"]
    assert ipam.pools()[0].spec.effective_block_size == 26
    assert a.ip == "10.244.0.0" and a.block == "10.244.0.0/26" and a.cidr == "10.244.0.0/32"
    assert ipam.block_affinities() == {"n1": ["10.244.0.0/26"]}


def test_pod_cidr_override(store: MemoryStore) -> None:
    ipam = IPAM(store, default_cidr="10.50.0.0/16")
    assert ipam.assign("h", "n1", {}).ip.startswith("10.50.0.")


def test_nodes_get_their_own_blocks_and_addresses_are_distinct(store: MemoryStore) -> None:
    ipam = IPAM(store)
    ips = {ipam.assign(f"h{i}-{n}", n, {}).ip for i in range(70) for n in ("n1", "n2")}
    assert len(ips) == 140
    aff = ipam.block_affinities()
    assert len(aff["n1"]) == 2 and len(aff["n2"]) == 2  # 70 addresses need two /26 blocks each
    assert not set(aff["n1"]) & set(aff["n2"])
    for n in ("n1", "n2"):
        blocks = [ipaddress.ip_network(c) for c in aff[n]]
        mine = {ipam.handle(f"h{i}-{n}")["ips"][0] for i in range(70)}  # type: ignore[index]
        assert all(any(ipaddress.ip_address(ip) in b for b in blocks) for ip in mine)


def test_assign_is_idempotent_per_handle_and_release_frees_exactly(store: MemoryStore) -> None:
    ipam = IPAM(store)
    a = ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"})
    assert ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"}) == a
    b = ipam.assign("net.c1.eth1", "n1", {"containerID": "c1"})
    assert b.ip != a.ip
    assert ipam.release("net.c1.eth0") == [a.ip]
    assert ipam.release("net.c1.eth0") == []  # idempotent
    assert ipam.handle("net.c1.eth1")["ips"] == [b.ip]  # type: ignore[index]
    assert ipam.assign("net.c2.eth0", "n1", {}).ip == a.ip  # freed address is reused


def test_a_handle_held_on_one_node_is_refused_on_another(store: MemoryStore) -> None:
    ipam = IPAM(store)
    a = ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"})
    with pytest.raises(PodnetError, match="one attachment cannot run on two nodes"):
        ipam.assign("net.c1.eth0", "n2", {"containerID": "c1"})
    assert ipam.handle("net.c1.eth0")["node"] == "n1"  # type: ignore[index]
    assert ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"}) == a  # the owner's retry still gets it


def test_borrow_from_another_nodes_block_unless_strict(store: MemoryStore) -> None:
    add_pool(store, "tiny", "10.9.0.0/27", 28)  # two blocks of 16
    ipam = IPAM(store)
    for i in range(16):
        ipam.assign(f"a{i}", "n1", {})
    for i in range(10):
        ipam.assign(f"b{i}", "n2", {})
    assert ipam.block_affinities() == {"n1": ["10.9.0.0/28"], "n2": ["10.9.0.16/28"]}
    # n1's block is full and no block is left: n1 borrows from n2's block
    borrowed = ipam.assign("a16", "n1", {})
    assert ipaddress.ip_address(borrowed.ip) in ipaddress.ip_network("10.9.0.16/28")
    ipam.set_strict_affinity(True)
    with pytest.raises(ResourceExhausted, match="strictAffinity"):
        ipam.assign("a17", "n1", {})
    assert ipam.assign("b10", "n2", {}).block == "10.9.0.16/28"


def test_exhausted_pool_fails_at_once_naming_the_pool(store: MemoryStore) -> None:
    add_pool(store, "small", "10.8.0.0/30", 30)
    ipam = IPAM(store)
    for i in range(4):
        ipam.assign(f"h{i}", "n1", {})
    with pytest.raises(ResourceExhausted, match=r"small \(10\.8\.0\.0/30\) is exhausted"):
        ipam.assign("h4", "n1", {})
    assert ipam.handle("h4") is None


def test_disabled_pool_and_node_selector(store: MemoryStore) -> None:
    add_pool(store, "off", "10.1.0.0/24", disabled=True)
    add_pool(store, "rack1", "10.2.0.0/24", nodeSelector="rack == 'one'")
    add_pool(store, "rest", "10.3.0.0/24", nodeSelector="!has(rack)")
    add_node(store, "a", {"rack": "one"})
    add_node(store, "b", {})
    add_node(store, "c", {"rack": "two"})
    ipam = IPAM(store)
    assert ipam.assign("ha", "a", {}).pool == "rack1"
    assert ipam.assign("hb", "b", {}).pool == "rest"
    with pytest.raises(ResourceExhausted, match="no enabled IP pool selects node 'c'"):
        ipam.assign("hc", "c", {})


def test_competing_claims_only_one_node_wins_a_block(store: MemoryStore) -> None:
    add_pool(store, "p", "10.7.0.0/24")
    ipam = IPAM(store)
    assert ipam.claim("n1", "10.7.0.0/26") is True
    assert ipam.claim("n2", "10.7.0.0/26") is False
    assert ipam.claim("n1", "10.7.0.0/26") is True  # re-claim of our own block is fine
    assert [k for k in (r.key for r in store.list("/podnet/ipam/affinities/")[0])] == \
        ["/podnet/ipam/affinities/n1/10.7.0.0-26"]


def test_leak_gc_needs_grace_and_recheck(store: MemoryStore) -> None:
    ipam = IPAM(store)
    ipam.assign("net.c1.eth0", "n1", {"containerID": "c1"})
    ipam.assign("net.c2.eth0", "n1", {"containerID": "c2"})
    ipam.assign("tunnel-n1", "n1", {})  # no container: never a leak
    tracker = LeakTracker(grace=30)
    live = {"net.c1.eth0"}
    assert ipam.collect_leaks(lambda: live, tracker, now=100) == []  # one observation is not enough
    assert ipam.collect_leaks(lambda: live, tracker, now=120) == []
    # the re-check sees c2 alive again (its ADD had finished in between): nothing released
    checks = iter([live, live | {"net.c2.eth0"}])
    assert ipam.collect_leaks(lambda: next(checks), tracker, now=131) == []
    assert ipam.collect_leaks(lambda: live, tracker, now=200) == ["net.c2.eth0"]
    assert set(ipam.handles()) == {"net.c1.eth0", "tunnel-n1"}


def test_release_node_blocks(store: MemoryStore) -> None:
    ipam = IPAM(store)
    ipam.assign("h1", "n1", {})
    ipam.assign("h2", "n2", {})
    ipam.release("h2")
    assert ipam.release_node_blocks("n2") == ["10.244.0.64/26"]
    assert ipam.block_affinities() == {"n1": ["10.244.0.0/26"]}


def _pending(store: MemoryStore, node: str, cidr: str) -> None:
    """What a claim leaves when its process dies after the first of its three steps."""
    store.txn([], [Put(affinity_key(node, cidr), {"node": node, "cidr": cidr, "state": "pending"})])


def test_claim_interrupted_before_the_block_is_finished_next_time(store: MemoryStore) -> None:
    add_pool(store, "p", "10.7.0.0/24")
    ipam = IPAM(store)
    _pending(store, "n2", "10.7.0.0/26")
    assert ipam.assign("a", "n2", {}).block == "10.7.0.0/26"
    rec = store.get(affinity_key("n2", "10.7.0.0/26"))
    assert rec is not None and rec.value["state"] == "confirmed"
    assert ipam.block_affinities() == {"n2": ["10.7.0.0/26"]}


def test_stale_pending_affinity_never_touches_the_block_another_node_won(store: MemoryStore) -> None:
    add_pool(store, "p", "10.7.0.0/24")
    ipam = IPAM(store)
    _pending(store, "n2", "10.7.0.0/26")
    assert ipam.claim("n1", "10.7.0.0/26") is True  # n1's claim does not see n2's affinity
    ipam.assign("a", "n1", {})
    assert ipam.release_node_blocks("n2") == []  # n2 is removed: n1 keeps its block and address
    rec = store.get(block_key("10.7.0.0/26"))
    assert rec is not None and Block.from_dict(rec.value) == Block("10.7.0.0/26", "host:n1", {0: "a"})
    assert store.get(affinity_key("n2", "10.7.0.0/26")) is None
    _pending(store, "n2", "10.7.0.0/26")
    assert ipam.claim("n2", "10.7.0.0/26") is False  # lost: the stale pending affinity goes too
    assert store.get(affinity_key("n2", "10.7.0.0/26")) is None
    assert ipam.block_affinities() == {"n1": ["10.7.0.0/26"]}


def test_pure_helpers() -> None:
    assert next_free_block("10.0.0.0/24", 26, ["10.0.0.0/26", "10.0.0.128/26"]) == "10.0.0.64/26"
    assert next_free_block("10.0.0.0/26", 26, ["10.0.0.0/26"]) is None
    b = Block("10.0.0.0/30", "host:n1", {0: "a", 2: "b"})
    assert b.first_free() == 1 and b.free == 2 and b.node == "n1"
    nb, freed = b.release_handle("b")
    assert freed == [2] and nb.allocations == {0: "a"}
    rows = usage([("p", "10.0.0.0/24", False)], [b])
    assert (rows[0].size, rows[0].used, rows[0].free, rows[0].blocks[0].used) == (256, 2, 254, 2)
    assert Block.from_dict(b.to_dict()) == b


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

OPS = st.lists(st.tuples(st.sampled_from(["assign", "assign", "release"]), st.integers(0, 40),
                         st.sampled_from(["n1", "n2", "n3"])), max_size=120)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_property_blocks_and_handles_always_agree(ops: list) -> None:
    store = MemoryStore()
    add_pool(store, "p", "10.5.0.0/27", 29)  # 32 addresses in 4 blocks of 8: 41 handles can exhaust it
    ipam = IPAM(store)
    held: dict[str, str] = {}
    nodes: dict[str, str] = {}
    for op, n, node in ops:
        h = f"h{n}"
        if op == "assign":
            try:
                a = ipam.assign(h, node, {"containerID": h})
            except ResourceExhausted:
                assert len(held) == 32 and h not in held
                continue
            except PodnetError as exc:
                assert h in held and nodes[h] != node, exc  # held for another node: refused, unchanged
                continue
            assert held.setdefault(h, a.ip) == a.ip  # idempotent per handle
            nodes.setdefault(h, node)
        else:
            freed = ipam.release(h)
            nodes.pop(h, None)
            assert freed == ([held.pop(h)] if h in held else [])
        blocks = ipam.blocks()
        owners = {str(b.address(o)): hh for b in blocks for o, hh in b.allocations.items()}
        assert owners == {ip: hh for hh, ip in held.items()}  # every address has exactly its handle
        assert set(ipam.handles()) == set(held)
        assert len({b.cidr for b in blocks}) == len(blocks) <= 4
