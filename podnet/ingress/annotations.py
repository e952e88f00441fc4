"""ingress-nginx's ``nginx.ingress.kubernetes.io/*`` annotations of one Ingress (pure).

Every value that reaches nginx.conf is checked here against a narrow form (a number, a size, a
CIDR, a path or URL of safe characters), so no annotation can add configuration. A bad value is
a Warning (InvalidAnnotation) and the default is used, as ingress-nginx falls back; a bad
source range instead closes the location (503, ingress-nginx's "location denied"). Snippets are
ignored with a Warning: ingress-nginx disables them by default (CVE-2021-25742). Annotations
this controller does not build are UnsupportedAnnotation Warnings."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "nginx.ingress.kubernetes.io/"
INVALID = "InvalidAnnotation"
UNSUPPORTED = "UnsupportedAnnotation"
INVALID_PATH = "InvalidPath"

# Characters of a URL path that need no quoting anywhere in nginx.conf (no ; { } " ' \ $ or space).
SAFE_PATH = re.compile(r"^/[A-Za-z0-9\-._~/%!&()*+,=:@]*$")
# A regex path: the characters ingress-nginx accepts in one (no space, quote or control character).
REGEX_PATH = re.compile(r"^/?[A-Za-z0-9\-._~/%!&()*+,=:@$?|^\[\]{}\\<>#]*$")
REWRITE = re.compile(r"^/?[A-Za-z0-9\-._~/%!&()*+,=:@?]*$")  # after removing $1..$9
URL = re.compile(r"^https?://[A-Za-z0-9\-.]+(:[0-9]{1,5})?(/[A-Za-z0-9\-._~/%!&()*+,=:@?]*)?$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-.]{0,252}[A-Za-z0-9])?(:[0-9]{1,5})?$")
SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
SECONDS = re.compile(r"^[0-9]{1,6}$")
TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool, as ingress-nginx parses
FALSE = {"0", "f", "F", "FALSE", "false", "False"}
BOOLS = ("use-regex", "ssl-redirect", "force-ssl-redirect", "preserve-trailing-slash")
SUPPORTED = {*BOOLS, "rewrite-target", "app-root", "permanent-redirect", "permanent-redirect-code",
             "temporal-redirect", "temporal-redirect-code", "whitelist-source-range", "allowlist-source-range",
             "proxy-body-size", "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
             "backend-protocol", "upstream-vhost"}
TIMEOUTS = ("proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout")


@dataclass(frozen=True, order=True)
class Options:
    """What one Ingress's annotations ask of each of its locations (defaults: none asked)."""

    use_regex: bool = False
    rewrite_target: str | None = None
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False
    preserve_trailing_slash: bool = False
    redirect: tuple[int, str] | None = None  # (code, URL): permanent- or temporal-redirect
    source_ranges: tuple[str, ...] | None = None  # canonical networks; () with denied: closed
    denied: bool = False  # the location answers 503 (an unusable source range)
    body_size: str | None = None
    timeouts: tuple[tuple[str, int], ...] = ()  # (nginx directive, seconds)
    https_backend: bool = False
    upstream_vhost: str | None = None

    @property
    def regex(self) -> bool:
        """ingress-nginx turns a host's paths into regexes for use-regex or a rewrite-target."""
        return self.use_regex or self.rewrite_target is not None


@dataclass(frozen=True, order=True)
class Problem:
    reason: str  # InvalidAnnotation | UnsupportedAnnotation | InvalidPath
    message: str


@dataclass(frozen=True)
class Parsed:
    options: Options
    app_root: str | None
    problems: tuple[Problem, ...]


def _bool(name: str, value: str, default: bool, problems: list[Problem]) -> bool:
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    problems.append(Problem(INVALID, f"{PREFIX}{name}: {value!r} is not a boolean; using {str(default).lower()}"))
    return default


def _code(name: str, value: str | None, default: int, allowed: range, problems: list[Problem]) -> int:
    if value is None:
        return default
    if value.isdigit() and int(value) in allowed:
        return int(value)
    problems.append(Problem(INVALID, f"{PREFIX}{name}: {value!r} is not a redirect code "
                                     f"({allowed.start}-{allowed.stop - 1}); using {default}"))
    return default


def source_ranges(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs as canonical networks; ValueError names a bad one."""
    out: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR") from None
    if not out:
        raise ValueError("no address or CIDR")
    return tuple(out)


def rewrite_target(value: str) -> str | None:
    """The target if only $1..$9 and safe path characters are in it."""
    return value if value and REWRITE.match(re.sub(r"\$[1-9]", "", value)) else None


def parse(annotations: Mapping[str, str]) -> Parsed:
    """The Options of an Ingress from its annotations, with what was wrong in them."""
    problems: list[Problem] = []
    got = {k[len(PREFIX):]: v for k, v in sorted(annotations.items()) if k.startswith(PREFIX)}
    for name in got:
        if name.endswith("-snippet"):
            problems.append(Problem(UNSUPPORTED, f"{PREFIX}{name}: snippets are disabled (CVE-2021-25742); ignored"))
        elif name not in SUPPORTED:
            problems.append(Problem(UNSUPPORTED, f"{PREFIX}{name}: not supported by this controller; ignored"))
    flags = {n: _bool(n, got[n], n == "ssl-redirect", problems) for n in BOOLS if n in got}
    rewrite = None
    if "rewrite-target" in got:
        rewrite = rewrite_target(got["rewrite-target"])
        if rewrite is None:
            problems.append(Problem(INVALID, f"{PREFIX}rewrite-target: {got['rewrite-target']!r} is not a path "
                                             "(safe characters and $1..$9 only); not rewritten"))
    app_root = got.get("app-root")
    if app_root is not None and not SAFE_PATH.match(app_root):
        problems.append(Problem(INVALID, f"{PREFIX}app-root: {app_root!r} is not an absolute path; ignored"))
        app_root = None
    redirect = None
    for kind, default, codes in (("permanent", 301, range(300, 309)), ("temporal", 302, range(300, 309))):
        url = got.get(f"{kind}-redirect")
        if url is None or redirect is not None:
            continue
        if not URL.match(url):
            problems.append(Problem(INVALID, f"{PREFIX}{kind}-redirect: {url!r} is not an http(s) URL; ignored"))
            continue
        redirect = (_code(f"{kind}-redirect-code", got.get(f"{kind}-redirect-code"), default, codes, problems), url)
    ranges, denied = None, False
    for name in ("allowlist-source-range", "whitelist-source-range"):  # the new name first
        if name in got and ranges is None and not denied:
            try:
                ranges = source_ranges(got[name])
            except ValueError as exc:
                problems.append(Problem(INVALID, f"{PREFIX}{name}: {exc}; the paths answer 503"))
                denied = True
    body = got.get("proxy-body-size")
    if body is not None and not SIZE.match(body):
        problems.append(Problem(INVALID, f"{PREFIX}proxy-body-size: {body!r} is not a size (such as 8m); ignored"))
        body = None
    timeouts: list[tuple[str, int]] = []
    for name in TIMEOUTS:
        if name in got:
            if SECONDS.match(got[name]):
                timeouts.append((name.replace("-", "_"), int(got[name])))
            else:
                problems.append(Problem(INVALID, f"{PREFIX}{name}: {got[name]!r} is not a number of seconds; ignored"))
    https = False
    if "backend-protocol" in got:
        proto = got["backend-protocol"].upper()
        if proto in ("GRPC", "GRPCS", "AUTO_HTTP", "FCGI"):
            problems.append(Problem(UNSUPPORTED, f"{PREFIX}backend-protocol: {proto} is not supported by this "
                                                 "controller; using HTTP"))
        elif proto not in ("HTTP", "HTTPS"):
            problems.append(Problem(INVALID, f"{PREFIX}backend-protocol: {got['backend-protocol']!r} is not "
                                             "HTTP or HTTPS; using HTTP"))
        https = proto == "HTTPS"
    vhost = got.get("upstream-vhost")
    if vhost is not None and not HOST.match(vhost):
        problems.append(Problem(INVALID, f"{PREFIX}upstream-vhost: {vhost!r} is not a host name; ignored"))
        vhost = None
    options = Options(flags.get("use-regex", False), rewrite, flags.get("ssl-redirect", True),
                      flags.get("force-ssl-redirect", False), flags.get("preserve-trailing-slash", False), redirect,
                      ranges, denied, body, tuple(timeouts), https, vhost)
    return Parsed(options, app_root, tuple(problems))


def path_problem(path: str, regex: bool) -> Problem | None:
    """Why a path cannot go into nginx.conf, if it cannot: a plain path of safe characters, or a
    regex of the characters ingress-nginx allows that compiles."""
    if not regex:
        if SAFE_PATH.match(path):
            return None
        return Problem(INVALID_PATH, f"path {path!r} has characters nginx.conf cannot take; not served")
    if not REGEX_PATH.match(path):
        return Problem(INVALID_PATH, f"regex path {path!r} has characters nginx.conf cannot take; not served")
    try:
        re.compile(path)
    except re.error as exc:
        return Problem(INVALID_PATH, f"regex path {path!r} is not a regular expression ({exc}); not served")
    return None
