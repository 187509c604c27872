"""A throwaway test CA with a host and a user certificate, in the layout DIRAC expects.

    <grid-security>/certificates/<subject hash>.0   the CA (X509_CERT_DIR)
    <grid-security>/hostcert.pem, hostkey.pem       CN=localhost, SAN localhost/127.0.0.1
    <user>/usercert.pem, userkey.pem                the user who submits jobs

Proxies are made by DIRAC's own ``dirac-proxy-init`` (VOMS-less), not here.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORG = "JenniferDIRAC"
UNIT = "Loopback"
HOST_CN = "localhost"
USER_CN = "loopback-user"
VALIDITY = datetime.timedelta(days=30)


def dirac_dn(cn: str) -> str:
    """The DN as DIRAC writes it (slash form, in the order of the subject)."""
    return f"/O={ORG}/OU={UNIT}/CN={cn}"


HOST_DN = dirac_dn(HOST_CN)
USER_DN = dirac_dn(USER_CN)
CA_DN = dirac_dn("Loopback Test CA")


@dataclass(frozen=True)
class Credentials:
    cert_dir: Path
    ca_cert: Path
    host_cert: Path
    host_key: Path
    user_cert: Path
    user_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _subject_hash(cert_path: Path) -> str:
    """OpenSSL's subject hash, the name X509_CERT_DIR lookups use."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash", "-in", str(cert_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _valid_for_a_day(*cert_paths: Path) -> bool:
    # A kept installation (demo --root DIR --keep) restarted after VALIDITY gets new credentials
    # instead of TLS failures.
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return all(x509.load_pem_x509_certificate(p.read_bytes()).not_valid_after_utc > soon for p in cert_paths)


def make_credentials(grid_security: str | os.PathLike, user_dir: str | os.PathLike) -> Credentials:
    """Create the CA and host credentials in ``grid_security``, the user's in ``user_dir`` (idempotent)."""
    grid = Path(grid_security)
    cert_dir = grid / "certificates"
    user_dir = Path(user_dir)
    creds = Credentials(
        cert_dir=cert_dir,
        ca_cert=cert_dir / "ca.pem",
        host_cert=grid / "hostcert.pem",
        host_key=grid / "hostkey.pem",
        user_cert=user_dir / "usercert.pem",
        user_key=user_dir / "userkey.pem",
    )
    if all(
        p.exists() for p in (creds.ca_cert, creds.host_cert, creds.host_key, creds.user_cert, creds.user_key)
    ) and _valid_for_a_day(creds.ca_cert, creds.host_cert, creds.user_cert):
        return creds
    cert_dir.mkdir(parents=True, exist_ok=True)
    user_dir.mkdir(parents=True, exist_ok=True)
    for path in (creds.host_key, creds.user_key):
        path.unlink(missing_ok=True)

    ca_key = _key()
    ca_name = _name("Loopback Test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_cert(creds.ca_cert, ca_cert)
    link = cert_dir / f"{_subject_hash(creds.ca_cert)}.0"
    link.unlink(missing_ok=True)
    link.symlink_to(creds.ca_cert.name)

    def leaf(cn: str, usages: list, san: list | None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = _key()
        builder = (
            _builder(_name(cn), ca_name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, True, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    host_cert, host_key = leaf(
        HOST_CN,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName(HOST_CN), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    _write_cert(creds.host_cert, host_cert)
    _write_key(creds.host_key, host_key)
    user_cert, user_key = leaf(USER_CN, [ExtendedKeyUsageOID.CLIENT_AUTH], None)
    _write_cert(creds.user_cert, user_cert)
    _write_key(creds.user_key, user_key)
    return creds
