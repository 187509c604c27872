"""Who may see the fleet page: a certificate of the DIRAC CA (checked by TLS) whose DN is a
Registry user with a group that has the Operator property (checked here, against the CS)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID
from DIRAC.ConfigurationSystem.Client.Helpers import Registry
from DIRAC.Core.Security.Properties import OPERATOR

#: Attribute names as DIRAC writes DNs (the rest as cryptography names them).
_DIRAC_NAMES = {NameOID.EMAIL_ADDRESS: "emailAddress"}


class Refused(Exception):
    """Access refused; the text says why (shown to the user: it names no secret)."""


@dataclass(frozen=True)
class Operator:
    dn: str
    user: str
    groups: tuple[str, ...]  # the user's groups with the Operator property


def dirac_dn(certificate_der: bytes) -> str:
    """The subject in DIRAC's slash form, in the certificate's order (``/O=../OU=../CN=..``)."""
    subject = x509.load_der_x509_certificate(certificate_der).subject
    parts = []
    for attribute in subject:
        name = _DIRAC_NAMES.get(attribute.oid) or attribute.rfc4514_attribute_name
        parts.append(f"/{name}={attribute.value}")
    return "".join(parts)


def operator_for(certificate_der: bytes | None) -> Operator:
    """The Operator behind a verified client certificate; Refused otherwise."""
    if not certificate_der:
        raise Refused("a client certificate issued by the DIRAC CA is required")
    dn = dirac_dn(certificate_der)
    result = Registry.getUsernameForDN(dn)
    if not result["OK"]:
        raise Refused(f"{dn} is not a user of this DIRAC installation")
    user = result["Value"]
    result = Registry.getGroupsForUser(user)
    groups = result["Value"] if result["OK"] else []
    operators = tuple(g for g in groups if OPERATOR in Registry.getPropertiesForGroup(g, []))
    if not operators:
        raise Refused(f"user {user} has no group with the {OPERATOR} property")
    return Operator(dn, user, operators)
