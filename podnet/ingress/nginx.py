"""An IngressPlan as an nginx configuration (pure: text and the certificate files to write).

The Ingress path rules map onto nginx's own matching without regular expressions: Exact
``/foo`` is ``location = /foo``; Prefix ``/foo`` matches whole path elements, so it is
``location = /foo`` (unless an Exact ``/foo`` takes that) plus ``location /foo/``, and nginx's
longest-prefix choice among those is the API's "longest path wins" (``/aaa`` never matches
``/aaaccc``). A wildcard host matches exactly one label, which nginx's own ``*.foo.com`` does
not promise: it becomes ``~^[^.]+\\.foo\\.com$``. Requests keep their path and Host."""
from __future__ import annotations

import os
import re

from .plan import CATCH_ALL, IngressPlan, Route, Server, Upstream

PROXY = ("proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; "
         "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; "
         "proxy_next_upstream error timeout;")


def server_name(host: str) -> str:
    if host == CATCH_ALL:
        return CATCH_ALL
    if host.startswith("*."):
        return "~^[^.]+" + re.escape(host[1:]) + "$"
    return host


def _target(upstream: Upstream | None) -> str:
    if upstream is None:
        return "return 404;"
    if not upstream.endpoints:
        return "return 503;"
    return f"proxy_pass http://{upstream.name}; {PROXY}"


def _locations(server: Server, default: Upstream | None) -> list[str]:
    exact = {r.path for r in server.routes if r.path_type == "Exact"}
    out: list[str] = []
    prefixes: dict[str, Route] = {}
    for r in server.routes:
        if r.path_type == "Exact":
            out.append(f"    location = {r.path} {{ {_target(r.upstream)} }}")
        else:
            prefixes[r.path] = r
    for path, r in sorted(prefixes.items()):
        if path == "/":
            out.append(f"    location / {{ {_target(r.upstream)} }}")
            continue
        if path not in exact:
            out.append(f"    location = {path} {{ {_target(r.upstream)} }}")
        out.append(f"    location {path}/ {{ {_target(r.upstream)} }}")
    if "/" not in prefixes:
        out.append(f"    location / {{ {_target(default)} }}")
    # nginx answers "/x" with a redirect to "/x/" when a location ends in "/x/"; the API says
    # "/x" goes where its own match leads.
    defined = exact | set(prefixes)
    for r in server.routes:
        bare = r.path.rstrip("/")
        if r.path_type == "Exact" and r.path.endswith("/") and bare and bare not in defined:
            out.append(f"    location = {bare} {{ {_target(match(server, bare, default))} }}")
            defined.add(bare)
    return out


def match(server: Server, path: str, default: Upstream | None) -> Upstream | None:
    """Where the API's rules send ``path`` on this server: an Exact path equal to it, else the
    longest Prefix that matches it element by element, else the default backend."""
    for r in server.routes:
        if r.path_type == "Exact" and r.path == path:
            return r.upstream
    best: Route | None = None
    for r in server.routes:
        if r.path_type == "Prefix" and (r.path == "/" or path == r.path or path.startswith(r.path + "/")):
            if best is None or len(r.path) > len(best.path):
                best = r
    return best.upstream if best is not None else default


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
           *(f"  {kind}_temp_path {run_dir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))]
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
        out += _locations(server, plan.default_backend)
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n", files
