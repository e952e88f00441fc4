"""NetworkPolicy enforced by the ``inet podnet`` table on the real kernel, checked by real
connections against the engine's matrix (what ``podnet verify`` does), on a 2-node lab."""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from podnet.cluster.probe import probe_matrix
from podnet.dataplane.nft.render import render
from podnet.dataplane.nft.verify import compare
from podnet.kernel import netns
from podnet.kernel.nft.apply import NftApplier
from podnet.kernel.probe import REACHED, probe
from podnet.kernel.underlay import ipr_in
from podnet.model import NetworkPolicy
from podnet.policy.matrix import compute_matrix
from podnet.testing.leaks import Prefixes
from podnet.testing.policy_lab import PolicyLab

pytestmark = pytest.mark.kernel

PORTS = [80, 81]
PROTOCOLS = ["TCP", "UDP", "ICMP"]
TIMEOUT = 0.4


@pytest.fixture(scope="module", params=["slow-path", "fast-path"])
def lab(prefixes: Prefixes, request: pytest.FixtureRequest) -> Iterator[PolicyLab]:
    lab = PolicyLab.build(prefixes.new(sep=""))
    try:
        if request.param == "fast-path":
            lab.enable_fast_path()  # the same verdicts with established TCP off the slow path
        lab.add_pod("default", "web", "n1", {"app": "web"}, [("http", 80, "TCP")])
        lab.add_pod("default", "client1", "n1", {"run": "client1"})
        lab.add_pod("default", "client2", "n2", {"run": "client2"})
        lab.add_pod("other", "web2", "n2", {"app": "web"}, [("http", 81, "TCP")])
        lab.add_pod("other", "client", "n1", {"run": "client", "access": "true"})
        lab.add_pod("kube-system", "dns", "n2", {"k8s-app": "kube-dns"}, [("dns", 80, "UDP")])
        lab.namespace_labels["other"] = {"project": "other", "name": "cs1"}
        lab.namespace_labels["kube-system"] = {"networking/namespace": "kube-system"}
        yield lab
    finally:
        lab.close()
        assert NftApplier(None).read() is None, "a podnet table appeared in the root namespace"


def _policies(text: str) -> list[NetworkPolicy]:
    return [NetworkPolicy.model_validate({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **d})
            for d in yaml.safe_load_all(text) if d]


def _verify(lab: PolicyLab, policies: list[NetworkPolicy], **kw: Any) -> Any:
    state = lab.state(policies, **kw)
    lab.apply(state)
    observed, results = probe_matrix(lab.probe_pods(), PORTS, PROTOCOLS, timeout=TIMEOUT)
    expected = compute_matrix(state, PORTS, PROTOCOLS)
    report = compare(state, expected, observed, {(r.src, r.dst, r.key): r.outcome for r in results})
    assert report.ok, "\n".join(d.describe() for d in report.disagreements)
    assert report.agreed == report.cells
    return expected


CASES = {
    "no-policy": "",
    "s1-one-client": """
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
    "s2-namespace-isolation": """
metadata: {name: deny-from-other-namespaces, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {}}]}]
""",
    "deny-all-both-ways": """
metadata: {name: deny-all, namespace: other}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
""",
    "egress-dns-only-to-kube-dns": """
metadata: {name: default-deny-all-egress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {networking/namespace: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 80}, {protocol: TCP, port: 80}]
""",
    "ipblock-except": """
metadata: {name: from-block, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}]
---
metadata: {name: to-block, namespace: other}
spec:
  podSelector: {matchLabels: {access: "true"}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.244.2.0/23, except: [10.244.2.3/32]}}]
""",
    "named-ports-both-directions": """
metadata: {name: ingress-named, namespace: other}
spec:
  podSelector: {}
  ingress: [{ports: [{port: http}]}]
---
metadata: {name: egress-named, namespace: default}
spec:
  podSelector: {matchLabels: {run: client2}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: http}, {port: dns, protocol: UDP}]
""",
    "namespace-expressions-and-ranges": """
metadata: {name: from-cs1-cs2, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: name, operator: In, values: [cs1, cs2]}]}}]
    ports: [{port: 80, endPort: 81, protocol: TCP}]
---
metadata: {name: allow-all, namespace: kube-system}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{}]
  egress: [{}]
---
metadata: {name: access-only, namespace: other}
spec:
  podSelector: {matchLabels: {access: "true"}}
  ingress: [{from: [{podSelector: {matchLabels: {access: "true"}}}]}]
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_agrees_with_engine(lab: PolicyLab, case: str) -> None:
    _verify(lab, _policies(CASES[case]))


def test_ipblock_ignoring_pods_option(lab: PolicyLab) -> None:
    expected = _verify(lab, _policies(CASES["ipblock-except"]), ipblock_matches_pods=False)
    web = expected.pods.index("default/web")
    client1 = expected.pods.index("default/client1")
    assert not expected.allowed("80/TCP", client1, web)  # ipBlock no longer matches pod IPs


def _tcp(lab: PolicyLab, src: str, dst: str, port: int = 80) -> bool:
    outcome, _ = probe(lab.pods[src].netns, lab.pods[dst].ip, port, "TCP", TIMEOUT)
    return outcome in REACHED


def test_label_change_touches_only_set_elements(lab: PolicyLab) -> None:
    policies = _policies(CASES["s1-one-client"])
    lab.apply(lab.state(policies))
    assert _tcp(lab, "default/client1", "default/web")
    assert not _tcp(lab, "default/client2", "default/web")
    before = lab.nodes["n1"].applier.read()
    lab.pods["default/client2"].labels["run"] = "client1"
    try:
        plans = lab.apply(lab.state(policies))
        n1 = plans["n1"]
        assert (n1.elements_added, n1.elements_removed) == (1, 0)
        assert n1.chains_added == n1.chains_rewritten == n1.chains_removed == 0
        assert n1.map_changes == 0 and not n1.full
        assert len(n1.commands) == 1 and "element" in n1.commands[0]["add"]
        assert _tcp(lab, "default/client2", "default/web")
        after = lab.nodes["n1"].applier.read()
        assert after is not None and before is not None
        assert {n: c.signature for n, c in after.chains.items()} == {n: c.signature for n, c in before.chains.items()}
    finally:
        lab.pods["default/client2"].labels["run"] = "client2"
    plans = lab.apply(lab.state(policies))
    assert (plans["n1"].elements_added, plans["n1"].elements_removed) == (0, 1)
    assert not _tcp(lab, "default/client2", "default/web")


def test_read_back_repairs_drift_and_matches_cache(lab: PolicyLab) -> None:
    state = lab.state(_policies(CASES["s1-one-client"]))
    lab.apply(state)
    node = lab.nodes["n1"]
    assert node.applier.sync(render(state, "n1", node_ips=[node.ip]), read_back=True).empty
    # Someone flushes the policy's chain by hand: the next read-back sync rewrites just that chain.
    chain = next(n for n in node.applier.read().chains if n.startswith("pi-"))  # type: ignore[union-attr]
    with netns.enter(node.netns):
        import nftables

        nft = nftables.Nftables()
        assert nft.cmd(f"flush chain inet podnet {chain}")[0] == 0
    assert not _tcp(lab, "default/client1", "default/web")  # the drift broke an allowed flow
    plan = node.applier.sync(render(state, "n1", node_ips=[node.ip]), read_back=True)
    assert plan.touched_chains == [chain] and plan.chains_rewritten == 1
    assert _tcp(lab, "default/client1", "default/web")
    assert not _tcp(lab, "default/client2", "default/web")


def test_unknown_pod_interface_fails_closed(lab: PolicyLab) -> None:
    state = lab.state([])
    lab.apply(state)
    newcomer = lab.add_pod("default", "newcomer", "n1", {"app": "new"})
    try:
        assert not _tcp(lab, "default/newcomer", "default/client2")  # out: unknown cali* dropped
        assert not _tcp(lab, "default/client2", "default/newcomer")  # in: same
        lab.apply(lab.state([]))
        assert _tcp(lab, "default/newcomer", "default/client2")
        assert _tcp(lab, "default/client2", "default/newcomer")
    finally:
        lab.remove_pod(newcomer.key)
    plans = lab.apply(lab.state([]))
    n1 = plans["n1"]  # a pod is an element of two dispatch sets and of pod-ifaces, no chain of its own
    assert (n1.map_changes, n1.elements_removed, n1.chains_removed, n1.chains_rewritten) == (0, 3, 0, 0)


def test_spoofed_source_is_dropped(lab: PolicyLab) -> None:
    lab.apply(lab.state([]))
    client = lab.pods["default/client1"]
    spoof = "10.244.1.200"
    with ipr_in(client.netns) as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname="eth0")[0], address=spoof, prefixlen=32)
    try:
        with netns.enter(client.netns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with s:
            s.bind((spoof, 0))
            s.settimeout(TIMEOUT)
            with pytest.raises((socket.timeout, TimeoutError)):
                s.connect((lab.pods["default/client2"].ip, 80))
        assert _tcp(lab, "default/client1", "default/client2")  # its real address still works
    finally:
        with ipr_in(client.netns) as ipr:
            ipr.addr("del", index=ipr.link_lookup(ifname="eth0")[0], address=spoof, prefixlen=32)


def test_updates_are_atomic_under_a_probe_loop(lab: PolicyLab) -> None:
    """1,000 policy updates (rules for other ports come and go, a pod label flips set membership)
    while two pairs are probed continuously: the allowed pair never fails, the denied never passes."""
    base = CASES["s1-one-client"]
    extra = """
---
metadata: {name: churn, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {churn: "PLACEHOLDER"}}}]
    ports: [{port: PORT}]
"""
    lab.apply(lab.state(_policies(base)))
    stop = threading.Event()
    flips: list[str] = []
    counts = {"ok": 0, "deny": 0}

    def allowed_loop() -> None:
        while not stop.is_set():
            if not _tcp(lab, "default/client1", "default/web"):
                flips.append("client1 lost access")
            counts["ok"] += 1

    def denied_loop() -> None:
        while not stop.is_set():
            if probe(lab.pods["default/client2"].netns, lab.pods["default/web"].ip, 80, "TCP", 0.1)[0] in REACHED:
                flips.append("client2 got in")
            counts["deny"] += 1

    threads = [threading.Thread(target=allowed_loop), threading.Thread(target=denied_loop)]
    for t in threads:
        t.start()
    try:
        for i in range(1000):
            text = base + extra.replace("PLACEHOLDER", str(i % 7)).replace("PORT", str(1000 + i % 13))
            lab.pods["default/client1"].labels["churn"] = str(i % 5)
            # every probe is a new connection (and leaves thousands of TIME_WAIT entries that
            # holding flows to each state would re-read 1,000 times)
            lab.apply(lab.state(_policies(text)), hold_flows=False)
    finally:
        stop.set()
        for t in threads:
            t.join()
        lab.pods["default/client1"].labels.pop("churn", None)
    assert not flips, flips[:5]
    assert counts["ok"] > 100 and counts["deny"] > 5, counts


def test_rules_stay_when_the_applying_process_is_killed(lab: PolicyLab, tmp_path: Any) -> None:
    """A separate process programs the table and is SIGKILLed: the isolation stays."""
    import json
    import signal
    import subprocess
    import sys

    lab.apply(lab.state([]))
    node = lab.nodes["n1"]
    state = lab.state(_policies(CASES["s1-one-client"]))
    commands = render(state, "n1", node_ips=[node.ip]).to_json()
    script = tmp_path / "hold.py"
    script.write_text(
        "import json, sys, time\n"
        "from podnet.kernel import netns\n"
        "import nftables\n"
        "with netns.enter(sys.argv[1]):\n"
        "    nft = nftables.Nftables()\n"
        "    rc, _, err = nft.json_cmd({'nftables': [{'delete': {'table': {'family': 'inet', 'name': 'podnet'}}}]"
        " + json.load(open(sys.argv[2]))})\n"
        "    assert rc == 0, err\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")
    (tmp_path / "cmds.json").write_text(json.dumps(commands))
    proc = subprocess.Popen([sys.executable, str(script), node.netns, str(tmp_path / "cmds.json")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        time.sleep(0.05)
        assert not _tcp(lab, "default/client2", "default/web")
        assert _tcp(lab, "default/client1", "default/web")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        lab.apply(lab.state([]), read_back=True)  # the applier's cache did not see that process
