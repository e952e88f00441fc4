"""v1 Secret and ServiceAccount.

A Secret's ``stringData`` is write-only, as on the API server: it is merged into ``data``
(base64, ``stringData`` winning a shared key) when the Secret is read in, so the stored and
shown object only has ``data``. Each well-known ``type`` requires its keys (``tls.crt`` and
``tls.key`` for ``kubernetes.io/tls``, the ingress controller's certificates).
"""

import base64
import binascii
import json
import re
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from .base import Resource

SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_BYTES = 1024 * 1024
TLS = "kubernetes.io/tls"
REQUIRED_KEYS = {
    TLS: ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
}


def _decode(key: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"data[{key}]: Invalid value: illegal base64 data") from None


def _check_key(key: str) -> None:
    if len(key) > 253 or key in (".", "..") or not SECRET_KEY.match(key):
        raise ValueError(f"data[{key}]: Invalid value: {key!r}: a valid config key must consist of alphanumeric "
                         "characters, '-', '_' or '.' (e.g. 'key.name')")


class Secret(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Secret"
    PLURAL: ClassVar[str] = "secrets"

    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    type: str | None = None
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None
    immutable: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _merge_string_data(cls, value: Any) -> Any:
        """``stringData`` into ``data``, and the type defaulted to Opaque (the API server's)."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        string_data = value.pop("stringData", None) or value.pop("string_data", None)
        if isinstance(string_data, dict):
            data = dict(value.get("data") or {})
            for key, text in string_data.items():
                data[key] = base64.b64encode(str(text).encode()).decode()
            value["data"] = data
        value.setdefault("type", "Opaque")
        return value

    @model_validator(mode="after")
    def _valid(self) -> "Secret":
        decoded = {}
        for key, text in (self.data or {}).items():
            _check_key(key)
            decoded[key] = _decode(key, text)
        if sum(len(v) for v in decoded.values()) > MAX_SECRET_BYTES:
            raise ValueError(f"data: Too long: must have at most {MAX_SECRET_BYTES} bytes")
        kind = self.type or "Opaque"
        for key in REQUIRED_KEYS.get(kind, ()):
            if key not in decoded:
                raise ValueError(f"data[{key}]: Required value (a {kind} Secret needs it)")
        if kind == "kubernetes.io/basic-auth" and not (decoded.get("username") or decoded.get("password")):
            raise ValueError("data: Required value: a kubernetes.io/basic-auth Secret needs username or password")
        if kind == "kubernetes.io/service-account-token" and \
                "kubernetes.io/service-account.name" not in self.metadata.annotations:
            raise ValueError("metadata.annotations[kubernetes.io/service-account.name]: Required value")
        for key in (".dockercfg", ".dockerconfigjson"):
            if kind.endswith(key[1:]) and key in decoded:
                try:
                    json.loads(decoded[key])
                except ValueError:
                    raise ValueError(f"data[{key}]: Invalid value: not valid JSON") from None
        return self

    def decoded(self, key: str) -> bytes | None:
        """One data value, decoded (None if absent)."""
        text = (self.data or {}).get(key)
        return None if text is None else base64.b64decode(text)


class ServiceAccount(Resource):
    API_VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ServiceAccount"
    PLURAL: ClassVar[str] = "serviceaccounts"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("sa",)

    api_version: Literal["v1"] = "v1"
    kind: Literal["ServiceAccount"] = "ServiceAccount"
    automount_service_account_token: bool | None = None
    secrets: list[dict[str, Any]] | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
