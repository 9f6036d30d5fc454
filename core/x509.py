# The certificate checks a port makes beyond its TLS library: revocation against local CRLs (the
# MicroPython port's mbedTLS has no CRL slot, and the CPython port reloads its crlfile itself),
# EMQX's verify_peer_ext_key_usage, and validity against the wall clock where the TLS stack has
# no clock (a microcontroller without RTC sync). Chain and signature checks stay with TLS.
#
# CRL signatures are not verified here: the CRL is a local file the operator installed, as
# trusted as the CA file next to it.
from gatemq import der
from gatemq.errors import CertRejected, ConfigError

# EMQX's names for verify_peer_ext_key_usage; anything else is an OID, bare or as "OID:1.2.3".
EXT_KEY_USAGES = {
    "serverAuth": "1.3.6.1.5.5.7.3.1",
    "clientAuth": "1.3.6.1.5.5.7.3.2",
    "codeSigning": "1.3.6.1.5.5.7.3.3",
    "emailProtection": "1.3.6.1.5.5.7.3.4",
    "timeStamping": "1.3.6.1.5.5.7.3.8",
    "ocspSigning": "1.3.6.1.5.5.7.3.9",
}


def _blobs(data, label):
    # DER as is, or every PEM block with that label.
    if isinstance(data, (bytes, bytearray, memoryview)) and len(data) and data[0] == der.SEQUENCE:
        return [bytes(data)]
    return der.pem_to_der(data, label)


def load_crls(blobs):
    # blobs: an iterable of CRL files' contents (DER, or PEM holding one or more X509 CRL blocks),
    # or one such content. Returns parsed CRLs; a broken file raises DerError.
    if isinstance(blobs, (bytes, bytearray, memoryview, str)):
        blobs = [blobs]
    crls = []
    for data in blobs:
        for blob in _blobs(data, "X509 CRL"):
            crls.append(der.parse_crl(blob))
    return crls


def required_usages(spec):
    # "clientAuth", "OID:1.3.6.1.5.5.7.3.2" or a comma-separated list of them -> list of OIDs.
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        oid = EXT_KEY_USAGES.get(item)
        if oid is None:
            oid = item[4:] if item[:4].upper() == "OID:" else item
            try:
                raw = der.oid_bytes(oid)
                der.oid_str(raw, 0, len(raw))
            except Exception:
                raise ConfigError("extended key usage %r is neither a known name (%s) nor an OID"
                               % (item, ", ".join(sorted(EXT_KEY_USAGES))))
        out.append(oid)
    return out


def check_client(leaf_der, issuer_der=None, crls=(), ext_key_usage=None, now=None):
    # Raises CertRejected(reason) with reason in revoked|ext_key_usage|expired|not_yet_valid|
    # wrong_issuer, or DerError for a certificate that does not parse. Returns the parsed leaf.
    cert = der.parse_certificate(leaf_der)
    if issuer_der is not None:
        issuer = der.parse_certificate(issuer_der)
        if issuer.subject_der != cert.issuer_der:
            raise CertRejected("wrong_issuer", "certificate was not issued by the given CA")
    if now is not None:
        if now < cert.not_before:
            raise CertRejected("not_yet_valid", "certificate is not valid before %d (now %d)"
                               % (cert.not_before, now))
        if now > cert.not_after:
            raise CertRejected("expired", "certificate expired at %d (now %d)" % (cert.not_after, now))
    if ext_key_usage:
        have = cert.ext_key_usage or ()
        for oid in required_usages(ext_key_usage):
            if oid not in have:
                raise CertRejected("ext_key_usage", "certificate lacks extended key usage %s" % oid)
    for crl in crls:
        if crl.issuer_der != cert.issuer_der:
            continue
        for serial, when in crl.revoked:
            if serial == cert.serial:
                raise CertRejected("revoked", "certificate serial %X was revoked at %d"
                                   % (cert.serial, when))
    return cert
