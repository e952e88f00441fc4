"""ingress-nginx's annotations: parsing and validation (pure), the nginx configuration they
render (which ``nginx -t`` must accept whatever the input), and real requests through nginx on
loopback for rewrite, regex priority, redirects and source ranges; bad values become Warning
Events on the Ingress, shown by ``podnet describe ingress``."""
from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from podnet.ingress.annotations import INVALID, INVALID_PATH, PREFIX, UNSUPPORTED, parse
from podnet.ingress.controller import NginxProcess
from podnet.ingress.nginx import render

from test_ingress import CLASSES, Backend, desired, free_port, objects, service, wait_listening

HAVE_NGINX = shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
needs_nginx = pytest.mark.skipif(not HAVE_NGINX, reason="nginx is not installed (make setup installs nginx-light)")


def ann(**values: str) -> dict[str, str]:
    return {PREFIX + k.replace("_", "-"): v for k, v in values.items()}


def ingress(name: str, host: str, paths: list[tuple[str, str, str]], annotations: dict[str, str],
            tls: bool = False) -> str:
    """An Ingress manifest; paths are (path, pathType, service)."""
    lines = [f"- {{path: '{p}', pathType: {t}, backend: {{service: {{name: {s}, port: {{number: 80}}}}}}}}"
             for p, t, s in paths]
    notes = "".join(f"\n    {k}: '{v}'" for k, v in annotations.items())
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n"
            f"  annotations:{notes or ' {}'}\nspec:\n" + (f"  tls: [{{hosts: [{host}], secretName: none}}]\n" if tls else "")
            + f"  rules:\n  - host: {host}\n    http:\n      paths:\n" + "".join(f"      {line}\n" for line in lines))


# -- parsing -------------------------------------------------------------------------------------

def test_defaults_ask_for_nothing() -> None:
    got = parse({"team": "a"})
    assert got.problems == () and got.app_root is None
    o = got.options
    assert (o.regex, o.ssl_redirect, o.redirect, o.source_ranges, o.denied, o.https_backend) == \
        (False, True, None, None, False, False)


def test_values_as_ingress_nginx_documents_them() -> None:
    got = parse(ann(rewrite_target="/$2", app_root="/app1", ssl_redirect="false", force_ssl_redirect="true",
                    preserve_trailing_slash="true", permanent_redirect="https://x.example/a", permanent_redirect_code="308",
                    whitelist_source_range="10.0.0.1, 192.168.0.0/16", proxy_body_size="8m",
                    proxy_connect_timeout="5", proxy_read_timeout="120", proxy_send_timeout="60",
                    backend_protocol="https", upstream_vhost="internal.example:8443"))
    assert got.problems == ()
    o = got.options
    assert o.regex and o.rewrite_target == "/$2" and got.app_root == "/app1"
    assert (o.ssl_redirect, o.force_ssl_redirect, o.preserve_trailing_slash) == (False, True, True)
    assert o.redirect == (308, "https://x.example/a")
    assert o.source_ranges == ("10.0.0.1/32", "192.168.0.0/16")
    assert o.body_size == "8m" and o.timeouts == (("proxy_connect_timeout", 5), ("proxy_read_timeout", 120),
                                                 ("proxy_send_timeout", 60))
    assert o.https_backend and o.upstream_vhost == "internal.example:8443"


def test_redirect_codes() -> None:
    assert parse(ann(permanent_redirect="http://a.example")).options.redirect == (301, "http://a.example")
    assert parse(ann(temporal_redirect="http://a.example")).options.redirect == (302, "http://a.example")
    assert parse(ann(temporal_redirect="http://a.example", temporal_redirect_code="307")).options.redirect == \
        (307, "http://a.example")
    got = parse(ann(permanent_redirect="http://a.example", permanent_redirect_code="200"))
    assert got.options.redirect == (301, "http://a.example") and got.problems[0].reason == INVALID


def test_allowlist_is_the_newer_name_of_whitelist() -> None:
    assert parse(ann(allowlist_source_range="::1")).options.source_ranges == ("::1/128",)


@pytest.mark.parametrize("name, value", [
    ("use-regex", "yes"), ("rewrite-target", "/$a"), ("rewrite-target", "/x; return 200"),
    ("app-root", "app"), ("app-root", "/a b"), ("permanent-redirect", "javascript:alert(1)"),
    ("permanent-redirect", 'https://a.example/"; return 200 "x'), ("temporal-redirect", "https://a.example/$host"),
    ("proxy-body-size", "8 m"), ("proxy-body-size", "1m; deny all"), ("proxy-read-timeout", "5s"),
    ("proxy-connect-timeout", "-1"), ("backend-protocol", "SMTP"), ("upstream-vhost", "a.example; x"),
    ("upstream-vhost", "$host"),
])
def test_a_bad_value_is_invalid_and_the_default_stays(name: str, value: str) -> None:
    got = parse({PREFIX + name: value})
    assert [p.reason for p in got.problems] == [INVALID], got.problems
    assert name in got.problems[0].message and got.options == parse({}).options and got.app_root is None


def test_an_unusable_source_range_closes_the_paths() -> None:
    got = parse(ann(whitelist_source_range="10.0.0.0/8, banana"))
    assert got.options.denied and "banana" in got.problems[0].message and "503" in got.problems[0].message


@pytest.mark.parametrize("name", ["configuration-snippet", "server-snippet", "auth-snippet", "stream-snippet"])
def test_snippets_are_ignored_with_a_warning(name: str) -> None:
    got = parse({PREFIX + name: "return 200 'owned';"})
    assert got.problems[0].reason == UNSUPPORTED and "CVE-2021-25742" in got.problems[0].message
    assert got.options == parse({}).options


def test_unsupported_annotations_and_protocols_are_named() -> None:
    got = parse(ann(enable_cors="true", backend_protocol="GRPC"))
    assert {p.reason for p in got.problems} == {UNSUPPORTED}
    assert any("enable-cors" in p.message for p in got.problems) and not got.options.https_backend


# -- rendering ----------------------------------------------------------------------------------

def rendered(tmp: Path, *manifests: str) -> tuple[str, Any]:
    world = objects(CLASSES) + service("web", None) + [o for m in manifests for o in objects(m)]
    plan = desired(world)
    return render(plan, str(tmp))[0], plan


def nginx_accepts(tmp: Path, text: str) -> None:
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / kind).mkdir(exist_ok=True)
    (tmp / "nginx.conf").write_text(text)
    res = subprocess.run(["nginx", "-t", "-q", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_regex_hosts_order_paths_longest_first(tmp_path: Path) -> None:
    text, plan = rendered(tmp_path, ingress("a", "r.example", [("/a", "Prefix", "web"), ("/a/b.+", "Prefix", "web")],
                                            ann(use_regex="true")),
                          ingress("b", "r.example", [("/abc/long", "ImplementationSpecific", "web"),
                                                     ("/e", "Exact", "web")], {}))
    order = [line.split('"')[1] for line in text.splitlines() if "location ~*" in line]
    assert order == ["^/abc/long", "^/a/b.+", "^/a"]  # the other Ingress's paths too
    assert 'location = "/e"' in text and plan.warnings == ()


def test_hostile_paths_are_not_rendered_and_warned(tmp_path: Path) -> None:
    hostile = "/x { return 200 owned; } location /y"
    text, plan = rendered(tmp_path, ingress("h", "h.example", [(hostile, "Prefix", "web"), ("/ok", "Prefix", "web")], {}),
                          ingress("r", "r.example", [('/a"; return 200 "b', "ImplementationSpecific", "web"),
                                                     ("/(unclosed", "ImplementationSpecific", "web")],
                                  ann(use_regex="true")))
    assert "owned" not in text and "return 200" not in text and 'location "/ok/"' in text
    assert [(w.ingress, w.reason) for w in plan.warnings] == [("default/h", INVALID_PATH)] + [("default/r", INVALID_PATH)] * 2


@needs_nginx
def test_nginx_accepts_every_annotation_hostile_or_not(tmp_path: Path) -> None:
    hostile = {PREFIX + k: 'x"; } server { listen 1; } #' for k in (
        "rewrite-target", "app-root", "permanent-redirect", "whitelist-source-range", "proxy-body-size",
        "proxy-read-timeout", "backend-protocol", "upstream-vhost", "configuration-snippet", "server-snippet")}
    good = ann(rewrite_target="/$1/$2", app_root="/app", force_ssl_redirect="true", whitelist_source_range="10.0.0.0/8",
               proxy_body_size="1g", proxy_connect_timeout="3", proxy_read_timeout="3", proxy_send_timeout="3",
               backend_protocol="HTTPS", upstream_vhost="in.example")
    text, plan = rendered(tmp_path, ingress("bad", "bad.example", [("/a", "Prefix", "web")], hostile),
                          ingress("good", "good.example", [(r"/v(\d+)/(.*)", "ImplementationSpecific", "web"),
                                                           ("/e", "Exact", "web")], good),
                          ingress("perm", "perm.example", [("/", "Prefix", "web")],
                                  ann(temporal_redirect="https://x.example:8443/p?q=1", temporal_redirect_code="307")))
    assert "listen 1;" not in text and len(plan.warnings) == len(hostile)
    nginx_accepts(tmp_path, text)


# -- through nginx ------------------------------------------------------------------------------

def request(port: int, host: str, path: str, source: str = "127.0.0.1") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": host})
        res = conn.getresponse()
        return res.status, res.read().decode(), res.getheader("Location") or ""
    finally:
        conn.close()


SITES = [
    ingress("rewrite", "rw.example", [("/something(/|$)(.*)", "ImplementationSpecific", "one")],
            ann(rewrite_target="/$2")),
    ingress("regex", "re.example", [("/api/v[0-9]+/.*", "ImplementationSpecific", "two"),
                                    ("/api", "Prefix", "one")], ann(use_regex="true")),
    ingress("moved", "moved.example", [("/", "Prefix", "one")],
            ann(permanent_redirect="https://new.example/landing")),
    ingress("temp", "temp.example", [("/", "Prefix", "one")],
            ann(temporal_redirect="https://new.example/t", temporal_redirect_code="307")),
    ingress("secure", "tls.example", [("/", "Prefix", "one")], {}, tls=True),
    ingress("kept", "kept.example", [("/", "Prefix", "one")],
            ann(force_ssl_redirect="true", preserve_trailing_slash="true")),
    ingress("root", "root.example", [("/", "Prefix", "one")], ann(app_root="/app1")),
    ingress("ranges", "ranges.example", [("/", "Prefix", "one")], ann(whitelist_source_range="127.0.0.1/32")),
    ingress("closed", "closed.example", [("/", "Prefix", "one")], ann(whitelist_source_range="banana")),
    ingress("vhost", "vhost.example", [("/", "Prefix", "one")], ann(upstream_vhost="inside.example")),
    # ingress-nginx's path-matching guide: its path priority example, and its warning example
    ingress("guide1", "doc.example", [("/foo/bar", "Prefix", "one"), ("/foo/bar/", "Prefix", "two")], {}),
    ingress("guide2", "doc.example", [("/foo/bar/(.+)", "ImplementationSpecific", "three")], ann(rewrite_target="/$1")),
    ingress("guide3", "warn.example", [("/foo/bar/bar", "Prefix", "one"), ("/foo/bar/[A-Z0-9]{3}", "Prefix", "two")],
            ann(use_regex="true")),
    ingress("small", "small.example", [("/", "Prefix", "one")], ann(proxy_body_size="1k")),
    ingress("tlsback", "tlsback.example", [("/", "Prefix", "one")], ann(backend_protocol="HTTPS")),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxProcess]:
    if not HAVE_NGINX:
        pytest.skip("nginx is not installed")
    import base64

    tmp = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=tls.example", "-keyout", str(tmp / "k"), "-out", str(tmp / "c")], check=True, capture_output=True)
    secret = ("apiVersion: v1\nkind: Secret\nmetadata: {name: none, namespace: default}\ntype: kubernetes.io/tls\n"
              f"data: {{tls.crt: {base64.b64encode((tmp / 'c').read_bytes()).decode()}, "
              f"tls.key: {base64.b64encode((tmp / 'k').read_bytes()).decode()}}}\n")
    backends = {n: Backend(n) for n in ("one", "two", "three")}
    world = objects(CLASSES) + [o for n, b in backends.items() for o in service(n, b)] + objects(secret)
    world += [o for site in SITES for o in objects(site)]
    proc = NginxProcess(str(tmp_path_factory.mktemp("run")), free_port(), free_port())
    proc.apply(desired(world))
    wait_listening(proc.http_port)
    yield proc
    proc.stop()


@pytest.mark.parametrize("host, path, status, body, location", [
    ("rw.example", "/something/new/x", 200, "one /new/x rw.example", ""),   # $2 of the capture groups
    ("rw.example", "/something", 200, "one / rw.example", ""),
    ("rw.example", "/SOMETHING/a", 200, "one /a rw.example", ""),           # regexes are case-insensitive
    ("re.example", "/api/v2/users", 200, "two /api/v2/users re.example", ""),  # the longer regex first
    ("re.example", "/api/other", 200, "one /api/other re.example", ""),
    ("re.example", "/apixyz", 200, "one /apixyz re.example", ""),           # a regex prefix: no element rule
    ("moved.example", "/a", 301, "", "https://new.example/landing"),
    ("temp.example", "/a", 307, "", "https://new.example/t"),
    ("tls.example", "/a/b/", 308, "", "https://tls.example:{https}/a/b"),   # TLS: 308, trailing slash dropped
    ("kept.example", "/a/b/", 308, "", "https://kept.example:{https}/a/b/"),  # forced, slash kept
    ("root.example", "/", 302, "", "http://root.example/app1"),  # the Host as sent
    ("root.example", "/app1", 200, "one /app1 root.example", ""),
    ("ranges.example", "/x", 200, "one /x ranges.example", ""),
    ("closed.example", "/x", 503, None, ""),
    ("vhost.example", "/x", 200, "one /x inside.example", ""),
    ("tlsback.example", "/x", 502, None, ""),  # nginx speaks TLS to a backend that does not
    ("doc.example", "/foo/bar/1", 200, "three /1 doc.example", ""),  # longest first, rewritten
    ("doc.example", "/foo/bar/", 200, "two /foo/bar/ doc.example", ""),  # not rewritten: another Ingress
    ("doc.example", "/foo/bar", 200, "one /foo/bar doc.example", ""),
    ("warn.example", "/foo/bar/bar", 200, "two /foo/bar/bar warn.example", ""),  # the first regex that matches
])
def test_requests_through_nginx(served: NginxProcess, host: str, path: str, status: int, body: str | None,
                                location: str) -> None:
    code, text, where = request(served.http_port, host, path)
    assert code == status, text
    if body:
        assert text == body
    assert where == location.format(https=served.https_port, http=served.http_port)


def test_a_source_outside_the_ranges_gets_403(served: NginxProcess) -> None:
    assert request(served.http_port, "ranges.example", "/x", source="127.0.0.2")[0] == 403
    assert request(served.http_port, "re.example", "/api", source="127.0.0.2")[0] == 200


def test_a_body_over_proxy_body_size_gets_413(served: NginxProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=3)
    try:
        conn.request("POST", "/x", body=b"x" * 2048, headers={"Host": "small.example"})
        assert conn.getresponse().status == 413
    finally:
        conn.close()


# -- Warning Events -----------------------------------------------------------------------------

def test_bad_annotations_are_warning_events_in_describe(tmp_path: Path) -> None:
    from podnet.agent.service_control import ServiceController
    from podnet.cli.main import cli
    from podnet.model import Event
    from podnet.store.open import open_store

    state = str(tmp_path / "state")
    store = open_store(state)
    try:
        store.apply(objects(CLASSES) + objects(ingress("web", "w.example", [("/a", "Prefix", "web")], ann(
            proxy_body_size="lots", server_snippet="return 200;"))))
        control = ServiceController(store)
        control.reconcile(store.snapshot())
        control.reconcile(store.snapshot())  # the same version: no second Event
        events = store.list(Event, "default")
        assert sorted((e.reason, e.count) for e in events) == [(INVALID, 1), (UNSUPPORTED, 1)]
        store.apply(objects(CLASSES) + objects(ingress("web", "w.example", [("/a", "Prefix", "web")], ann(
            proxy_body_size="lots", server_snippet="return 200;", use_regex="maybe"))))
        control.reconcile(store.snapshot())  # new annotations: their warnings
        assert any("use-regex: 'maybe'" in e.message for e in store.list(Event, "default"))
    finally:
        store.close()
    out = CliRunner().invoke(cli, ["--state-dir", state, "describe", "ingress", "web"], catch_exceptions=False).stdout
    events_part = out[out.index("Events:"):]
    assert "Warning   InvalidAnnotation" in events_part and "proxy-body-size: 'lots'" in events_part
    assert "UnsupportedAnnotation" in events_part and "CVE-2021-25742" in events_part
