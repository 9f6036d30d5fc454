# Revocation: `revoke` records a serial in revoked.txt, `crl` turns that list into a CRL signed by
# the CA, which the broker reads through `ssl_options.crlfile` (PEM or DER).
import datetime
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from . import ca, files, index
from .errors import CertsError

CRL_NUMBER = "crlnumber"
REASONS = tuple(r.value for r in x509.ReasonFlags)


def revoke(pki, target, reason="", force=False):
    """Record target (a certificate file or a hex serial) as revoked.

    Returns (serial, newly_revoked): revoking twice is harmless and keeps the first date.
    """
    ca_cert = ca.load_ca(pki)[1]
    if os.path.isfile(target):
        cert = ca.load_cert_bytes(files.read(target, "certificate"), target)
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CertsError("%s was not issued by the CA in %s (%s); revoke it with the CA "
                             "that signed it" % (target, pki, ca_cert.subject.rfc4514_string()))
        serial = cert.serial_number
    else:
        serial = index.parse_serial(target)
        if not force and serial not in index.issued(pki):
            raise CertsError("serial %s is not in %s, so this CA did not issue it (typo?); pass "
                             "--force to revoke it anyway" % (index.serial_hex(serial),
                                                              os.path.join(pki, index.ISSUED)))
    if reason and reason not in REASONS:
        raise CertsError("--reason %r: use one of %s" % (reason, ", ".join(REASONS)))
    if any(s == serial for s, _, _ in index.revoked(pki)):
        return serial, False
    index.record_revoked(pki, serial, ca.now(), reason)
    return serial, True


def _next_number(pki):
    path = os.path.join(pki, CRL_NUMBER)
    n = 1
    if os.path.exists(path):
        try:
            n = int(files.read(path, "CRL number").decode("ascii").strip(), 16) + 1
        except ValueError:
            raise CertsError("%s must hold a hex number; delete it to restart at 1" % path)
    files.write(path, ("%s\n" % index.serial_hex(n)).encode("ascii"))
    return n


def make_crl(pki, out=None, days=30, der=False, also=()):
    """Write the CRL and return its path. Devices revoked so far are all listed.

    also: other CA folders (the previous root during a rotation, intermediates) whose CRLs are
    appended to the same PEM file, so one crlfile covers every CA the broker trusts."""
    if days < 1:
        raise CertsError("--days must be at least 1")
    if also and der:
        raise CertsError("a DER file holds one CRL only; leave out --der to write several CAs' CRLs")
    crl = build_crl(pki, days)
    if out is None:
        out = os.path.join(pki, "crl.der" if der else "crl.pem")
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    data = crl.public_bytes(enc) + b"".join(build_crl(d, days).public_bytes(enc) for d in also)
    return files.write(out, data)


def build_crl(pki, days):
    ca_key, ca_cert = ca.load_ca(pki)
    start = ca.now() - ca.BACKDATE
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start)
        .next_update(start + ca.BACKDATE + datetime.timedelta(days=days))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .add_extension(x509.CRLNumber(_next_number(pki)), critical=False)
    )
    for serial, when, reason in index.revoked(pki):
        r = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason:
            r = r.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), critical=False)
        b = b.add_revoked_certificate(r.build())
    return b.sign(ca_key, hashes.SHA256())
