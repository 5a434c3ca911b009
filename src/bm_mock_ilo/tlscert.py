"""The fleet's self-signed TLS certificate: generated on first start and kept, or given."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def ensure_certificate(directory: Path, addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """``cert.pem`` and ``key.pem`` in ``directory``, created if missing: RSA 2048, 10 years, valid for localhost,
    127.0.0.1 and ``addresses`` (so that clients can verify it with the certificate as their CA)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if cert.is_file() and key.is_file():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "bm-mock-ilo"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hewlett Packard Enterprise (mock)"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost")]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(["127.0.0.1", *addresses])]
            ),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomically(key, key_pem)
    _write_atomically(cert, certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of it (several fleets may start at once)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.touch(mode=0o600)
    tmp.write_bytes(data)
    tmp.replace(path)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+, as iLO 5 defaults to)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
