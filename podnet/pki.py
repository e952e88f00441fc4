"""The cluster's trust root: a CA and the ServiceAccount token key, made once at ``podnet up``
and kept in the store (under ``CLUSTER_CA_KEY``), which only the control plane and the nodes
read. Pure: values in, PEM and tokens out.

- The CA signs the API server's serving certificate; pods get the CA certificate as
  ``ca.crt`` next to their token, as in every Kubernetes cluster.
- ServiceAccount tokens are JWTs (HS256 under the cluster's token key) with the claims a
  Kubernetes bound token carries: issuer, audience, subject
  ``system:serviceaccount:<ns>:<name>``, expiry, and the pod they are bound to.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLUSTER_CA_KEY = "/podnet/config/cluster-ca"
ISSUER = "https://kubernetes.default.svc.cluster.local"
CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)
TOKEN_VALIDITY = 365 * 24 * 3600  # a year, as the API server's extended expiry for legacy clients


class InvalidToken(Exception):
    """The bearer token is not one this cluster issued, or it has expired."""


@dataclass(frozen=True)
class ClusterCA:
    cert_pem: str
    key_pem: str
    token_key: str  # base64 of the HMAC key that signs ServiceAccount tokens

    def to_dict(self) -> dict[str, str]:
        return {"caCert": self.cert_pem, "caKey": self.key_pem, "tokenKey": self.token_key}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ClusterCA:
        return cls(str(value["caCert"]), str(value["caKey"]), str(value["tokenKey"]))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podnet"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_cluster_ca(name: str = "kubernetes") -> ClusterCA:
    """A fresh ECDSA P-256 CA and token key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return ClusterCA(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem,
                     base64.b64encode(secrets.token_bytes(32)).decode())


def issue_server_cert(ca: ClusterCA, common_name: str, ips: Sequence[str], dns: Sequence[str]) -> tuple[str, str]:
    """A serving certificate for ``ips`` and ``dns`` names signed by ``ca``: (cert PEM, key PEM)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
    sans += [x509.DNSName(d) for d in dict.fromkeys(dns)]
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, signing_input: str) -> str:
    return _b64(hmac.new(base64.b64decode(key), signing_input.encode(), hashlib.sha256).digest())


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def mint_token(ca: ClusterCA, namespace: str, service_account: str, pod: str, pod_uid: str,
               now: float, validity: int = TOKEN_VALIDITY) -> str:
    """A bound ServiceAccount token for ``pod``."""
    claims = {"aud": [ISSUER], "iss": ISSUER, "iat": int(now), "nbf": int(now), "exp": int(now) + validity,
              "sub": service_account_username(namespace, service_account),
              "kubernetes.io": {"namespace": namespace, "pod": {"name": pod, "uid": pod_uid},
                                "serviceaccount": {"name": service_account}}}
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_sign(ca.token_key, f'{head}.{body}')}"


def verify_token(ca: ClusterCA, token: str, now: float) -> dict[str, Any]:
    """The claims of a token this cluster signed, audience and time checked; raises InvalidToken."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWT")
    head, body, signature = parts
    if not hmac.compare_digest(_sign(ca.token_key, f"{head}.{body}"), signature):
        raise InvalidToken("bad signature")
    try:
        if json.loads(_unb64(head)).get("alg") != "HS256":
            raise InvalidToken("unexpected algorithm")
        claims: dict[str, Any] = json.loads(_unb64(body))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if claims.get("iss") != ISSUER or ISSUER not in (claims.get("aud") or []):
        raise InvalidToken("wrong issuer or audience")
    if not (int(claims.get("nbf", 0)) - 60 <= now < int(claims.get("exp", 0))):
        raise InvalidToken("token has expired or is not yet valid")
    return claims
