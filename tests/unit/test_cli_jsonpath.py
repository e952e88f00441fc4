"""kubectl's JSONPath subset used by `podnet get -o jsonpath=…`."""
import pytest

from podnet.cli.jsonpath import render
from podnet.errors import PodnetError

LIST = {
    "kind": "List",
    "items": [
        {"metadata": {"name": "web-1"}, "status": {"podIP": "10.244.1.2"}},
        {"metadata": {"name": "web-2"}, "status": {"podIP": "10.244.2.2"}},
    ],
}


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{.items[0].status.podIP}", "10.244.1.2"),
        ("{.items[-1].metadata.name}", "web-2"),
        ("{.items[*].metadata.name}", "web-1 web-2"),
        ('{range .items[*]}{.metadata.name}:{.status.podIP}{"\\n"}{end}', "web-1:10.244.1.2\nweb-2:10.244.2.2\n"),
        ("ip={.items[1].status.podIP}!", "ip=10.244.2.2!"),
        ("{.items[5].status.podIP}", ""),
        ("{range .items[9]}x{end}done", "done"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, LIST) == expected


def test_render_single_object_and_non_string_values() -> None:
    assert render("{.spec.replicas}", {"spec": {"replicas": 3}}) == "3"
    # maps and lists as kubectl prints them: compact JSON, keys sorted (Go's json.Marshal)
    labels = {"metadata": {"labels": {"b": "2", "a": "1"}, "finalizers": ["x", "y"]}}
    assert render("{.metadata.labels}", labels) == '{"a":"1","b":"2"}'
    assert render("{.metadata.finalizers}", labels) == '["x","y"]'


def test_bad_path_is_a_clear_error() -> None:
    with pytest.raises(PodnetError, match="jsonpath"):
        render("{.items[x]}", LIST)
