"""A throwaway certificate authority for a lab's etcd cluster, made at ``podnet up``.

etcd checks client certificates (``--client-cert-auth``) and peers check each other, so the
lab needs a CA, one server/peer certificate per member and one client certificate. Go's TLS
no longer accepts a common name as the host name, so every certificate carries IP (and DNS)
subject alternative names; peer certificates need both serverAuth and clientAuth.
Files are written 0600 under names as Calico's etcd secret has them (``etcd-ca``,
``etcd-cert``, ``etcd-key``).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podnet.store.config import TlsFiles

VALIDITY = datetime.timedelta(days=365)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podnet lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    """An ECDSA P-256 CA kept in memory; ``issue`` writes a signed key pair to disk."""

    def __init__(self, name: str = "podnet etcd CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def write_ca(self, path: str) -> str:
        _write(path, self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, directory: str, name: str, ips: Sequence[str] = (), dns: Sequence[str] = (),
              server: bool = True, client: bool = True) -> tuple[str, str]:
        """``<directory>/<name>.crt`` and ``.key`` for the given addresses; returns both paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(d) for d in dns]
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(name)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        os.makedirs(directory, mode=0o700, exist_ok=True)
        crt_path, key_path = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
        _write(crt_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return crt_path, key_path


def client_files(directory: str, ca: CertificateAuthority, name: str = "podnet") -> TlsFiles:
    """A client identity under ``directory`` as ``etcd-ca``, ``etcd-cert``, ``etcd-key``."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    crt, key = ca.issue(directory, name, server=False, client=True)
    files = TlsFiles(ca=os.path.join(directory, "etcd-ca"), cert=os.path.join(directory, "etcd-cert"),
                     key=os.path.join(directory, "etcd-key"))
    ca.write_ca(files.ca)
    os.replace(crt, files.cert)
    os.replace(key, files.key)
    return files
