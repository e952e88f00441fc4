"""Invalid manifests: each must be refused with the right field path AND line.

Table-driven: (id, manifest text, expected field path, expected line, words the message or hint
must contain). Texts start at line 1 (no leading newline).
"""
from __future__ import annotations

import os
import textwrap

import pytest

from podnet.errors import FieldProblem, ValidationError
from podnet.manifest import load_paths, load_text

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")

NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n"
POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
SVC = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
POOL = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\n"
PEER = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer\n"


def spec(body: str) -> str:
    return "spec:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"


CASES: list[tuple[str, str, str, int, tuple[str, ...]]] = [
    # --- the seeds' own mistakes -------------------------------------------------------------
    ("seed004-semicolon",
     NP + spec("podSelector:\n  matchLabels;\n    access: 'true'\n"),
     "spec.podSelector.matchLabels", 7, ("';' where ':' was meant",)),
    ("seed004-port-no-space",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - protocol: TCP\n    port:80\n"),
     "spec.ingress[0].ports[0].port", 10, ("no space after ':'", "port: 80")),
    ("seed004-apiversion-no-space",
     "apiVersion:networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n",
     "apiVersion", 1, ("no space after ':'",)),
    ("seed004-label-no-space-parsed-as-string",
     NP + spec("podSelector:\n  matchLabels: run:httpd\n"),
     "spec.podSelector.matchLabels", 7, ("expected a mapping", "run: httpd")),
    ("seed004-ports-at-spec-level",
     NP + spec("podSelector: {}\ningress:\n- from:\n  - podSelector: {}\nports:\n- port: 80\n"),
     "spec.ports", 10, ("unknown field 'ports'", "spec.ingress[].ports")),
    ("seed003-lost-indentation-is-one-problem",
     "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\nname: deny-all-egress\nnamespace: cs1\n"
     "spec:\npodSelector: {}\n",
     "<document>", 3, ("lines 3-7 seem to have lost their indentation", "name, namespace belong under metadata:",
                       "podSelector belongs under spec:", "two spaces")),
    ("seed003-one-field-lost-its-indentation",
     NP + "spec:\n  podSelector: {}\ningress: []\n",
     "<document>", 7, ("line 7 seems to have lost its indentation", "ingress belongs under spec:")),
    ("seed003-two-objects-without-separator",
     NP + spec("podSelector: {}") + NP,
     "<document>", 7, ("second object", "---")),
    ("seed003-prose-line",
     NP + spec("podSelector: {}") + "这个网络策略只对名称空间起效\nkind: x\n",
     "<document>", 7, ("not 'key: value'", "'#'")),
    # --- YAML syntax -------------------------------------------------------------------------
    ("tab-indentation",
     NP + "spec:\n\tpodSelector: {}\n",
     "spec.podSelector", 6, ("tab",)),
    ("unclosed-flow-list",
     NP + spec("podSelector: {}\npolicyTypes: [Ingress\n"),
     "spec.policyTypes", 7, ("not closed",)),
    ("duplicate-key",
     NP + spec("podSelector: {}\npodSelector: {}\n"),
     "spec.podSelector", 7, ("duplicate key", "line 6")),
    ("bad-indentation-sibling",
     NP + "spec:\n  podSelector: {}\n policyTypes: [Ingress]\n",
     "spec.policyTypes", 7, ("YAML syntax error", "line up")),
    # --- kinds, apiVersions, top level ----------------------------------------------------------
    ("misspelt-kind",
     "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicie\nmetadata:\n  name: p\n",
     "kind", 2, ("unknown kind", "NetworkPolicy")),
    ("wrong-apiversion-for-kind",
     "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata:\n  name: p\n",
     "apiVersion", 1, ("does not serve", "networking.k8s.io/v1")),
    ("misspelt-apiversion",
     "apiVersion: projectcalico.org/v2\nkind: Widget\nmetadata:\n  name: p\n",
     "apiVersion", 1, ("unknown apiVersion", "projectcalico.org/v3")),
    ("missing-kind",
     "apiVersion: v1\nmetadata:\n  name: p\n",
     "kind", 1, ("required",)),
    ("missing-apiversion",
     "kind: Pod\nmetadata:\n  name: p\n",
     "apiVersion", 1, ("required", "apiVersion: v1")),
    ("scalar-document",
     "just some words\n",
     "<document>", 1, ("must be a mapping",)),
    ("unknown-top-level-field",
     NP + "specs:\n  podSelector: {}\n",
     "specs", 5, ("did you mean 'spec'",)),
    ("list-item-not-mapping",
     "apiVersion: v1\nkind: List\nitems:\n- hello\n",
     "items[0]", 4, ("expected an object",)),
    ("list-item-invalid",
     "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: Bad_Name\n",
     "metadata.name", 7, ("DNS-1123 label",)),
    # --- metadata ----------------------------------------------------------------------------
    ("missing-name",
     "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {a: b}\n",
     "metadata.name", 3, ("required",)),
    ("uppercase-name",
     "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Client1\n" + spec("containers:\n- name: c\n"),
     "metadata.name", 4, ("DNS-1123 subdomain",)),
    ("service-name-starts-with-digit",
     "apiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\n" + spec("ports:\n- port: 80\n"),
     "metadata.name", 4, ("DNS-1035",)),
    ("bad-namespace-name",
     "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: My.NS\n" + spec("containers:\n- name: c\n"),
     "metadata.namespace", 5, ("DNS-1123 label",)),
    ("label-value-boolean",
     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    access: true\n",
     "metadata.labels.access", 6, ("expected a string", 'access: "true"')),
    ("label-key-invalid",
     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    -bad-: x\n",
     "metadata.labels", 5, ("key '-bad-'",)),
    ("label-value-too-long",
     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    a: " + "x" * 64 + "\n",
     "metadata.labels", 5, ("63 characters",)),
    # --- NetworkPolicy -------------------------------------------------------------------------
    ("np-missing-podselector",
     NP + spec("policyTypes: [Ingress]\n"),
     "spec.podSelector", 5, ("required",)),
    ("np-misspelt-matchlabels",
     NP + spec("podSelector:\n  matchLabel: {app: web}\n"),
     "spec.podSelector.matchLabel", 7, ("did you mean 'matchLabels'",)),
    ("np-policytype-lowercase",
     NP + spec("podSelector: {}\npolicyTypes: [ingress]\n"),
     "spec.policyTypes[0]", 7, ("Ingress",)),
    ("np-protocol-lowercase",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - protocol: tcp\n    port: 80\n"),
     "spec.ingress[0].ports[0].protocol", 9, ("did you mean 'TCP'",)),
    ("np-protocol-icmp",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - protocol: ICMP\n"),
     "spec.ingress[0].ports[0].protocol", 9, ("TCP, UDP, SCTP",)),
    ("np-port-zero",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: 0\n"),
     "spec.ingress[0].ports[0].port", 9, ("between 1 and 65535",)),
    ("np-port-too-big",
     NP + spec("podSelector: {}\negress:\n- ports:\n  - port: 70000\n"),
     "spec.egress[0].ports[0].port", 9, ("between 1 and 65535",)),
    ("np-port-quoted-number",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: \"80\"\n"),
     "spec.ingress[0].ports[0].port", 9, ("at least one letter",)),
    ("np-port-name-too-long",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: very-long-port-name\n"),
     "spec.ingress[0].ports[0].port", 9, ("15 characters",)),
    ("np-port-float",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: 80.5\n"),
     "spec.ingress[0].ports[0].port", 9, ("port number", "or a port name")),
    ("np-endport-below-port",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: 100\n    endPort: 20\n"),
     "spec.ingress[0].ports[0].endPort", 10, ("greater than or equal",)),
    ("np-endport-with-named-port",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - port: http\n    endPort: 90\n"),
     "spec.ingress[0].ports[0].endPort", 10, ("named port",)),
    ("np-endport-without-port",
     NP + spec("podSelector: {}\ningress:\n- ports:\n  - endPort: 90\n"),
     "spec.ingress[0].ports[0].endPort", 9, ("port is not specified",)),
    ("np-ipblock-bad-cidr",
     NP + spec("podSelector: {}\negress:\n- to:\n  - ipBlock:\n      cidr: 10.0.0.0/33\n"),
     "spec.egress[0].to[0].ipBlock.cidr", 10, ("not a valid CIDR",)),
    ("np-ipblock-not-cidr",
     NP + spec("podSelector: {}\negress:\n- to:\n  - ipBlock:\n      cidr: 10.0.0.1\n"),
     "spec.egress[0].to[0].ipBlock.cidr", 10, ("ADDRESS/PREFIX",)),
    ("np-ipblock-except-outside",
     NP + spec("podSelector: {}\negress:\n- to:\n  - ipBlock:\n      cidr: 192.168.0.0/16\n      except:\n"
               "      - 10.0.0.0/8\n"),
     "spec.egress[0].to[0].ipBlock.except[0]", 12, ("strict subset",)),
    ("np-ipblock-except-not-a-cidr",
     NP + spec("podSelector: {}\negress:\n- to:\n  - ipBlock:\n      cidr: 192.168.0.0/16\n      except:\n"
               "      - 192.168.1.0/24\n      - 192.168.2.1\n"),
     "spec.egress[0].to[0].ipBlock.except[1]", 13, ("ADDRESS/PREFIX",)),
    ("np-ipblock-with-podselector",
     NP + spec("podSelector: {}\ningress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8}\n    podSelector: {}\n"),
     "spec.ingress[0].from[0]", 9, ("may not be combined",)),
    ("np-empty-peer",
     NP + spec("podSelector: {}\ningress:\n- from:\n  - {}\n"),
     "spec.ingress[0].from[0]", 9, ("at least one of",)),
    ("np-match-expression-bad-operator",
     NP + spec("podSelector:\n  matchExpressions:\n  - key: name\n    operator: in\n    values: [a]\n"),
     "spec.podSelector.matchExpressions[0].operator", 9, ("did you mean 'In'",)),
    ("np-match-expression-in-without-values",
     NP + spec("podSelector:\n  matchExpressions:\n  - key: name\n    operator: In\n"),
     "spec.podSelector.matchExpressions[0].values", 8, ("must be specified",)),
    ("np-match-expression-exists-with-values",
     NP + spec("podSelector:\n  matchExpressions:\n  - key: name\n    operator: Exists\n    values: [a]\n"),
     "spec.podSelector.matchExpressions[0].values", 10, ("may not be specified",)),
    ("np-from-in-egress",
     NP + spec("podSelector: {}\negress:\n- from:\n  - podSelector: {}\n"),
     "spec.egress[0].from", 8, ("unknown field 'from'",)),
    ("np-ingress-not-a-list",
     NP + spec("podSelector: {}\ningress:\n  from: []\n"),
     "spec.ingress", 7, ("expected a list",)),
    # --- Pod, Service, Deployment ---------------------------------------------------------------
    ("pod-no-containers",
     POD + spec("containers: []\n"),
     "spec.containers", 6, ("at least one container",)),
    ("pod-init-container-name-repeats-a-container",
     POD + spec("containers:\n- name: c\ninitContainers:\n- name: c\n"),
     "spec.initContainers[0].name", 9, ("duplicate container name 'c'",)),
    ("pod-container-port-string",
     POD + spec("containers:\n- name: c\n  ports:\n  - containerPort: \"80\"\n"),
     "spec.containers[0].ports[0].containerPort", 9, ("expected an integer", "remove the quotes")),
    ("pod-misspelt-image",
     POD + spec("containers:\n- name: c\n  imagee: nginx\n"),
     "spec.containers[0].imagee", 8, ("did you mean 'image'",)),
    ("pod-hostnetwork-quoted",
     POD + spec("hostNetwork: \"true\"\ncontainers:\n- name: c\n"),
     "spec.hostNetwork", 6, ("true or false", "remove the quotes")),
    ("service-nodeport-out-of-range",
     SVC + spec("type: NodePort\nports:\n- port: 80\n  nodePort: 80\n"),
     "spec.ports[0].nodePort", 9, ("30000-32767",)),
    ("service-clusterip-with-nodeport",
     SVC + spec("ports:\n- name: a\n  port: 80\n- name: b\n  port: 81\n  nodePort: 30081\n"),
     "spec.ports[1].nodePort", 11, ("may not be set when type is ClusterIP",)),
    ("service-nodeport-twice",
     SVC + spec("type: NodePort\nports:\n- name: a\n  port: 80\n  nodePort: 30080\n- name: b\n  port: 81\n"
                "  nodePort: 30080\n"),
     "spec.ports[1].nodePort", 13, ("duplicate nodePort 30080",)),
    ("service-bad-type",
     SVC + spec("type: Nodeport\nports:\n- port: 80\n"),
     "spec.type", 6, ("did you mean 'NodePort'",)),
    ("service-externalname-missing",
     SVC + spec("type: ExternalName\n"),
     "spec.externalName", 5, ("required",)),
    ("deployment-selector-mismatch",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n" +
     spec("selector:\n  matchLabels: {app: web}\ntemplate:\n  metadata:\n    labels: {app: api}\n"
          "  spec:\n    containers:\n    - name: c\n"),
     "spec", 5, ("does not match template labels",)),
    ("pod-host-port-out-of-range",
     POD + spec("containers:\n- name: c\n  ports:\n  - containerPort: 80\n    hostPort: 70000\n"),
     "spec.containers[0].ports[0].hostPort", 10, ("between 1 and 65535",)),
    ("service-externalname-not-dns",
     SVC + spec("type: ExternalName\nexternalName: My_Host\n"),
     "spec.externalName", 7, ("DNS name",)),
    ("deployment-restart-policy-never",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n" +
     spec("selector:\n  matchLabels: {app: web}\ntemplate:\n  metadata:\n    labels: {app: web}\n"
          "  spec:\n    restartPolicy: Never\n    containers:\n    - name: c\n"),
     "spec.template", 8, ("only Always",)),
    # --- Calico ----------------------------------------------------------------------------------
    ("caliconode-bad-ipv6-address",
     "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n"
     + spec("bgp:\n  ipv4Address: 192.168.0.2/24\n  ipv6Address: fd00::zz/64\n"),
     "spec.bgp.ipv6Address", 8, ("not a valid CIDR",)),
    ("ippool-ipipmode-lowercase",
     POOL + spec("cidr: 10.244.0.0/16\nipipMode: always\n"),
     "spec.ipipMode", 7, ("did you mean 'Always'",)),
    ("ippool-natoutgoing-string",
     POOL + spec("cidr: 10.244.0.0/16\nnatOutgoing: \"true\"\n"),
     "spec.natOutgoing", 7, ("true or false",)),
    ("ippool-bad-cidr",
     POOL + spec("cidr: 10.244.0.0/40\n"),
     "spec.cidr", 6, ("not a valid CIDR",)),
    ("ippool-bad-selector",
     POOL + spec("cidr: 10.244.0.0/16\nnodeSelector: \"role = 'x'\"\n"),
     "spec.nodeSelector", 7, ("selector",)),
    ("bgppeer-both-peer-ip-and-selector",
     PEER + spec("peerIP: 192.168.10.72\nasNumber: 64512\npeerSelector: route-reflector == 'true'\n"),
     "spec", 5, ("cannot both be set",)),
    ("bgppeer-misspelt-peerselector",
     PEER + spec("nodeSelector: all()\npeerSelecter: route-reflector == 'true'\n"),
     "spec.peerSelecter", 7, ("did you mean 'peerSelector'",)),
]


def _problems(text: str) -> list[FieldProblem]:
    with pytest.raises(ValidationError) as info:
        load_text(text, "case.yaml")
    return info.value.problems


@pytest.mark.parametrize("text,path,line,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_manifest_names_field_and_line(text: str, path: str, line: int, words: tuple[str, ...]) -> None:
    problems = _problems(text)
    matching = [p for p in problems if p.field_path == path and p.location and p.location.line == line]
    assert matching, f"no problem at {path} line {line}; got:\n" + "\n".join(str(p) for p in problems)
    rendered = str(matching[0])
    assert rendered.startswith(f"case.yaml:{line}:")
    for word in words:
        assert word in rendered, f"{word!r} not in {rendered!r}"


def test_lost_indentation_is_one_problem_per_document_not_one_per_line() -> None:
    problems = _problems(open(os.path.join(EXAMPLES, "broken", "s4-deny-all-egress.yaml")).read())
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert "lines 3-12" in problems[0].message and "egress, policyTypes belong under spec:" in problems[0].message


def test_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_error_in_every_file_is_reported(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(NP + spec("podSelector:\n  matchLabel: {}\n"))
    (tmp_path / "b.yaml").write_text(POOL + spec("cidr: nope\nipipMode: sometimes\n"))
    with pytest.raises(ValidationError) as info:
        load_paths([str(tmp_path)])
    where = sorted((os.path.basename(p.location.file), p.location.line, p.field_path) for p in info.value.problems)
    assert where == [("a.yaml", 7, "spec.podSelector.matchLabel"), ("b.yaml", 6, "spec.cidr"), ("b.yaml", 7, "spec.ipipMode")]
    assert info.value.message.startswith("3 errors found\n")  # reading applies nothing: the caller says


def test_seed_004_as_published_reports_each_slip() -> None:
    path = os.path.join(EXAMPLES, "broken", "s5-net-httpd.yaml")
    with pytest.raises(ValidationError) as info:
        load_paths([path])
    found = {(p.location.line, p.field_path) for p in info.value.problems}
    assert (1, "apiVersion") in found
    assert (2, "kind") in found
    assert (12, "spec.ingress[0].from[0].podSelector.matchLabels") in found
    assert (16, "spec.ports[0].port") in found


@pytest.mark.parametrize("name", ["s4-deny-all-egress.yaml", "s4-pod-label.yaml", "s4-policy-zoo.yaml", "s5-fragment.yaml"])
def test_broken_examples_are_refused_with_locations(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_paths([os.path.join(EXAMPLES, "broken", name)])
    assert info.value.problems
    assert all(p.location is not None and p.location.line >= 1 for p in info.value.problems)


def test_missing_path_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        load_paths(["/nonexistent/policy.yaml"])
    assert "does not exist" in str(info.value)
