# Adversarial inputs on the certificate-identity path: CRLs from sloppy CAs (issuer names encoded
# differently from the certificate's, stale or future CRLs, files with no CRL in them), serials
# that compare only as signed integers, and malformed name strings in the mapping. Certificates
# and CRLs are built by hand with the helpers of test_der.py.
from gatemq import der, peercert, x509
from gatemq.errors import CertRejected, DerError
from _check import raises
from test_der import ALG, atv, cert, name, rdn, tlv

CN = "2.5.4.3"
O = "2.5.4.10"
PRINTABLE = 0x13
UTF8 = 0x0C
T0 = 1717200000  # 2024-06-01 00:00:00 UTC


def utc(epoch):
    # UTCTime for an epoch second, without the time module (MicroPython has none in core tests).
    days, rem = divmod(epoch, 86400)
    y = 1970
    while True:
        n = 366 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 365
        if days < n:
            break
        days -= n
        y += 1
    dim = [31, 29 if n == 366 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    m = 0
    while days >= dim[m]:
        days -= dim[m]
        m += 1
    s = "%02d%02d%02d%02d%02d%02dZ" % (y % 100, m + 1, days + 1, rem // 3600, rem // 60 % 60, rem % 60)
    return tlv(0x17, s)


CA_NAME = name(rdn(atv(O, "Gatemq Test")), rdn(atv(CN, "Test CA")))


def crl(issuer=CA_NAME, serials=(), this=T0 - 3600, next_=T0 + 86400):
    entries = b"".join(tlv(0x30, tlv(0x02, s) + utc(T0 - 60)) for s in serials)
    tbs = tlv(0x02, b"\x01") + ALG + issuer + utc(this)
    if next_ is not None:
        tbs += utc(next_)
    if entries:
        tbs += tlv(0x30, entries)
    return tlv(0x30, tlv(0x30, tbs) + ALG + tlv(0x03, b"\x00" + bytes(8)))


def leaf(serial=b"\x10\x92", issuer=CA_NAME):
    return cert(serial=serial, issuer=issuer)


def check(c, crls, now=None):
    return x509.check_client(c, crls=x509.load_crls(crls), now=now)


def test_crl_issuer_matches_whatever_string_type_case_and_spacing():
    # OpenSSL (and Erlang's public_key) match a CRL to a certificate by the issuer name compared in
    # canonical form: strings as UTF-8, ASCII case folded, outer spaces dropped, inner runs of
    # spaces collapsed. A CA that writes its name as PrintableString into CRLs and as UTF8String
    # into certificates must still revoke.
    sloppy = name(rdn(atv(O, " GATEMQ   test ", PRINTABLE)), rdn(atv(CN, "test ca", PRINTABLE)))
    e = raises(CertRejected, check, leaf(), [crl(sloppy, [b"\x10\x92"])])
    assert e.reason == "revoked"
    bmp = name(rdn(atv(O, b"\x00G\x00a\x00t\x00e\x00m\x00q\x00 \x00T\x00e\x00s\x00t", 0x1E)),
               rdn(atv(CN, "Test CA", 0x14)))
    assert raises(CertRejected, check, leaf(), [crl(bmp, [b"\x10\x92"])]).reason == "revoked"


def test_crl_issuer_match_is_not_loose():
    # Folding stops at case and spacing: a different name, an inner space removed, the RDNs in
    # another order or another attribute type is another CA, whose CRL revokes nothing here.
    for other in (name(rdn(atv(O, "Gatemq Test")), rdn(atv(CN, "Test CA2"))),
                  name(rdn(atv(O, "Gatemq Test")), rdn(atv(CN, "TestCA"))),
                  name(rdn(atv(CN, "Test CA")), rdn(atv(O, "Gatemq Test"))),
                  name(rdn(atv(O, "Gatemq Test")), rdn(atv("2.5.4.11", "Test CA"))),
                  name(rdn(atv(O, "Gatemq Test"), atv(CN, "Test CA")))):
        assert check(leaf(), [crl(other, [b"\x10\x92"])]).serial == 0x1092


def test_multi_valued_rdn_order_does_not_hide_the_issuer():
    # A SET's members have no order: {O + CN} and {CN + O} name the same CA.
    a = name(rdn(atv(O, "Gatemq Test"), atv(CN, "Test CA")))
    b = name(rdn(atv(CN, "Test CA"), atv(O, "Gatemq Test")))
    assert raises(CertRejected, check, leaf(issuer=a), [crl(b, [b"\x10\x92"])]).reason == "revoked"


def test_serials_compare_as_signed_integers():
    # 0x00FF is 255 and 0xFF is -1: a CRL entry for one must not revoke the other, as in OpenSSL.
    assert check(leaf(b"\x00\xff"), [crl(serials=[b"\xff"])]).serial == 255
    assert check(leaf(b"\xff"), [crl(serials=[b"\x00\xff"])]).serial == -1
    assert raises(CertRejected, check, leaf(b"\xff"), [crl(serials=[b"\xff"])]).reason == "revoked"
    assert raises(CertRejected, check, leaf(b"\x00\xff"), [crl(serials=[b"\x00\xff"])]).reason == "revoked"
    # A non-minimal serial is not DER: the certificate is refused, the CRL is not loaded.
    raises(DerError, check, leaf(b"\x00\x10\x92"), [])
    raises(DerError, x509.load_crls, [crl(serials=[b"\x00\x10\x92"])])


def test_stale_crl_refuses_as_openssl_does():
    # Past its nextUpdate the CRL may miss revocations: OpenSSL fails such a handshake
    # (X509_V_ERR_CRL_HAS_EXPIRED) and EMQX reports the status as undetermined. Refuse too.
    stale = crl(this=T0 - 10 * 86400, next_=T0 - 1)
    e = raises(CertRejected, check, leaf(b"\x05"), [stale], T0)
    assert e.reason == "crl_expired" and "Test CA" in str(e)
    # Still a revocation when the stale CRL lists the serial.
    stale_rev = crl(serials=[b"\x05"], this=T0 - 10 * 86400, next_=T0 - 1)
    assert raises(CertRejected, check, leaf(b"\x05"), [stale_rev], T0).reason == "revoked"
    # A CRL issued in the future is not valid yet (X509_V_ERR_CRL_NOT_YET_VALID).
    e = raises(CertRejected, check, leaf(b"\x05"), [crl(this=T0 + 3600)], T0)
    assert e.reason == "crl_not_yet_valid"
    # A current CRL next to the stale one covers the issuer; no nextUpdate means no expiry;
    # a stale CRL of another CA does not matter; without a clock nothing is compared.
    assert check(leaf(b"\x05"), [stale, crl()], T0).serial == 5
    assert check(leaf(b"\x05"), [crl(this=T0 - 86400, next_=None)], T0).serial == 5
    other = name(rdn(atv(CN, "Other CA")))
    assert check(leaf(b"\x05"), [crl(other, this=T0 - 9 * 86400, next_=T0 - 86400)], T0).serial == 5
    assert check(leaf(b"\x05"), [stale]).serial == 5


def test_crl_file_without_a_crl_is_an_error():
    # A crlfile that holds no CRL (a certificate put there by mistake, a file cut to nothing while
    # it is rewritten) would silently revoke nothing.
    pem_cert = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
    for data in (b"", b"\n", pem_cert, "not a crl"):
        e = raises(DerError, x509.load_crls, data)
        assert "no X509 CRL" in str(e), str(e)
    assert len(x509.load_crls([crl()])) == 1


def test_broken_name_strings_map_to_hex_or_are_flagged():
    # An odd-length BMPString or a UniversalString beyond U+10FFFF is no text: the dn shows the
    # whole TLV as #hex, as for non-string values, and cn does the same.
    odd = cert(subject=name(rdn(atv(CN, b"\x00a\x00", 0x1E))))
    assert peercert.identity(odd, "cn") == b"#1E03006100"
    assert peercert.identity(odd, "dn") == b"CN=#1E03006100"
    big = cert(subject=name(rdn(atv(CN, b"\x00\x11\x00\x00", 0x1C))))
    assert peercert.identity(big, "dn") == b"CN=#1C0400110000"
    # Lone surrogates (BMPString or UniversalString) and NUL are unsafe text: refused by default.
    for v, tag in ((b"\xd8\x00", 0x1E), (b"\xdc\x00\x00a", 0x1E), (b"\x00\x00\xd8\x00", 0x1C),
                   (b"a\x00b", UTF8), (b"\x80", 0x14), (b"\xc0\x80", UTF8)):
        c = cert(subject=name(rdn(atv(CN, v, tag))))
        assert peercert.is_unsafe(c, "cn") and peercert.is_unsafe(c, "dn"), (v, tag)
    # Escaped in the dn whatever it holds: NUL becomes \00, so the dn stays printable ASCII.
    nul = cert(subject=name(rdn(atv(CN, b"a\x00b"))))
    assert peercert.identity(nul, "dn") == b"CN=a\\00b"


def test_identity_refuses_what_is_not_one_certificate():
    # Trailing bytes, an indefinite or over-long length, a length past the end: DerError only.
    c = cert()
    for bad in (c + b"\x00", c[:-1], b"\x30\x80" + c[2:], b"\x30\x85\x00\x00\x00\x00\x10" + c[2:],
                b"\x30\x84\x7f\xff\xff\xff" + c[2:]):
        for mode in ("cn", "dn"):
            raises(DerError, peercert.identity, bad, mode)
        raises(DerError, x509.check_client, bad)


def _eku(oids, critical=False):
    body = tlv(0x06, b"\x55\x1d\x25")  # 2.5.29.37
    if critical:
        body += tlv(0x01, b"\xff")
    return tlv(0x30, body + tlv(0x04, tlv(0x30, b"".join(tlv(0x06, der.oid_bytes(o)) for o in oids))))


def test_ext_key_usage_as_emqx_checks_it():
    # The listed usage itself must be there (EMQX: lists:member); anyExtendedKeyUsage does not
    # stand for it, and whether the extension is critical does not matter.
    any_eku = "2.5.29.37.0"
    client_auth = "1.3.6.1.5.5.7.3.2"
    e = raises(CertRejected, x509.check_client, cert(exts=[_eku([any_eku])]), None, (), "clientAuth")
    assert e.reason == "ext_key_usage"
    assert x509.check_client(cert(exts=[_eku([any_eku, client_auth], True)]), ext_key_usage="clientAuth")
    assert x509.check_client(cert(exts=[_eku([client_auth], True)]), ext_key_usage="clientAuth")
    # Twice the extension is not a certificate.
    raises(DerError, x509.check_client, cert(exts=[_eku([client_auth]), _eku([client_auth])]))
