"""Property: any valid NetworkPolicy, written as YAML, loads back to the same value, and every
field path in it has a location pointing at the line that holds it."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.cli.output import yaml_text
from podnet.manifest import load_text
from podnet.model import NetworkPolicy

names = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
label_values = st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?)?", fullmatch=True)
labels = st.dictionaries(names, label_values, max_size=3)
selectors = st.fixed_dictionaries({}, optional={"matchLabels": labels})
ports = st.fixed_dictionaries({"protocol": st.sampled_from(["TCP", "UDP", "SCTP"])},
                              optional={"port": st.integers(1, 65535)})
peers = st.one_of(
    st.fixed_dictionaries({"podSelector": selectors}),
    st.fixed_dictionaries({"namespaceSelector": selectors}, optional={"podSelector": selectors}),
    st.fixed_dictionaries({"ipBlock": st.fixed_dictionaries({"cidr": st.sampled_from(["10.0.0.0/8", "192.168.0.0/16"])})}),
)
rules = st.fixed_dictionaries({}, optional={"from": st.lists(peers, max_size=3), "ports": st.lists(ports, max_size=3)})
policies = st.fixed_dictionaries({
    "apiVersion": st.just("networking.k8s.io/v1"),
    "kind": st.just("NetworkPolicy"),
    "metadata": st.fixed_dictionaries({"name": names, "namespace": names}, optional={"labels": labels}),
    "spec": st.fixed_dictionaries({"podSelector": selectors}, optional={"ingress": st.lists(rules, max_size=3)}),
})


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from _paths(item, prefix + (index,))


@settings(max_examples=60, deadline=None)
@given(policies, st.booleans())
def test_yaml_round_trip_with_positions(manifest: dict, flow: bool) -> None:
    text = yaml_text(manifest, sort_keys=False, flow=flow)
    (item,) = load_text(text, "gen.yaml")
    assert item.obj == NetworkPolicy.model_validate(manifest)
    lines = text.splitlines()
    for path in _paths(manifest):
        loc = item.positions[path]
        if isinstance(path[-1], str):
            assert path[-1] in lines[loc.line - 1], (path, loc, lines[loc.line - 1])
