"""Hostile and careless manifests: every one is answered with located problems, in bounded time
and memory, and refused exactly where kubectl and the API server refuse it."""
from __future__ import annotations

import io
import os

import pytest

from podnet.errors import FieldProblem, ValidationError
from podnet.manifest import limits, load_paths, load_text

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n"
CONTAINERS = "spec:\n  containers:\n  - name: c\n"
NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n"
POOL = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool\nspec:\n  cidr: 10.244.0.0/16\n"
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n"
          "  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n"
          "    spec: {{containers: [{{name: c}}]}}\n")


def problems(text: str, filename: str = "case.yaml") -> list[FieldProblem]:
    with pytest.raises(ValidationError) as info:
        load_text(text, filename)
    found = info.value.problems
    assert all(p.location is not None and p.location.file == filename for p in found), found
    return found


def one(text: str, filename: str = "case.yaml") -> FieldProblem:
    found = problems(text, filename)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def labels(body: str) -> str:
    return POD + "  labels:\n" + body + CONTAINERS


# --- 1. no crash, whatever the bytes ---------------------------------------------------------

@pytest.mark.parametrize("tagged,word", [("!!int abc", "!!int"), ("!!float x", "!!float"), ("!!bool maybe", "!!bool"),
                                         ("!!null x", "!!null"), ("!!timestamp soon", "!!timestamp"),
                                         ("!!binary '%%%'", "!!binary")])
def test_a_tagged_scalar_that_does_not_construct_is_a_located_problem(tagged: str, word: str) -> None:
    found = [p for p in problems(labels(f"    app: {tagged}\n")) if word in p.message]
    assert [(p.location.line, p.field_path) for p in found] == [(6, "metadata.labels.app")]


def test_an_integer_of_more_than_4300_digits_is_refused_not_a_traceback() -> None:
    problem = one(POD + "spec:\n  priority: " + "9" * 5000 + "\n  containers: [{name: c}]\n")
    assert (problem.location.line, problem.field_path) == (6, "spec.priority")
    assert "(5,000 characters)" in problem.message and len(str(problem)) < 300


@pytest.mark.parametrize("text", [
    "x: " + "[" * 30000 + "]" * 30000 + "\n",
    "x: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n",
    "x:\n" + "- " * 30000 + "a\n",
])
def test_deep_nesting_is_refused_from_the_parser_events_before_anything_is_built(text: str) -> None:
    problem = one(text)
    assert f"nested more than {limits.MAX_DEPTH} levels deep" in problem.message
    assert problem.location.line in (1, 2)


@pytest.mark.parametrize("selector", ["!" * 1000 + "all()", "(" * 500 + "all()" + ")" * 500])
def test_a_calico_selector_nested_too_deep_is_a_validation_error(selector: str) -> None:
    problem = one(POOL + f"  nodeSelector: \"{selector}\"\n")
    assert problem.field_path == "spec.nodeSelector" and "nested more than" in problem.message
    assert len(problem.message) < 300


def test_json_fallback_refuses_deep_nesting_with_a_location() -> None:
    # the surrogate pair escape makes libyaml give up, so the JSON reader takes over
    text = '{"emoji": "\\ud83d\\ude00", "x": ' + '{"a": ' * 2000 + "1" + "}" * 2000 + "}"
    problem = one(text, "deep.json")
    assert "nested more than" in problem.message and problem.location.line == 1


def test_json_fallback_refuses_a_lone_surrogate_before_it_can_reach_the_store() -> None:
    text = '{"apiVersion": "v1", "kind": "Pod",\n "metadata": {"name": "p", "labels": {"a": "x\\ud800"}}}'
    problem = one(text, "p.json")
    assert (problem.location.line, problem.location.column) == (2, 44)
    assert "surrogate" in problem.message


def test_invalid_utf8_on_stdin_is_refused_as_for_a_file() -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: \xff\xfe\n"))
    with pytest.raises(ValidationError) as info:
        load_paths(["-"], stdin=stdin)
    (problem,) = info.value.problems
    assert str(problem.location) == "<stdin>:4:9" and "not UTF-8 text" in problem.message


# --- 2. bounded time and memory --------------------------------------------------------------

def test_an_alias_bomb_is_refused_as_go_yaml_refuses_it() -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefghi", "bcdefghij"))
    assert len(bomb) < 500
    problem = one(bomb)
    assert problem.message == "document contains excessive aliasing"


def test_aliases_within_the_rule_are_expanded() -> None:
    (item,) = load_text(POD + "  labels: &l {app: web}\n  annotations: *l\n" + CONTAINERS)
    assert item.obj.metadata.annotations == {"app": "web"}
    assert item.locate(("metadata", "annotations", "app")).line == 5  # where the anchored value is


def test_ten_megabytes_of_document_separators_are_answered_with_the_node_limit() -> None:
    problem = one("---\n" * (limits.MAX_INPUT_BYTES // 4))
    assert f"more than {limits.MAX_NODES:,} values in one input" in problem.message


def test_more_than_a_hundred_problems_stop_the_check(tmp_path) -> None:
    found = problems(POD + "  name: again\n" * 5000)
    assert len(found) == limits.MAX_PROBLEMS + 1
    assert "the rest of this input was not checked" in found[-1].message


def test_an_input_larger_than_the_limit_is_refused_before_it_is_read(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(limits.MAX_INPUT_BYTES + 1)  # sparse: nothing to read
    with pytest.raises(ValidationError) as info:
        load_paths([str(big)])
    (problem,) = info.value.problems
    assert "larger than 10 MiB, the limit for one input" in problem.message


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_is_read_no_further_than_the_limit() -> None:
    with pytest.raises(ValidationError) as info:
        load_paths(["/dev/zero"])
    (problem,) = info.value.problems
    assert "larger than 10 MiB" in problem.message and "device" in (problem.hint or "")


def test_a_stream_of_many_documents_is_validated_as_it_is_read() -> None:
    text = "".join(POD.replace("web", f"web-{i}") + CONTAINERS + "---\n" for i in range(300))
    assert len(load_text(text)) == 300


# --- 3. exact validation ---------------------------------------------------------------------

def test_a_name_with_a_trailing_newline_is_refused() -> None:
    problem = one("apiVersion: v1\nkind: Pod\nmetadata:\n  name: |\n    web\n" + CONTAINERS)
    assert problem.field_path == "metadata.name" and "'web\\n'" in problem.message
    assert "\n" not in str(problem)


@pytest.mark.parametrize("body", ["    app: |\n      web\n", "    ? |\n      app\n    : web\n"])
def test_a_label_key_or_value_with_a_trailing_newline_is_refused(body: str) -> None:
    assert one(labels(body)).field_path.startswith("metadata.labels")


@pytest.mark.parametrize("cidr", ["10.0.0.0/255.0.0.0", "10.0.0.0/08", "'fe80::1%eth0/64'", "10.0.0.0/+8"])
def test_cidrs_go_refuses_are_refused(cidr: str) -> None:
    problem = one(NP + f"spec:\n  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock: {{cidr: {cidr}}}\n")
    assert problem.field_path == "spec.egress[0].to[0].ipBlock.cidr" and "not a valid CIDR" in problem.message


@pytest.mark.parametrize("cidr", ["10.244.1.7/4", "0.0.0.0/0", "fd00::/8", "::ffff:10.0.0.0/104"])
def test_cidrs_go_accepts_are_accepted(cidr: str) -> None:
    load_text(NP + f"spec:\n  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock: {{cidr: '{cidr}'}}\n")


@pytest.mark.parametrize("text,path,words", [
    (DEPLOY.format(replicas=2 ** 31), "spec.replicas", "32-bit"),
    (POD + "spec:\n  priority: 2147483648\n  containers: [{name: c}]\n", "spec.priority", "32-bit"),
    (POD + "spec:\n  terminationGracePeriodSeconds: 9223372036854775808\n  containers: [{name: c}]\n",
     "spec.terminationGracePeriodSeconds", "64-bit"),
    (POD + "spec:\n  containers: [{name: c}]\nstatus:\n  x: 18446744073709551615\n", "status.x", "64-bit"),
    (POD + "spec:\n  containers: [{name: c}]\nstatus:\n  x: .inf\n", "status.x", "infinity"),
])
def test_integers_are_bounded_as_the_api_types_are(text: str, path: str, words: str) -> None:
    found = problems(text)
    assert any(p.field_path == path and words in p.message for p in found), found


def test_int32_bounds_are_inclusive() -> None:
    (item,) = load_text(DEPLOY.format(replicas=2 ** 31 - 1))
    assert item.obj.spec.replicas == 2 ** 31 - 1


def test_the_json_reader_keeps_duplicate_key_checks_and_locations() -> None:
    text = ('{"apiVersion": "v1", "kind": "Pod", "x": "\\ud83d\\ude00",\n'
            ' "metadata": {"name": "p",\n  "name": "q"}}')
    found = problems(text, "p.json")
    dup = [p for p in found if "duplicate key 'name'" in p.message]
    assert dup and (dup[0].location.line, dup[0].field_path) == (3, "metadata.name")
    unknown = [p for p in found if p.field_path == "x"]
    assert unknown and unknown[0].location.line == 1


@pytest.mark.parametrize("body", ["  labels: !foo\n    app: web\n", "  labels: !!set {a}\n",
                                  "  labels:\n    app: !local web\n", "  labels: !!omap [a: b]\n"])
def test_unknown_tags_are_refused_never_dropped(body: str) -> None:
    found = problems(POD + body + CONTAINERS)
    assert any("unknown tag" in p.message and p.location.line == 5 or p.location.line == 6 for p in found), found


@pytest.mark.parametrize("plain,reads", [("y", "boolean true"), ("n", "boolean false"), ("on", "boolean true"),
                                         ("1e5", "the number 100000.0"), ("0o17", "the integer 15"),
                                         ("0x1F", "the integer 31"), ("1_000", "the integer 1000"),
                                         ("08", "the number 8.0"), ("~", None)])
def test_plain_scalars_are_read_as_kubectl_reads_them(plain: str, reads: str | None) -> None:
    problem = one(POD + f"  annotations:\n    note: {plain}\n" + CONTAINERS)
    assert "expected a string" in problem.message
    if reads:
        assert f"unquoted, YAML reads {plain} as {reads}" in problem.hint


@pytest.mark.parametrize("plain", ["1:30", "=", "2024-01-01", "1e400", "0b2", ".", "yess", "<<<", "+", "0x",
                                   "0x" + "F" * 17])
def test_plain_scalars_kubectl_reads_as_strings_stay_strings(plain: str) -> None:
    (item,) = load_text(POD + f"  annotations:\n    note: {plain}\n" + CONTAINERS)
    assert item.obj.metadata.annotations == {"note": plain}


def test_a_sign_alone_as_a_key_is_a_string() -> None:
    """`-: api` (a slip for `- name: api`) once reached int('') in the scalar resolver."""
    found = problems(POD + "spec:\n  containers:\n  -: api\n")
    assert [(p.field_path, p.location.line) for p in found] == [("spec.containers", 6), ("spec.-", 7)]


# --- 4. located errors -----------------------------------------------------------------------

def test_a_control_character_is_located_at_its_line_and_column() -> None:
    problem = one("apiVersion: v1\nkind: Pod\nmetadata:\n  name: é\x01\n")
    assert (problem.location.line, problem.location.column) == (4, 10) and "U+0001" in problem.message


def test_no_problem_without_a_location_for_unreadable_text() -> None:
    for text in ["\x00", "a: b\x07", "[", "{a: 1", "a: 'x", "? [a]\n: b\n", "*x", "&a [*a]", "- &a x\n- *b\n"]:
        problems(text)


# --- 5. hints that do not change the user's data ----------------------------------------------

@pytest.mark.parametrize("written,reads", [("1.10", "the number 1.1"), ("yes", "boolean true"),
                                           ("0755", "the integer 493"), ("1e3", "the number 1000.0"),
                                           ("Off", "boolean false")])
def test_quote_it_quotes_the_text_as_written(written: str, reads: str) -> None:
    problem = one(labels(f"    version: {written}\n"))
    assert f'quote it: version: "{written}"' in problem.hint and reads in problem.hint


def test_a_boolean_key_is_named_by_its_text() -> None:
    problem = one(labels("    off: x\n"))
    assert problem.field_path == "metadata.labels.off" and 'quote it: "off"' in problem.hint
