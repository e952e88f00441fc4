"""Kubernetes' validation rules for names, labels, ports and CIDRs, as the API server applies them.

Each ``check_*`` raises ``ValueError`` with a message a user can act on; pydantic attaches the
field path. Rules follow k8s.io/apimachinery/pkg/util/validation.
"""

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, field_validator

# Matched with fullmatch: '$' would also accept a trailing newline ("web\n" from ``name: |``).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def field_check(name: str, check: Callable[[Any], Any]) -> Any:
    """A pydantic validator running ``check`` on field ``name`` after type validation."""

    def run(cls: type, value: Any) -> Any:
        if value is not None:
            check(value)
        return value

    return field_validator(name)(classmethod(run))


def check_dns1123_label(value: str) -> None:
    if len(value) > 63:
        raise ValueError(f"{value!r} must be no more than 63 characters")
    if not DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid DNS-1123 label: lower case letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'my-name')"
        )


def check_dns1123_subdomain(value: str) -> None:
    if len(value) > 253:
        raise ValueError(f"{value!r} must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid DNS-1123 subdomain: lower case letters, digits, '-' and "
            "'.', starting and ending with a letter or digit (e.g. 'example.com')"
        )


def check_qualified_name(value: str) -> None:
    """A label or annotation key: optional DNS subdomain prefix, '/', name of ≤ 63 chars."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            raise ValueError(f"key {value!r}: prefix before '/' must not be empty")
        check_dns1123_subdomain(prefix)
    if not name:
        raise ValueError(f"key {value!r}: name part must not be empty")
    if len(name) > 63:
        raise ValueError(f"key {value!r}: name part must be no more than 63 characters")
    if not QUALIFIED_NAME.fullmatch(name):
        raise ValueError(
            f"key {value!r} is not valid: alphanumerics, '-', '_' or '.', starting and ending "
            "with an alphanumeric (e.g. 'app' or 'example.com/app')"
        )


def check_label_value(value: str) -> None:
    if len(value) > 63:
        raise ValueError(f"label value {value!r} must be no more than 63 characters")
    if not LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label value {value!r} is not valid: empty, or alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )


def check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        check_qualified_name(key)
        check_label_value(value)


def check_annotations(annotations: dict[str, str]) -> None:
    for key in annotations:
        check_qualified_name(key)
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        raise ValueError("annotations must not be larger than 256 KiB in total")


def check_port_number(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} must be between 1 and 65535, inclusive")


def check_port_name(value: str) -> None:
    """IANA_SVC_NAME: ≤ 15 chars, lower case alphanumerics and '-', at least one letter."""
    if len(value) > 15:
        raise ValueError(f"port name {value!r} must be no more than 15 characters")
    if not IANA_SVC_NAME.fullmatch(value) or "--" in value:
        raise ValueError(
            f"port name {value!r} is not a valid IANA_SVC_NAME: lower case letters, digits and "
            "'-', no '--', starting and ending with a letter or digit"
        )
    if not any(c.isalpha() for c in value):
        raise ValueError(f"port name {value!r} must contain at least one letter")


def check_int_or_port_name(value: int | str) -> None:
    if isinstance(value, int):
        check_port_number(value)
    else:
        check_port_name(value)


def check_target_port(value: int | str) -> None:
    """A Service's targetPort; 0 and "" are accepted because the API server defaults them to port."""
    if value not in (0, ""):
        check_int_or_port_name(value)


def check_as_number(value: int) -> None:
    """A BGP AS number: 4-byte ASNs, as Calico accepts them (0 is reserved)."""
    if not 1 <= value <= 4294967295:
        raise ValueError(f"AS number {value} must be between 1 and 4294967295")


def _go_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as Go's net.ParseIP reads it: no zone (``%eth0``), no leading zeros in IPv4."""
    if "%" in text:
        raise ValueError("an address with a zone (%...) is not allowed")
    return ipaddress.ip_address(text)


def check_cidr(value: str) -> None:
    """A CIDR as Go's net.ParseCIDR reads it (host bits may be set, e.g. 10.244.1.7/4): a prefix
    length in decimal without leading zeros, never a netmask; no zone."""
    address, slash, bits = value.partition("/")
    if not slash:
        raise ValueError(f"{value!r} is not a CIDR: write it as ADDRESS/PREFIX, e.g. 10.0.0.0/8")
    try:
        ip = _go_ip(address)
    except ValueError as exc:
        reason = str(exc) if "zone" in str(exc) else f"{address!r} is not an IP address"
        raise ValueError(f"{value!r} is not a valid CIDR: {reason}") from None
    width = 32 if ip.version == 4 else 128
    if not (bits.isascii() and bits.isdigit()) or (len(bits) > 1 and bits[0] == "0") or int(bits) > width:
        netmask = " (a netmask is not allowed)" if "." in bits or ":" in bits else ""
        example = "10.0.0.0/8" if width == 32 else "fd00::/64"
        raise ValueError(f"{value!r} is not a valid CIDR: the prefix length must be a number from 0 to {width} "
                         f"without leading zeros{netmask}, e.g. {example}")


def check_ip(value: str) -> None:
    try:
        _go_ip(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None


def check_int32(value: int) -> int:
    """The API's int32 fields (replicas, priority): the API server cannot hold more."""
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{value} is out of range for a 32-bit integer ({INT32_MIN} to {INT32_MAX})")
    return value


#: An int32 field of the API (int64 bounds hold for every integer a manifest can hold).
Int32 = Annotated[int, AfterValidator(check_int32)]


DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def check_dns1035_label(value: str) -> None:
    """Service names: a DNS-1035 label (starts with a letter, so it can be a DNS name part)."""
    if len(value) > 63:
        raise ValueError(f"{value!r} must be no more than 63 characters")
    if not DNS1035_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid DNS-1035 label: lower case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit (e.g. 'my-name')"
        )


def check_path_segment_name(value: str) -> None:
    """RBAC names (``system:coredns``): anything that is one URL path segment."""
    if value in (".", "..") or "/" in value or "%" in value:
        raise ValueError(f"{value!r} may not be '.' or '..' and may not contain '/' or '%'")


NAME_CHECKS: dict[str, Callable[[str], None]] = {
    "dns1123-subdomain": check_dns1123_subdomain,
    "dns1123-label": check_dns1123_label,
    "dns1035-label": check_dns1035_label,
    "path-segment": check_path_segment_name,
}


def check_object_name(rule: str, value: str) -> None:
    """``metadata.name`` as the API server checks it for a kind's NAME_RULE."""
    NAME_CHECKS[rule](value)
