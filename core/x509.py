# The certificate checks a port makes beyond its TLS library: revocation against local CRLs (the
# MicroPython port's mbedTLS has no CRL slot, and the CPython port reloads its crlfile itself),
# EMQX's verify_peer_ext_key_usage, and validity against the wall clock where the TLS stack has
# no clock (a microcontroller without RTC sync). Chain and signature checks stay with TLS.
#
# CRL signatures are not verified here: the CRL is a local file the operator installed, as
# trusted as the CA file next to it.
from gatemq import der
from gatemq.errors import CertRejected, ConfigError, DerError

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
    # or one such content. Returns parsed CRLs; a broken file, or one without any CRL (which would
    # silently revoke nothing), raises DerError.
    if isinstance(blobs, (bytes, bytearray, memoryview, str)):
        blobs = [blobs]
    crls = []
    for data in blobs:
        found = _blobs(data, "X509 CRL")
        if not found:
            raise DerError("no X509 CRL in the file (neither DER nor a PEM block labelled X509 CRL)", 0)
        for blob in found:
            crl = der.parse_crl(blob)
            crl.issuer_key = name_key(crl.issuer_der)
            crls.append(crl)
    return crls


# String types OpenSSL folds when it compares names (ASN1_MASK_CANON); NumericString and
# non-string values are compared as they are.
_CANON_TAGS = (der.UTF8_STRING, der.PRINTABLE_STRING, der.TELETEX_STRING, der.IA5_STRING,
               der.VISIBLE_STRING, der.UNIVERSAL_STRING, der.BMP_STRING)
_SPACES = b" \t\n\x0b\x0c\r"


def _fold(t):
    # Outer whitespace dropped, inner runs of it made one space, ASCII upper case lowered.
    out = bytearray()
    gap = False
    for c in t:
        if c in _SPACES:
            gap = True
            continue
        if gap and out:
            out.append(0x20)
        gap = False
        out.append(c + 32 if 0x41 <= c <= 0x5A else c)
    return bytes(out)


def name_key(name_der):
    # A Name TLV -> a value equal for the names OpenSSL's X509_NAME_cmp (and Erlang's public_key)
    # take as the same: strings compared as folded UTF-8 whatever their ASN.1 type, members of a
    # multi-valued RDN in any order. A CRL is matched to a certificate by this, not by bytes: a
    # CA that writes its name as PrintableString into CRLs and as UTF8String into certificates
    # still revokes.
    from gatemq.peercert import value_text
    b = bytes(name_der)
    s, e = der.expect(b, 0, len(b), der.SEQUENCE)
    out = []
    for rdn in der.name_entries(b, s, e):
        attrs = []
        for os_, oe, t, vs, ve, ts in rdn:
            txt = value_text(b, t, vs, ve) if t in _CANON_TAGS else None
            attrs.append((b[os_:oe], b"\x0c" + _fold(txt) if txt is not None else b[ts:ve]))
        attrs.sort()
        out.append(tuple(attrs))
    return tuple(out)


def anchors(ca_ders):
    # cacertfile's CAs (DER blobs) -> the name_keys of those that lead, by issuer name within the
    # file, to a self-signed one: where a chain may end when ssl_options.partial_chain is false, as
    # OpenSSL has it. mbedTLS (the MicroPython port) ends a chain at any CA of the file, an
    # intermediate alone included, so that port checks the top of each chain against these. The
    # file is the operator's, as trusted as its CAs: names are followed, signatures not checked.
    issuer_of = {}
    for d in ca_ders:
        try:
            c = der.parse_certificate(d)
            issuer_of[name_key(c.subject_der)] = name_key(c.issuer_der)
        except (DerError, ValueError, IndexError):
            continue
    out = set()
    for s in issuer_of:
        cur = s
        for _ in range(len(issuer_of)):
            up = issuer_of.get(cur)
            if up is None:
                break
            if up == cur:
                out.add(s)
                break
            cur = up
    return out


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
    # Raises CertRejected(msg, reason) with reason in revoked|ext_key_usage|expired|not_yet_valid|
    # wrong_issuer, or DerError for a certificate that does not parse. Returns the parsed leaf.
    cert = der.parse_certificate(leaf_der)
    if issuer_der is not None:
        issuer = der.parse_certificate(issuer_der)
        if issuer.subject_der != cert.issuer_der:
            raise CertRejected("certificate was not issued by the given CA", "wrong_issuer")
    if now is not None:
        if now < cert.not_before:
            raise CertRejected("certificate is not valid before %d (now %d)" % (cert.not_before, now),
                               "not_yet_valid")
        if now > cert.not_after:
            raise CertRejected("certificate expired at %d (now %d)" % (cert.not_after, now), "expired")
    if ext_key_usage:
        have = cert.ext_key_usage or ()
        for oid in required_usages(ext_key_usage):
            if oid not in have:
                raise CertRejected("certificate lacks extended key usage %s" % oid, "ext_key_usage")
    key = None
    current = False
    stale = None
    for crl in crls:
        if key is None:
            key = name_key(cert.issuer_der)
        ck = getattr(crl, "issuer_key", None)
        if ck is None:
            ck = crl.issuer_key = name_key(crl.issuer_der)
        if ck != key:
            continue
        for serial, when in crl.revoked:
            if serial == cert.serial:
                raise CertRejected("certificate serial %X was revoked at %d" % (cert.serial, when),
                                   "revoked")
        # As OpenSSL does (X509_V_ERR_CRL_HAS_EXPIRED / CRL_NOT_YET_VALID): a CRL outside its
        # validity cannot vouch for the certificate, unless another CRL of that CA is current.
        if now is None:
            continue
        if now < crl.this_update:
            stale = stale or ("crl_not_yet_valid", "the CRL of %s is not valid before %d (now %d); "
                              "check the clock" % (_issuer(crl), crl.this_update, now))
        elif crl.next_update is not None and now > crl.next_update:
            stale = ("crl_expired", "the CRL of %s expired at %d (now %d); put a current CRL in "
                     "crlfile" % (_issuer(crl), crl.next_update, now))
        else:
            current = True
    if stale and not current:
        raise CertRejected(stale[1], stale[0])
    return cert


def _issuer(crl):
    from gatemq.peercert import name_text
    try:
        return name_text(crl.issuer_der)
    except Exception:
        return "its issuer"
