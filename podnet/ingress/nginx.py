"""An IngressPlan as an nginx configuration (pure: text and the certificate files to write).

The Ingress path rules map onto nginx's own matching without regular expressions: Exact
``/foo`` is ``location = /foo``; Prefix ``/foo`` matches whole path elements, so it is
``location = /foo`` (unless an Exact ``/foo`` takes that) plus ``location /foo/``, and nginx's
longest-prefix choice among those is the API's "longest path wins" (``/aaa`` never matches
``/aaaccc``). A wildcard host matches exactly one label, which nginx's own ``*.foo.com`` does
not promise: it becomes ``~^[^.]+\\.foo\\.com$``. Requests keep their path and Host.

A host in ingress-nginx's regex mode (``Server.regex``) is rendered as ingress-nginx renders it
instead: case-insensitive regex locations, longest first. Each location carries its Ingress's
annotations (``_body``); every path and value is checked or quoted, never pasted raw."""
from __future__ import annotations

import os
import re

from .annotations import Options
from .plan import CATCH_ALL, IngressPlan, Route, Server, Upstream

PROXY = ("proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host {host}; "
         "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; "
         "proxy_next_upstream error timeout;")
# The request URI an SSL redirect keeps: without its trailing slash unless preserve-trailing-slash.
TRIMMED_URI = '  map $request_uri $podnet_trimmed_uri { "~^(?<kept>.+)/$" $kept; default $request_uri; }'


def quote(text: str) -> str:
    """An nginx string that is ``text`` whatever it holds (the parser unescapes \\ and \")."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def server_name(host: str) -> str:
    if host == CATCH_ALL:
        return CATCH_ALL
    if host.startswith("*."):
        return "~^[^.]+" + re.escape(host[1:]) + "$"
    return host


def _target(upstream: Upstream | None, options: Options | None = None) -> str:
    if upstream is None:
        return "return 404;"
    if not upstream.endpoints:
        return "return 503;"
    scheme = "https" if options is not None and options.https_backend else "http"
    host = quote(options.upstream_vhost) if options is not None and options.upstream_vhost else "$host"
    return f"proxy_pass {scheme}://{upstream.name}; " + PROXY.format(host=host)


def _body(route: Route | None, server: Server, upstream: Upstream | None, https_port: int) -> str:
    """A location's directives: redirects (rewrite phase, before access), source ranges, limits,
    the rewrite, then the backend."""
    if route is None:
        return _target(upstream)
    o = route.options
    if o.redirect is not None:
        return f"return {o.redirect[0]} {quote(o.redirect[1])};"
    if o.denied:
        return "return 503;"
    out: list[str] = []
    if o.force_ssl_redirect or (o.ssl_redirect and server.tls is not None):
        port = "" if https_port == 443 else f":{https_port}"
        uri = "$request_uri" if o.preserve_trailing_slash else "$podnet_trimmed_uri"
        out.append(f"if ($scheme = http) {{ return 308 https://$host{port}{uri}; }}")
    if o.source_ranges is not None:
        out += [f"allow {net};" for net in o.source_ranges] + ["deny all;"]
    if o.body_size is not None:
        out.append(f"client_max_body_size {o.body_size};")
    out += [f"{directive} {seconds}s;" for directive, seconds in o.timeouts]
    if o.rewrite_target is not None and server.regex:
        out.append(f"rewrite {quote('(?i)' + route.path)} {quote(o.rewrite_target)} break;")
    out.append(_target(upstream, o))
    return " ".join(out)


def _regex_locations(server: Server, default: Upstream | None, https_port: int) -> list[str]:
    """ingress-nginx's regex mode: Exact paths stay exact, every other path is a case-insensitive
    regex anchored at the start, longest first since nginx takes the first regex that matches."""
    out = [f"    location = {quote(r.path)} {{ {_body(r, server, r.upstream, https_port)} }}"
           for r in server.routes if r.path_type == "Exact"]
    regexes = sorted((r for r in server.routes if r.path_type != "Exact"), key=lambda r: (-len(r.path), r.path))
    out += [f"    location ~* {quote('^' + r.path)} {{ {_body(r, server, r.upstream, https_port)} }}" for r in regexes]
    out.append(f"    location / {{ {_target(default)} }}")
    return out


def _locations(server: Server, default: Upstream | None, https_port: int) -> list[str]:
    if server.regex:
        return _regex_locations(server, default, https_port)
    exact = {r.path for r in server.routes if r.path_type == "Exact"}
    out: list[str] = []
    prefixes: dict[str, Route] = {}
    for r in server.routes:
        if r.path_type == "Exact":
            out.append(f"    location = {quote(r.path)} {{ {_body(r, server, r.upstream, https_port)} }}")
        else:
            prefixes[r.path] = r
    for path, r in sorted(prefixes.items()):
        body = _body(r, server, r.upstream, https_port)
        if path == "/":
            out.append(f"    location / {{ {body} }}")
            continue
        if path not in exact:
            out.append(f"    location = {quote(path)} {{ {body} }}")
        out.append(f"    location {quote(path + '/')} {{ {body} }}")
    if "/" not in prefixes:
        out.append(f"    location / {{ {_target(default)} }}")
    # nginx answers "/x" with a redirect to "/x/" when a location ends in "/x/"; the API says
    # "/x" goes where its own match leads.
    defined = exact | set(prefixes)
    for r in server.routes:
        bare = r.path.rstrip("/")
        if r.path_type == "Exact" and r.path.endswith("/") and bare and bare not in defined:
            found = match(server, bare)
            out.append(f"    location = {quote(bare)} {{ "
                       f"{_body(found, server, found.upstream if found else default, https_port)} }}")
            defined.add(bare)
    return out


def match(server: Server, path: str) -> Route | None:
    """Which route the API's rules pick for ``path`` on this server: an Exact path equal to it,
    else the longest Prefix that matches it element by element (None: the default backend)."""
    for r in server.routes:
        if r.path_type == "Exact" and r.path == path:
            return r
    best: Route | None = None
    for r in server.routes:
        if r.path_type == "Prefix" and (r.path == "/" or path == r.path or path.startswith(r.path + "/")):
            if best is None or len(r.path) > len(best.path):
                best = r
    return best


def render(plan: IngressPlan, run_dir: str, http_port: int = 80, https_port: int = 443) -> tuple[str, dict[str, bytes]]:
    """(nginx.conf text, {path: content} of the certificate files it names)."""
    files: dict[str, bytes] = {}
    upstreams = {r.upstream for s in plan.servers for r in s.routes}
    if plan.default_backend is not None:
        upstreams.add(plan.default_backend)
    out = ["# nginx configuration rendered by podnet's ingress controller. Do not edit: it is replaced.",
           "worker_processes auto;", f"pid {run_dir}/nginx.pid;", "error_log stderr warn;",
           "events { worker_connections 4096; }", "http {", "  access_log off;",
           "  server_names_hash_bucket_size 128;", "  server_tokens off;",
           *(f"  {kind}_temp_path {run_dir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
           TRIMMED_URI]
    for up in sorted(u for u in upstreams if u.endpoints):
        out.append(f"  upstream {up.name} {{")
        out += [f"    server {ip}:{port} max_fails=0;" for ip, port in up.endpoints]
        out += ["    keepalive 32;", "  }"]
    for server in plan.servers:
        out.append("  server {")
        default = " default_server" if server.host == CATCH_ALL else ""
        out.append(f"    listen {http_port}{default};")
        if server.tls is not None:
            cert, key = (os.path.join(run_dir, "certs", f"{server.tls.name}.{ext}") for ext in ("crt", "key"))
            files[cert], files[key] = server.tls.cert, server.tls.key
            out += [f"    listen {https_port} ssl;", f"    ssl_certificate {cert};", f"    ssl_certificate_key {key};"]
        out.append(f"    server_name {server_name(server.host)};")
        if server.app_root is not None:  # ingress-nginx's app-root: "/" redirects there (302)
            out.append(f"    if ($uri = /) {{ return 302 {quote('$scheme://$http_host' + server.app_root)}; }}")
        out += _locations(server, plan.default_backend, https_port)
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n", files
