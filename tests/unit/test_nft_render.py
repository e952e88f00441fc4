"""The nftables renderer and diff, without root: golden files, order independence, element
canonical forms, incremental plans, and sizes that grow with policies + pods (not pods²)."""
from __future__ import annotations

import ipaddress
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.cni.spec import Env, host_ifname
from podnet.dataplane.nft.diff import plan_sync
from podnet.dataplane.nft.dispatch import dispatch_entries
from podnet.dataplane.nft.model import (
    NftTable,
    cidr_minus,
    element_json,
    element_parse,
    interval_of,
    merge_intervals,
    parse_listing,
)
from podnet.dataplane.nft.render import policy_chain, render, workload_ifname
from podnet.model import Namespace, NetworkPolicy, Pod
from podnet.policy.cluster import ClusterState

DATA = Path(__file__).resolve().parent.parent / "data" / "nft"
UPDATE = os.environ.get("PODNET_UPDATE_GOLDEN") == "1"


def pod(ns: str, name: str, ip: str, node: str, labels: dict[str, str], ports: list[dict] | None = None) -> Pod:
    container: dict = {"name": "c", "image": "nginx"}
    if ports:
        container["ports"] = ports
    host = {"n1": "10.99.0.1", "n2": "10.99.0.2", "n3": "10.99.0.3"}[node]
    return Pod.model_validate({"metadata": {"name": name, "namespace": ns, "labels": labels},
                               "spec": {"nodeName": node, "containers": [container]},
                               "status": {"phase": "Running", "podIP": ip, "hostIP": host}})


def namespaces(**labels: dict[str, str]) -> list[Namespace]:
    return [Namespace.model_validate({"metadata": {"name": n, "labels": lab}}) for n, lab in labels.items()]


def policies(text: str) -> list[NetworkPolicy]:
    return [NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **d})
            for d in yaml.safe_load_all(text) if d]


PODS = [
    pod("default", "web", "10.244.1.2", "n1", {"app": "web"}, [{"name": "http", "containerPort": 80}]),
    pod("default", "client1", "10.244.1.3", "n1", {"run": "client1"}),
    pod("default", "client2", "10.244.2.2", "n2", {"run": "client2"}),
    pod("test", "web", "10.244.2.3", "n2", {"app": "web"}, [{"name": "http", "containerPort": 8080}]),
    pod("test", "client", "10.244.1.4", "n1", {"run": "client"}),
    pod("kube-system", "coredns", "10.244.3.2", "n3", {"k8s-app": "kube-dns"},
        [{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "dns-tcp", "containerPort": 53}]),
    pod("cs1", "box", "10.244.1.5", "n1", {"access": "true"}),
]
NAMESPACES = namespaces(default={}, test={}, cs1={"name": "cs1"},
                        **{"kube-system": {"networking/namespace": "kube-system"}})

SCENARIOS = {
    "s1": """
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {project: default}}
    - podSelector: {matchLabels: {run: client1}}
    ports: [{protocol: TCP, port: 80}]
""",
    "s2": """
metadata: {name: deny-from-other-namespaces, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {}}]}]
""",
    "s3": """
metadata: {name: default-deny-all-egress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {networking/namespace: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
---
metadata: {name: internet-egress, namespace: default}
spec:
  podSelector: {matchLabels: {networking/allow-internet-egress: "true"}}
  policyTypes: [Egress]
  egress: [{}]
""",
    "s4": """
metadata: {name: deny-all, namespace: cs1}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress: []
---
metadata: {name: egress-block, namespace: cs1}
spec:
  podSelector: {matchLabels: {access: "true"}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.94.134/32]}}]}]
---
metadata: {name: from-cs1-cs2, namespace: default}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: name, operator: In, values: [cs1, cs2]}]}}]
---
metadata: {name: named-and-range, namespace: default}
spec:
  podSelector: {matchLabels: {run: client1}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: http}, {port: dns, protocol: UDP}, {port: 30000, endPort: 32767}]
""",
}


def _canonical(table: NftTable) -> list[dict]:
    return sorted(table.to_json(), key=lambda c: json.dumps(c, sort_keys=True))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("node", ["n1", "n2"])
def test_golden(scenario: str, node: str) -> None:
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS[scenario]))
    got = _canonical(render(state, node, node_ips=[{"n1": "10.99.0.1", "n2": "10.99.0.2"}[node]]))
    path = DATA / f"{scenario}-{node}.json"
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text()), f"{path} differs; PODNET_UPDATE_GOLDEN=1 rewrites it after review"


def test_golden_s1_reads_as_intended() -> None:
    """The S1 table, spelled out: web's ingress goes through the policy's chain, which lets
    client1 in on 80/TCP only; the other pods are not isolated."""
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s1"]))
    table = render(state, "n1", node_ips=["10.99.0.1"])
    web_if = workload_ifname("default", "web")
    to_pod, from_pod = dispatch_entries(table, "to-pod"), dispatch_entries(table, "from-pod")
    verdict = to_pod[(web_if,)]
    assert verdict[0] == "goto"
    texts = [r.comment.split(" ", 1)[1] for r in table.chains[verdict[1]].rules]
    assert texts == [
        "from the pod's own node",
        "default/test-network-policy (ingress)",
        "flow log: default deny ingress (isolated by default/test-network-policy)",
        "default deny ingress (isolated by default/test-network-policy)",
    ]
    pi = table.chains[policy_chain(state.policies[0], "ingress")]
    assert [r.comment.split(" ", 1)[1] for r in pi.rules] == [
        "default/test-network-policy spec.ingress[0].from[0] ports",
        "default/test-network-policy spec.ingress[0].from[1] ports",
    ]
    members = [s for s in table.sets.values() if s.name.startswith("pods-") and s.elements]
    assert [sorted(e[0][0] for e in s.elements) for s in members] == [[int(ipaddress.ip_address("10.244.1.3"))]]
    assert to_pod[(workload_ifname("default", "client1"),)] == ("accept",)
    assert from_pod[(web_if, "10.244.1.2")] == ("goto", "egress-ok")
    assert (workload_ifname("test", "client"), "10.244.1.4") in from_pod  # every local pod
    assert not any(k[0] == workload_ifname("default", "client2") for k in from_pod)  # on n2
    # the dispatch: one rule per membership set (no per-pod verdicts), then anti-spoofing
    assert table.maps == {}
    assert table.sets["to-" + verdict[1][len("ingress-"):]].elements == {(web_if,)}
    assert [r.comment.split(" ", 1)[1] for r in table.chains["to-wl"].rules] == [
        "dispatch: pods no policy isolates for ingress", f"dispatch: pods of {verdict[1]}",
        "unknown pod interface: fail closed until programmed"]
    assert [r.comment.split(" ", 1)[1] for r in table.chains["from-wl"].rules] == [
        "dispatch: pods no policy isolates for egress", "anti-spoofing: source is not the pod's address",
        "unknown pod interface: fail closed until programmed"]
    # the rules' ports: one named interval set per policy rule, shared by its peers' rules
    ports = [s for s in table.sets.values() if s.name.startswith("ports-")]
    assert [(s.types, s.interval, s.elements) for s in ports] == [
        (("inet_proto", "inet_service"), True, frozenset({("tcp", (80, 80))}))]
    assert all(f'"@{ports[0].name}"' in r.expr_json for r in pi.rules)


def test_interface_name_matches_the_cni_plugin() -> None:
    env = Env(command="ADD", container_id="abc", args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"})
    assert workload_ifname("default", "web") == host_ifname(env)


def test_output_does_not_depend_on_input_order() -> None:
    pols = [p for text in SCENARIOS.values() for p in policies(text)]
    want = _canonical(render(ClusterState.build(NAMESPACES, PODS, pols), "n1"))
    rng = random.Random(7)
    for _ in range(5):
        pods, ps, nss = list(PODS), list(pols), list(NAMESPACES)
        rng.shuffle(pods), rng.shuffle(ps), rng.shuffle(nss)
        assert _canonical(render(ClusterState.build(nss, pods, ps), "n1")) == want


def test_named_ports_resolve_per_destination() -> None:
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s4"]))
    table = render(state, "n1")
    nport = next(s for s in table.sets.values() if s.name.startswith("nport-"))
    shown = sorted((str(ipaddress.ip_address(e[0][0])), e[1], e[2]) for e in nport.elements)
    assert shown == [("10.244.1.2", "tcp", (80, 80)), ("10.244.2.3", "tcp", (8080, 8080)),
                     ("10.244.3.2", "udp", (53, 53))]
    assert any(("tcp", (30000, 32767)) in s.elements for n, s in table.sets.items() if n.startswith("ports-"))


def test_ipblock_except_becomes_disjoint_intervals() -> None:
    state = ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s4"]))
    table = render(state, "n1")
    net = next(s for s in table.sets.values() if s.name.startswith("net4-"))
    spans = sorted(e[0] for e in net.elements)
    hole = int(ipaddress.ip_address("192.168.94.134"))
    assert spans == [(interval_of("192.168.0.0/16")[0], hole - 1), (hole + 1, interval_of("192.168.0.0/16")[1])]


def test_plan_is_empty_when_nothing_changed_and_small_when_a_label_changes() -> None:
    pols = policies(SCENARIOS["s1"])
    before = render(ClusterState.build(NAMESPACES, PODS, pols), "n1")
    assert plan_sync(before, before).empty
    relabelled = [pod("default", "client2", "10.244.2.2", "n2", {"run": "client1"}) if p.metadata.name == "client2"
                  and p.metadata.namespace == "default" else p for p in PODS]
    after = render(ClusterState.build(NAMESPACES, relabelled, pols), "n1")
    plan = plan_sync(after, before)
    assert plan.summary()["commands"] == 1
    assert (plan.elements_added, plan.elements_removed, plan.chains_rewritten, plan.map_changes) == (1, 0, 0, 0)
    assert plan.commands[0]["add"]["element"]["elem"] == ["10.244.2.2"]


def test_plan_from_nothing_is_one_full_transaction_and_readback_round_trips() -> None:
    table = render(ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s4"])), "n1")
    plan = plan_sync(table, None)
    assert plan.full and plan.commands[0] == {"add": {"table": {"family": "inet", "name": "podnet"}}}
    # What nft prints back (sets, maps, chains, rules with comments) parses to the same table.
    listing = [c["add"] for c in table.to_json()[1:]]
    back = parse_listing(table.id, listing)
    assert plan_sync(table, back).empty


def test_policy_delete_removes_chains_and_sets_after_their_users() -> None:
    with_pol = render(ClusterState.build(NAMESPACES, PODS, policies(SCENARIOS["s4"])), "n1")
    without = render(ClusterState.build(NAMESPACES, PODS, []), "n1")
    plan = plan_sync(without, with_pol)
    kinds = [next(iter(c)) + ":" + next(iter(next(iter(c.values())))) for c in plan.commands]
    last_flush = max(i for i, k in enumerate(kinds) if k.startswith("flush"))
    first_set_delete = min(i for i, k in enumerate(kinds) if k == "delete:set")
    assert last_flush < first_set_delete
    assert plan.sets_removed == len(with_pol.sets) - len(without.sets)


def test_sizes_grow_with_policies_plus_pods_not_pods_squared() -> None:
    def sizes(n_pods: int, n_policies: int) -> dict[str, int]:
        pods = [pod("default", f"p{i}", f"10.244.{1 + i // 200}.{2 + i % 200}", "n1", {"app": f"a{i % 10}"})
                for i in range(n_pods)]
        pols = [NetworkPolicy.model_validate({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"np{j}", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": f"a{j % 10}"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"a{(j + 1) % 10}"}}}],
                                  "ports": [{"port": 80 + j}]}]}}) for j in range(n_policies)]
        return render(ClusterState.build(namespaces(default={}), pods, pols), "n1").counts()

    small, double = sizes(100, 20), sizes(200, 20)
    # Pods double → set elements at most double (each pod is in a bounded number of sets), not ×4.
    assert double["set_elements"] <= 2 * small["set_elements"] + 10
    assert double["rules"] <= 2 * small["rules"] + 10
    more = sizes(100, 40)
    # 20 more policies: one more port element each; their peer selectors are shared, pods are not repeated.
    assert more["set_elements"] - small["set_elements"] <= 20


@given(st.integers(0, 2**32 - 1), st.integers(8, 32), st.lists(st.tuples(st.integers(0, 2**32 - 1),
                                                                        st.integers(8, 32)), max_size=4))
@settings(max_examples=200, deadline=None)
def test_cidr_minus_matches_ipaddress(base: int, plen: int, holes: list[tuple[int, int]]) -> None:
    net = ipaddress.ip_network((base, plen), strict=False)
    excepts = [str(ipaddress.ip_network((h, length), strict=False)) for h, length in holes]
    spans = cidr_minus(str(net), excepts)
    assert spans == merge_intervals(spans)  # disjoint, sorted
    probes = [int(net.network_address), int(net.broadcast_address)] + [interval_of(e)[0] for e in excepts] + \
             [interval_of(e)[1] + 1 for e in excepts]
    for p in probes:
        p &= 2**32 - 1
        want = ipaddress.IPv4Address(p) in net and not any(ipaddress.IPv4Address(p) in ipaddress.ip_network(e) for e in excepts)
        assert any(lo <= p <= hi for lo, hi in spans) == want


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_elements_round_trip(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    for elem, types in [(((lo, hi),), ("ipv4_addr",)), ((("tcp"), (lo % 65536, lo % 65536)), ("inet_proto", "inet_service")),
                        (((lo, lo), "udp", (min(a, b) % 1000, min(a, b) % 1000 + 5)), ("ipv4_addr", "inet_proto", "inet_service"))]:
        assert element_parse(element_json(elem, types), types) == elem


def test_render_memo_is_only_a_cache() -> None:
    """Rendering with the memo the agent keeps gives the same table as without, across policy
    edits, pod relabels and deletions."""
    from podnet.dataplane.nft.render import RenderMemo
    from podnet.policy.cluster import endpoint_for_pod
    from podnet.policy.ir import compile_policy

    memo = RenderMemo()
    compiled = {(p.metadata.namespace, p.metadata.name): compile_policy(p)
                for text in SCENARIOS.values() for p in policies(text)}
    pods = {p.metadata.name + "/" + (p.metadata.namespace or ""): endpoint_for_pod(p) for p in PODS}
    rng = random.Random(3)
    for step in range(30):
        if step % 3 == 0:  # edit one policy: a new object, so its chain must be re-rendered
            key = rng.choice(sorted(compiled))
            pol = next(p for text in SCENARIOS.values() for p in policies(text)
                       if (p.metadata.namespace, p.metadata.name) == key)
            data = pol.to_dict()
            data["spec"]["podSelector"] = {"matchLabels": {"run": rng.choice(["client1", "client2", "client"])}}
            compiled[key] = compile_policy(NetworkPolicy.model_validate(data))
        elif step % 3 == 1:
            key = rng.choice(sorted(pods))
            p = next(x for x in PODS if x.metadata.name + "/" + (x.metadata.namespace or "") == key)
            data = p.to_dict()
            data["metadata"]["labels"] = {"run": rng.choice(["client1", "client2"]), "access": "true"}
            pods[key] = endpoint_for_pod(Pod.model_validate(data))
        elif len(compiled) > 2:
            compiled.pop(rng.choice(sorted(compiled)))
        state = ClusterState.from_parts(NAMESPACES, list(pods.values()), list(compiled.values()))
        for node in ("n1", "n2"):
            assert _canonical(render(state, node, memo=memo)) == _canonical(render(state, node))


def update_for_pods(table: NftTable, index: Any, changes: list[Any],
                    state: ClusterState) -> tuple[NftTable, list[Any]] | None:
    """(new table, the element commands that turn ``table`` into it), or None: render in full."""
    from podnet.dataplane.nft.live import LiveTable

    live = LiveTable(table, index)
    update = live.plan_pods(changes, state.policies_by_ns, state)
    if update is None:
        return None
    live.commit(update)
    return live.table, update.commands


def test_pod_updates_without_rendering_equal_a_full_render() -> None:
    """``update_for_pods`` (the agent's fast path for pod changes) gives the very table a full
    render gives, or declines; over random creates, deletes, relabels and moves."""
    from podnet.dataplane.nft.render import render_indexed
    from podnet.policy.cluster import endpoint_for_pod

    pols = [p for name in ("s1", "s2", "s3") for p in policies(SCENARIOS[name])]
    rng = random.Random(11)
    pods = {f"{p.metadata.namespace}/{p.metadata.name}": endpoint_for_pod(p) for p in PODS}
    state = ClusterState.from_parts(NAMESPACES, list(pods.values()), ClusterState.build(NAMESPACES, [], pols).policies)
    table, index = render_indexed(state, "n1", node_ips=["10.99.0.1", "10.99.0.2", "10.99.0.3"])
    fast = 0
    fresh_ips = iter(range(2, 250))  # addresses are unique, as IPAM makes them
    for step in range(60):
        changes = []
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(sorted(pods) + [f"default/new{step}"])
            old = pods.get(key)
            ns, name = key.split("/")
            node = rng.choice(["n1", "n2"])
            if old is not None and rng.random() < 0.2:
                pods.pop(key)
                changes.append((old, None))
                continue
            labels = rng.choice([{"app": "web"}, {"run": "client1"}, {"run": "client2"}, {}])
            ip = old.ip if old is not None and rng.random() < 0.7 else f"10.244.{7 if node == 'n1' else 8}.{next(fresh_ips)}"
            new = endpoint_for_pod(pod(ns, name, ip, node, labels))
            pods[key] = new
            changes.append((old, new))
        new_state = ClusterState.from_parts(NAMESPACES, list(pods.values()), state.policies)
        full, new_index = render_indexed(new_state, "n1", node_ips=["10.99.0.1", "10.99.0.2", "10.99.0.3"])
        got = update_for_pods(table, index, changes, new_state)
        if got is not None:
            fast += 1
            inc, cmds = got
            assert _canonical(inc) == _canonical(full), f"step {step}: {changes}"
            assert all(next(iter(next(iter(c.values())))) == "element" for c in cmds)
            assert plan_sync(full, inc).empty
        table, index = full, new_index
    assert fast >= 30  # most pod changes take the fast path


def test_tiered_kinds_compile_to_tier_chains_felix_style() -> None:
    """A GlobalNetworkPolicy in a tier: the selected pod's dispatch goes to its tier chain, which
    jumps the policy's chain, follows a Pass to the next tier and drops at the tier's end; the
    policy chain logs (rate-limited, prefix naming tier, policy and rule) without deciding."""
    from podnet.dataplane.nft.render import ip_int
    from podnet.dataplane.nft.tiers import LOG_RATE, PASS_MARK, pass_code, tier_chain_name, tiered_policy_chain_name
    from podnet.model import GlobalNetworkPolicy, Namespace, Pod, Tier

    pods = [Pod.model_validate({"metadata": {"name": n, "namespace": "default", "labels": {"app": n}},
                                "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
                                "status": {"podIP": ip, "hostIP": "192.168.0.1"}})
            for n, ip in (("web", "10.244.1.2"), ("db", "10.244.1.3"))]
    gnp = GlobalNetworkPolicy.model_validate({"metadata": {"name": "guard"}, "spec": {
        "tier": "security", "selector": "app == 'web'", "ingress": [
            {"action": "Log"}, {"action": "Pass", "source": {"nets": ["10.244.1.3/32"]}}, {"action": "Deny"}]}})
    tier = Tier.model_validate({"metadata": {"name": "security"}, "spec": {"order": 10}})
    state = ClusterState.build([Namespace.model_validate({"metadata": {"name": "default"}})], pods, [gnp], tiers=[tier])
    table = render(state, "n1")
    entry = table.maps["to-pod"].elements
    web = next(v for k, v in entry.items() if k != (workload_ifname("default", "db"),))
    assert web == ("goto", tier_chain_name("ingress", (("security", ("gnp:guard",)),)))
    assert entry[(workload_ifname("default", "db"),)] == ("accept",)  # selected by nothing: open
    tier_rules = [r.expr_json for r in table.chains[web[1]].rules]
    assert "192.168.0.1" in tier_rules[1]  # the own node first (kubelet probes)
    assert f'"jump":{{"target":"{tiered_policy_chain_name("gnp:guard", "ingress")}"}}' in tier_rules[2]
    # Pass by rule 1, no tier left: allowed, and the flow log names that Pass rule
    assert str(pass_code(1)) in tier_rules[3] and '"accept"' in tier_rules[3]
    assert '"prefix":"pn Aip security 1 gnp:guard"' in tier_rules[3] and '"group":18' in tier_rules[3]
    assert str(PASS_MARK) in tier_rules[4] and '"accept"' in tier_rules[4]
    # end of tier: Deny, its rate-limited flow log just before the counting drop
    assert '"limit"' in tier_rules[-2] and '"prefix":"pn Di security -1 gnp:guard"' in tier_rules[-2]
    assert tier_rules[-1] == '[{"counter":null},{"drop":null}]'
    pol = [r.expr_json for r in table.chains[tiered_policy_chain_name("gnp:guard", "ingress")].rules]
    assert f'"rate":{LOG_RATE}' in pol[0] and "podnet security/gnp:guard/ingress[0]: " in pol[0]
    assert '"return"' in pol[1] and str(pass_code(1)) in pol[1]
    assert '"prefix":"pn Di security 2 gnp:guard"' in pol[2] and '"limit"' in pol[2] and '"drop"' in pol[3]
    sets = [s for n, s in table.sets.items() if n.startswith("ent-")]
    assert len(sets) == 1 and sets[0].interval and sets[0].elements == frozenset({((ip_int("10.244.1.3"),) * 2,)})
