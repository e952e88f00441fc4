"""Which local pods' flows a committed policy change cuts (dataplane/nft/recheck.py), without root:
two real renders of the node's table, the diff between them, and the pods it names."""
from __future__ import annotations

from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.dispatch import dispatch_entries
from podnet.dataplane.nft.flows import FlowVerdicts, TrackedFlow
from podnet.dataplane.nft.live import LiveTable
from podnet.dataplane.nft.model import NftTable
from podnet.dataplane.nft.recheck import changed_objects, judge_flows, pods_to_recheck_after
from podnet.dataplane.nft.render import FROM_MAP, TO_MAP, render, render_indexed
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ClusterState
from podnet.policy.ir import compile_policy

WEB, CLIENT, OTHER, REMOTE = "10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.2.2"


def _pod(name: str, ip: str, node: str, labels: dict[str, str]) -> Pod:
    return Pod.model_validate({"metadata": {"name": name, "namespace": "default", "labels": labels},
                               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                               "status": {"phase": "Running", "podIP": ip,
                                          "hostIP": "10.99.0.1" if node == "n1" else "10.99.0.2"}})


def _pods(remote_run: str = "client") -> list[Pod]:
    return [_pod("web", WEB, "n1", {"app": "web"}), _pod("client", CLIENT, "n1", {"run": "client"}),
            _pod("other", OTHER, "n1", {"run": "other"}), _pod("remote", REMOTE, "n2", {"run": remote_run})]


def _policy(name: str, selector: dict[str, str], ingress: list[dict]) -> NetworkPolicy:  # type: ignore[type-arg]
    return NetworkPolicy.model_validate({"metadata": {"name": name, "namespace": "default"},
                                         "spec": {"podSelector": {"matchLabels": selector}, "ingress": ingress}})


WEB_FROM_CLIENTS = _policy("web", {"app": "web"}, [{"from": [{"podSelector": {"matchLabels": {"run": "client"}}}],
                                                    "ports": [{"port": 80}]}])


def _table(pods: list[Pod], policies: list[NetworkPolicy]) -> NftTable:
    ns = [Namespace.model_validate({"metadata": {"name": "default"}})]
    return render(ClusterState.build(ns, pods, policies), "n1", node_ips=["10.99.0.1"])


def _named(old: NftTable | None, new: NftTable) -> list[str]:
    plan = plan_sync(new, old)
    return pods_to_recheck_after(plan.commands, new.chains, dispatch_entries(new, FROM_MAP), dispatch_entries(new, TO_MAP))


def test_no_change_names_no_pod() -> None:
    t = _table(_pods(), [WEB_FROM_CLIENTS])
    assert _named(t, t) == []


def test_a_new_policy_names_only_the_pods_it_selects() -> None:
    before = _table(_pods(), [])
    after = _table(_pods(), [WEB_FROM_CLIENTS])
    assert _named(before, after) == [WEB]
    assert _named(after, before) == [WEB]  # and its removal the same pod


def test_a_port_change_names_the_selected_pods() -> None:
    narrower = _policy("web", {"app": "web"}, [{"from": [{"podSelector": {"matchLabels": {"run": "client"}}}],
                                                "ports": [{"port": 81}]}])
    assert _named(_table(_pods(), [WEB_FROM_CLIENTS]), _table(_pods(), [narrower])) == [WEB]


def test_a_remote_peer_leaving_a_set_names_the_pods_whose_rules_look_it_up() -> None:
    """The remote pod's label no longer matches the peer selector: one set element on this node,
    which only web's ingress rules read."""
    before = _table(_pods(), [WEB_FROM_CLIENTS])
    after = _table(_pods(remote_run="stranger"), [WEB_FROM_CLIENTS])
    commands = plan_sync(after, before).commands
    changed = changed_objects(commands)
    assert changed.sets and not changed.chains and not changed.dispatch_keys
    assert _named(before, after) == [WEB]


def test_a_local_pod_relabelled_into_a_policy_is_named() -> None:
    pods = _pods()
    relabelled = [_pod("other", OTHER, "n1", {"app": "web"}) if p.metadata.name == "other" else p for p in pods]
    before, after = _table(pods, [WEB_FROM_CLIENTS]), _table(relabelled, [WEB_FROM_CLIENTS])
    assert _named(before, after) == [OTHER]


def test_a_deleted_pod_is_named() -> None:
    pods = _pods()
    before = _table(pods, [WEB_FROM_CLIENTS])
    after = _table([p for p in pods if p.metadata.name != "client"], [WEB_FROM_CLIENTS])
    named = _named(before, after)
    assert CLIENT in named and OTHER not in named


def test_a_new_pod_names_no_pod() -> None:
    """Its packets were dropped until its entries existed: it has no flows to hold."""
    before = _table(_pods(), [WEB_FROM_CLIENTS])
    after = _table([*_pods(), _pod("fresh", "10.244.1.9", "n1", {"run": "nobody"})], [WEB_FROM_CLIENTS])
    assert plan_sync(after, before).elements_added == 3  # from-open, to-open, pod-ifaces
    assert _named(before, after) == []


def test_a_pod_whose_chain_goes_away_with_it_is_named() -> None:
    """The last pod of a signature chain leaves it: the chain and its membership set are
    removed whole (no element delete), the pod only enters its new set, and is named."""
    pods = _pods()
    relabelled = [_pod("web", WEB, "n1", {"app": "not-web"}) if p.metadata.name == "web" else p for p in pods]
    before, after = _table(pods, [WEB_FROM_CLIENTS]), _table(relabelled, [WEB_FROM_CLIENTS])
    commands = plan_sync(after, before).commands
    assert not any("delete" in c and "element" in c["delete"] for c in commands)
    assert _named(before, after) == [WEB]


def test_a_new_table_names_every_local_pod() -> None:
    assert _named(None, _table(_pods(), [WEB_FROM_CLIENTS])) == [WEB, CLIENT, OTHER]


def test_the_policy_fast_path_names_the_same_pods_as_a_full_diff() -> None:
    ns = [Namespace.model_validate({"metadata": {"name": "default"}})]
    state = ClusterState.build(ns, _pods(), [])
    table, index = render_indexed(state, "n1", node_ips=["10.99.0.1"])
    live = LiveTable(table, index, state)
    update = live.plan_policies([(None, compile_policy(WEB_FROM_CLIENTS))], state)
    assert update is not None
    live.commit(update)
    fast = pods_to_recheck_after(update.commands, live.chains, live.entries(FROM_MAP), live.entries(TO_MAP))
    assert fast == _named(table, _table(_pods(), [WEB_FROM_CLIENTS])) == [WEB]


# --- tracked flows held to the policy -----------------------------------------------------------

TCP, UDP, ICMP = 6, 17, 1


def _state(pods: list[Pod], policies: list[NetworkPolicy]) -> ClusterState:
    return ClusterState.build([Namespace.model_validate({"metadata": {"name": "default"}})], pods, policies)


def test_flows_the_new_policy_denies_are_marked_and_allowed_ones_left() -> None:
    state = _state(_pods(), [WEB_FROM_CLIENTS])
    flows = [TrackedFlow(TCP, CLIENT, WEB, 80), TrackedFlow(TCP, CLIENT, WEB, 81),
             TrackedFlow(UDP, OTHER, WEB, 80), TrackedFlow(ICMP, REMOTE, WEB, None),
             TrackedFlow(TCP, REMOTE, WEB, 80), TrackedFlow(TCP, WEB, OTHER, 22)]
    verdicts = judge_flows(flows, state, [WEB])
    assert set(verdicts.deny) == {flows[1], flows[2], flows[3]}  # wrong port, not a client, not TCP
    assert verdicts.allow == () and verdicts.gone == ()  # web's egress is not isolated


def test_a_marked_flow_the_policy_allows_again_is_released() -> None:
    denied = TrackedFlow(UDP, OTHER, WEB, 80, denied=True)
    assert judge_flows([denied], _state(_pods(), []), [WEB]).allow == (denied,)
    assert judge_flows([denied], _state(_pods(), [WEB_FROM_CLIENTS]), [WEB]) == FlowVerdicts()  # stays marked


def test_flows_of_a_deleted_pod_are_deleted_and_others_untouched() -> None:
    state = _state([p for p in _pods() if p.metadata.name != "client"], [WEB_FROM_CLIENTS])
    gone = TrackedFlow(TCP, CLIENT, REMOTE, 80)
    elsewhere = TrackedFlow(TCP, REMOTE, WEB, 81)  # denied, but neither end among the addresses to hold
    to_node = TrackedFlow(TCP, OTHER, "10.99.0.1", 10250)  # the input chain's business
    verdicts = judge_flows([gone, elsewhere, to_node, TrackedFlow(47, OTHER, WEB, None)], state, [CLIENT, OTHER],
                           node_ips=["10.99.0.1"])
    assert verdicts.gone == (gone,) and verdicts.deny == () and verdicts.allow == ()


def test_a_conntrack_listing_is_read_as_flows_of_the_wanted_pods() -> None:
    from podnet.kernel.conntrack import parse_listing

    text = "\n".join([
        f"icmp     1 29 src={REMOTE} dst={WEB} type=8 code=0 id=7 src={WEB} dst={REMOTE} type=0 code=0 id=7 "
        "mark=0 use=1",
        f"udp      17 29 src={REMOTE} dst={WEB} sport=4000 dport=53 [UNREPLIED] src={WEB} dst={REMOTE} sport=53 "
        "dport=4000 mark=219023885 use=1",
        f"udp      17 29 src={REMOTE} dst={WEB} sport=4001 dport=53 src={WEB} dst={REMOTE} sport=53 dport=4001 "
        "mark=0 use=1",
        # a Service flow: DNATed from the Service address to web, and an unrelated one
        f"tcp      6 431999 ESTABLISHED src={CLIENT} dst=10.96.0.10 sport=5000 dport=80 src={WEB} dst={CLIENT} "
        "sport=8080 dport=5000 [ASSURED] mark=0 use=1",
        "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 "
        "sport=2 dport=1 [ASSURED] mark=0 use=1",
    ])
    flows = parse_listing(text, frozenset([WEB]))
    assert set(flows) == {TrackedFlow(ICMP, REMOTE, WEB, None), TrackedFlow(UDP, REMOTE, WEB, 53, denied=True),
                          TrackedFlow(UDP, REMOTE, WEB, 53), TrackedFlow(TCP, CLIENT, WEB, 8080)}
    assert flows[TrackedFlow(ICMP, REMOTE, WEB, None)] == [
        {"saddr": REMOTE, "daddr": WEB, "proto": ICMP, "icmp_id": 7, "icmp_type": 8, "icmp_code": 0}]
    assert flows[TrackedFlow(TCP, CLIENT, WEB, 8080)] == [
        {"saddr": CLIENT, "daddr": "10.96.0.10", "proto": TCP, "sport": 5000, "dport": 80}]


def test_conntrack_requests_are_encoded_as_pyroute2_encodes_them() -> None:
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple, nfct_msg

    from podnet.kernel.conntrack import _encode

    for msg_type, fields, mark in [
            (0, {"saddr": CLIENT, "daddr": WEB, "proto": TCP, "sport": 40000, "dport": 80}, 0x0D0E0A0D),
            (0, {"saddr": REMOTE, "daddr": WEB, "proto": UDP, "sport": 5353, "dport": 53}, 0),
            (0, {"saddr": REMOTE, "daddr": WEB, "proto": ICMP, "icmp_id": 513, "icmp_type": 8, "icmp_code": 0}, 7),
            (2, {"saddr": CLIENT, "daddr": "10.96.0.10", "proto": TCP, "sport": 1, "dport": 443}, None)]:
        msg = nfct_msg.create_from(tuple_orig=NFCTAttrTuple(**fields), mark=mark)
        msg["nfgen_family"] = 2
        msg["header"]["type"] = (1 << 8) | msg_type
        msg["header"]["flags"] = 1 | 4
        msg["header"]["sequence_number"] = 9
        msg.encode()
        assert _encode(9, msg_type, fields, mark) == bytes(msg.data), fields
