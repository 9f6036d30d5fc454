# DER parser: strict-DER faults with their offsets, every certificate field on real certificates
# (made once with `cryptography`), CRLs, PEM armour and the x509 checks. The tlv/atv/cert helpers
# below build hand-made certificates; test_peercert.py uses them too.
import binascii

from gatemq import der, x509
from gatemq.errors import CertRejected, ConfigError, DerError
from _check import raises


def _b64(s):
    return binascii.a2b_base64(s)


def tlv(tag, body):
    if isinstance(body, str):
        body = body.encode()
    n = len(body)
    if n < 0x80:
        h = bytes((tag, n))
    elif n < 0x100:
        h = bytes((tag, 0x81, n))
    else:
        h = bytes((tag, 0x82, n >> 8, n & 0xFF))
    return h + body


def oid(dotted):
    return tlv(0x06, der.oid_bytes(dotted))


def atv(o, value, tag=0x0C):
    return tlv(0x30, oid(o) + tlv(tag, value))


def rdn(*atvs):
    return tlv(0x31, b"".join(atvs))


def name(*rdns):
    return tlv(0x30, b"".join(rdns))


ALG = tlv(0x30, oid("1.2.840.10045.4.3.2"))
SPKI = tlv(0x30, tlv(0x30, oid("1.2.840.10045.2.1") + oid("1.2.840.10045.3.1.7"))
           + tlv(0x03, b"\x00\x04" + bytes(64)))
UTC_2024 = tlv(0x17, "240101000000Z")
UTC_2025 = tlv(0x17, "250101000000Z")


def cert(subject=None, serial=b"\x01", validity=None, exts=None, issuer=None, version=b"\x02"):
    tbs = b""
    if version is not None:
        tbs += tlv(0xA0, tlv(0x02, version))
    tbs += tlv(0x02, serial) + ALG + (issuer or name(rdn(atv("2.5.4.3", "CA"))))
    tbs += tlv(0x30, validity or (UTC_2024 + UTC_2025))
    tbs += subject if subject is not None else name(rdn(atv("2.5.4.3", "dev")))
    tbs += SPKI
    if exts is not None:
        tbs += tlv(0xA3, tlv(0x30, b"".join(exts)))
    return tlv(0x30, tlv(0x30, tbs) + ALG + tlv(0x03, b"\x00" + bytes(8)))


CA = _b64(
    "MIIBhjCCASygAwIBAgIBATAKBggqhkjOPQQDAjAoMRQwEgYDVQQKDAtHYXRlbXEgVGVzdDEQMA4G"
    "A1UEAwwHVGVzdCBDQTAgFw0yNDAyMjkxMjAwMDBaGA8yMDU0MDEwMTAwMDAwMFowKDEUMBIGA1UE"
    "CgwLR2F0ZW1xIFRlc3QxEDAOBgNVBAMMB1Rlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC"
    "AARFsokYpJQYOtRzV3MwEsbPVYBoZ8TwW6qod+TTEnFLeD1EXWSF9HfE5zLf30xzz4uETpjBpnYM"
    "IVOSfdEBKb3/o0UwQzASBgNVHRMBAf8ECDAGAQH/AgEAMA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4E"
    "FgQU44CUoG/A+Fybb//scWjgAIdKiiIwCgYIKoZIzj0EAwIDSAAwRQIgWfrhGgpXCcD/DrLdzTzZ"
    "FoEQFhJaR2ENetJHFHt8cM0CIQDSvHIrD1xsHBA1dA4Q0j/cMFOxBI9xgPaGBQv/JHyT9g=="
)
LEAF1 = _b64(
    "MIICNzCCAd2gAwIBAgIRAP/u3cy7qpmId2ZVRDMiEQAwCgYIKoZIzj0EAwIwKDEUMBIGA1UECgwL"
    "R2F0ZW1xIFRlc3QxEDAOBgNVBAMMB1Rlc3QgQ0EwHhcNMjQwMjI5MTIwMDAwWhcNMjUwMjI4MTIw"
    "MDAwWjApMRQwEgYDVQQKDAtHYXRlbXEgVGVzdDERMA8GA1UEAwwIZGV2aWNlLTEwWTATBgcqhkjO"
    "PQIBBggqhkjOPQMBBwNCAAQEqSU2AQGCHl8zt9B1hhe7su1Moh14H6Ug2KJG8GJv9JJtORqrNYmo"
    "hKxeFoD9nUCmWpKA3JPuNYJmXQK9IMRCo4HmMIHjMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQD"
    "AgWgMB0GA1UdDgQWBBQUYeRLzfRT47jYul1Vu07f055GDTAfBgNVHSMEGDAWgBTjgJSgb8D4XJtv"
    "/+xxaOAAh0qKIjA+BgNVHREENzA1ghBkZXYxLmV4YW1wbGUuY29thwTAAAIHhgl1cm46ZGV2OjGB"
    "EGRldjFAZXhhbXBsZS5jb20wLgYDVR0fBCcwJTAjoCGgH4YdaHR0cDovL2NybC5leGFtcGxlLmNv"
    "bS9jYS5jcmwwEwYDVR0lBAwwCgYIKwYBBQUHAwIwCgYIKoZIzj0EAwIDSAAwRQIgPtXWGP1z+maW"
    "PTYb4XYAHYk0Pj+6nAVzmUMES01ubdkCIQDcbD9CeL5AYFwpxLL2LjobRBeJ0gMt/x33iM5hNv/x"
    "3Q=="
)
LEAF2 = _b64(
    "MIICWjCCAgCgAwIBAgICEJIwCgYIKoZIzj0EAwIwKDEUMBIGA1UECgwLR2F0ZW1xIFRlc3QxEDAO"
    "BgNVBAMMB1Rlc3QgQ0EwHhcNMjQwMjI5MTIwMDAwWhcNMjUwMjI4MTIwMDAwWjApMRQwEgYDVQQK"
    "DAtHYXRlbXEgVGVzdDERMA8GA1UEAwwIZGV2aWNlLTIwgZ8wDQYJKoZIhvcNAQEBBQADgY0AMIGJ"
    "AoGBAOrtWjJlD6X4OisrCg4sXbQWyA1tJlG/lPgnRkpHiWVjz+gOm+zXF+F3Io10SKjxkdcBYVir"
    "ochL23EK/U8KokCssz8qROcjAs1QPrBwI3rUZ+fmWhNtPlxSB/LG+19/1/0KPR0N1jRcP2gTZeQ3"
    "3sNb3iMpzX/dzB8Me7b8dEbRAgMBAAGjgdEwgc4wDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMC"
    "BaAwHQYDVR0OBBYEFGqRkfGBPozO7+pJzp2+AdFJSFm3MB8GA1UdIwQYMBaAFOOAlKBvwPhcm2//"
    "7HFo4ACHSooiMD4GA1UdEQQ3MDWCEGRldjEuZXhhbXBsZS5jb22HBMAAAgeGCXVybjpkZXY6MYEQ"
    "ZGV2MUBleGFtcGxlLmNvbTAuBgNVHR8EJzAlMCOgIaAfhh1odHRwOi8vY3JsLmV4YW1wbGUuY29t"
    "L2NhLmNybDAKBggqhkjOPQQDAgNIADBFAiBQTLJhyjn23JiJnuI9fgB9SjOXm383scai52XTU4Cx"
    "WgIhAJpzRkLKW6lIbO1NJAf9BwQ9dkoVABp30uj9PjBjdiRk"
)
CRL = _b64(
    "MIHaMIGCAgEBMAoGCCqGSM49BAMCMCgxFDASBgNVBAoMC0dhdGVtcSBUZXN0MRAwDgYDVQQDDAdU"
    "ZXN0IENBFw0yNDAyMjkxMjAwMDBaFw0yNDAzMzAxMjAwMDBaMCkwEwICEJIXDTI0MDMwMTEyMDAw"
    "MFowEgIBBxcNMjQwMjI5MTIwMDAwWjAKBggqhkjOPQQDAgNHADBEAiAnwIVVuAUWfMpV/4I2azq6"
    "3OsWAVm8xrkwAAALrBy7lwIgUN0/mfAbO+s2RC8JMXUK8lNzTyUU4PcfhsHnEujGUQM="
)
LEAF1_MD5 = b'4845eb2bb5b05642ef49c2888bcbca14'

# Known answers below come from `cryptography`/datetime on the generating host.
CA_SKI = "e38094a06fc0f85c9b6fffec7168e000874a8a22"
LEAF1_SKI = "1461e44bcdf453e3b8d8ba5d55bb4edfd39e460d"
LEAF1_POINT = ("0404a925360101821e5f33b7d0758617bbb2ed4ca21d781fa520d8a246f0626ff4926d391aab3589a884"
               "ac5e1680fd9d40a65a9280dc93ee3582665d02bd20c442")
LEAF2_N = int("eaed5a32650fa5f83a2b2b0a0e2c5db416c80d6d2651bf94f827464a47896563cfe80e9becd717e177228d"
              "7448a8f191d7016158aba1c84bdb710afd4f0aa240acb33f2a44e72302cd503eb070237ad467e7e65a136d3e"
              "5c5207f2c6fb5f7fd7fd0a3d1d0dd6345c3f681365e437dec35bde2329cd7fddcc1f0c7bb6fc7446d1", 16)
T_2024_02_29_12 = 1709208000
T_2025_02_28_12 = 1740744000
T_2054_01_01 = 2650838400
CRL_PEM = """-----BEGIN X509 CRL-----
MIHaMIGCAgEBMAoGCCqGSM49BAMCMCgxFDASBgNVBAoMC0dhdGVtcSBUZXN0MRAw
DgYDVQQDDAdUZXN0IENBFw0yNDAyMjkxMjAwMDBaFw0yNDAzMzAxMjAwMDBaMCkw
EwICEJIXDTI0MDMwMTEyMDAwMFowEgIBBxcNMjQwMjI5MTIwMDAwWjAKBggqhkjO
PQQDAgNHADBEAiAnwIVVuAUWfMpV/4I2azq63OsWAVm8xrkwAAALrBy7lwIgUN0/
mfAbO+s2RC8JMXUK8lNzTyUU4PcfhsHnEujGUQM=
-----END X509 CRL-----
"""


def _hex(b):
    return binascii.hexlify(b).decode()


def test_oid_bytes_and_text():
    assert der.oid_bytes("2.5.4.3") == b"\x55\x04\x03"
    assert der.oid_bytes("1.2.840.113549.1.9.1") == b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"
    b = b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"
    assert der.oid_str(b, 0, len(b)) == "1.2.840.113549.1.9.1"
    b = b"\x88\x37\x03"  # 2.999.3: first sub-identifier above 80
    assert der.oid_str(b, 0, 3) == "2.999.3"


def test_real_leaf_every_field():
    c = der.parse_certificate(LEAF1)
    assert c.version == 3
    assert c.serial == 0x00FFEEDDCCBBAA99887766554433221100
    assert c.signature_algorithm == "1.2.840.10045.4.3.2"
    assert c.issuer == [[("2.5.4.10", 0x0C, b"Gatemq Test", b"\x0c\x0bGatemq Test")],
                        [("2.5.4.3", 0x0C, b"Test CA", b"\x0c\x07Test CA")]]
    assert c.subject[1] == [("2.5.4.3", 0x0C, b"device-1", b"\x0c\x08device-1")]
    assert c.not_before == T_2024_02_29_12 and c.not_after == T_2025_02_28_12
    assert c.key_algorithm == der.EC_PUBLIC_KEY and c.ec_curve == "1.2.840.10045.3.1.7"
    assert _hex(c.public_key) == LEAF1_POINT
    assert c.basic_constraints == (False, None)
    assert c.key_usage == set(["digitalSignature", "keyEncipherment"])
    assert c.ext_key_usage == ["1.3.6.1.5.5.7.3.2"]
    assert c.subject_alt_names == [("dns", "dev1.example.com"), ("ip", b"\xc0\x00\x02\x07"),
                                   ("uri", "urn:dev:1"), ("email", "dev1@example.com")]
    assert _hex(c.subject_key_id) == LEAF1_SKI
    assert _hex(c.authority_key_id) == CA_SKI
    assert c.crl_distribution_points == ["http://crl.example.com/ca.crl"]
    assert c.extensions["2.5.29.19"][0] is True and c.extensions["2.5.29.17"][0] is False
    # tbs is the signed bytes; the signature is the DER ECDSA-Sig-Value
    assert LEAF1.find(c.tbs) == 4 and c.signature[0] == 0x30
    assert c.subject_der == LEAF1[LEAF1.find(b"\x30\x29\x31\x14"):][:0x2B]


def test_real_ca_and_rsa_leaf():
    ca = der.parse_certificate(CA)
    assert ca.basic_constraints == (True, 0)
    assert ca.key_usage == set(["keyCertSign", "cRLSign"])
    assert ca.not_after == T_2054_01_01  # GeneralizedTime past 2049
    assert _hex(ca.subject_key_id) == CA_SKI
    leaf = der.parse_certificate(LEAF2)
    assert leaf.serial == 4242
    assert leaf.key_algorithm == der.RSA_ENCRYPTION
    assert leaf.rsa_n == LEAF2_N and leaf.rsa_e == 65537
    assert leaf.ext_key_usage is None
    assert leaf.issuer_der == ca.subject_der


def test_crl_fields():
    crl = der.parse_crl(CRL)
    assert crl.version == 2
    assert crl.issuer_der == der.parse_certificate(CA).subject_der
    assert crl.this_update == T_2024_02_29_12
    assert crl.next_update == T_2024_02_29_12 + 30 * 86400
    assert crl.revoked == [(4242, T_2024_02_29_12 + 86400), (7, T_2024_02_29_12)]


def test_pem_armour():
    assert der.pem_to_der(CRL_PEM) == [CRL]
    text = "junk before\n" + CRL_PEM + "-----BEGIN CERTIFICATE-----\n" + \
        binascii.b2a_base64(CA).decode() + "-----END CERTIFICATE-----\n"
    assert der.pem_to_der(text, "CERTIFICATE") == [CA]
    assert der.pem_to_der(text.encode(), "X509 CRL", first=True) == CRL
    assert der.pem_to_der(text) == [CRL, CA]
    assert der.pem_to_der("no pem here") == []
    e = raises(DerError, der.pem_to_der, CRL_PEM.replace("-----END X509 CRL-----", ""))
    assert "END" in str(e) and e.offset == 0
    bad = CRL_PEM.replace("MIHa", "MI*a")
    e = raises(DerError, der.pem_to_der, bad)
    assert e.offset == bad.find("*") and "base64" in str(e)
    raises(DerError, der.pem_to_der, CRL_PEM.replace("MIHa", "MIH"))
    raises(DerError, der.pem_to_der, "x", "CERTIFICATE", True)


def test_serial_twos_complement_and_large():
    assert der.parse_certificate(cert(serial=b"\xff\x7f")).serial == -129
    assert der.parse_certificate(cert(serial=b"\x80")).serial == -128
    assert der.parse_certificate(cert(serial=b"\x00\x80")).serial == 128
    big = b"\x7f" + b"\xff" * 19
    assert der.parse_certificate(cert(serial=big)).serial == (1 << 159) - 1


def test_version_1_without_version_field():
    assert der.parse_certificate(cert(version=None)).version == 1
    e = raises(DerError, der.parse_certificate, cert(version=None, exts=[]))
    assert "extensions" in str(e)


def _time(t, s):
    c = der.parse_certificate(cert(validity=tlv(t, s) + UTC_2025))
    return c.not_before


def test_times():
    assert der.days_from_civil(1970, 1, 1) == 0
    assert der.days_from_civil(1969, 12, 31) == -1
    assert der.days_from_civil(2000, 3, 1) == 11017
    assert _time(0x17, "700101000000Z") == 0
    assert _time(0x17, "500101000000Z") == -631152000       # UTCTime years 50-99 are 19xx
    assert _time(0x17, "491231235959Z") == 2524607999       # and 00-49 are 20xx
    assert _time(0x18, "20000229120000Z") == 951825600      # leap day of a 400-year leap year
    assert _time(0x18, "99991231235959Z") == 253402300799


def test_bad_times_name_offset():
    base = cert()
    off = base.find(b"240101000000Z")
    for bad, why in (("241301000000Z", "month"), ("230229000000Z", "day"), ("240101240000Z", "time of day"),
                     ("2401010000Z", "YYMMDDHHMMSSZ"), ("24010100000aZ", "non-digit"),
                     ("240101000000+", "YYMMDDHHMMSSZ")):
        c = cert(validity=tlv(0x17, bad) + UTC_2025)
        e = raises(DerError, der.parse_certificate, c)
        assert why in str(e), (bad, str(e))
        assert off <= e.offset < off + 13, (bad, e.offset)
    e = raises(DerError, der.parse_certificate, cert(validity=tlv(0x18, "1900022900000Z0") + UTC_2025))
    assert "GeneralizedTime" in str(e)
    e = raises(DerError, der.parse_certificate, cert(validity=tlv(0x18, "19000229000000Z") + UTC_2025))
    assert "day 29" in str(e)  # 1900 is not a leap year
    e = raises(DerError, der.parse_certificate, cert(validity=tlv(0x04, "240101000000Z") + UTC_2025))
    assert "expected a time" in str(e) and e.offset == off - 2


def test_indefinite_length():
    e = raises(DerError, der.parse_certificate, b"\x30\x80" + LEAF1[4:] + b"\x00\x00")
    assert e.offset == 1 and "indefinite" in str(e)


def test_non_minimal_lengths():
    e = raises(DerError, der.parse_certificate, b"\x30\x81\x03\x02\x01\x01")
    assert e.offset == 1 and "non-minimal length" in str(e)
    e = raises(DerError, der.parse_certificate, b"\x30\x83\x00" + LEAF1[2:])
    assert e.offset == 1 and "leading zero" in str(e)
    # the same fault deeper in: an attribute value's length in long form
    c = cert(subject=name(rdn(tlv(0x30, oid("2.5.4.3") + b"\x0c\x81\x03abc"))))
    e = raises(DerError, der.parse_certificate, c)
    assert "non-minimal" in str(e) and e.offset == c.find(b"\x0c\x81\x03abc") + 1


def test_length_past_buffer():
    e = raises(DerError, der.parse_certificate, LEAF1[:-1])
    assert e.offset == 1 and "runs past" in str(e)
    e = raises(DerError, der.parse_certificate, b"\x30\x84\x7f\xff\xff\xff\x00")
    assert "runs past" in str(e)
    e = raises(DerError, der.parse_certificate, b"\x30\x85\x01\x00\x00\x00\x00")
    assert "too large" in str(e)
    e = raises(DerError, der.parse_certificate, b"\x30")
    assert e.offset == 0 and "cut short" in str(e)
    e = raises(DerError, der.parse_certificate, b"")
    assert e.offset == 0


def test_trailing_bytes():
    e = raises(DerError, der.parse_certificate, LEAF1 + b"\x00")
    assert e.offset == len(LEAF1) and "trailing" in str(e)
    e = raises(DerError, der.parse_crl, CRL + b"\x05\x00")
    assert e.offset == len(CRL)
    # trailing bytes inside an element: a SAN extension with a stray byte after its SEQUENCE
    san = tlv(0x30, oid("2.5.29.17") + tlv(0x04, tlv(0x30, tlv(0x82, "a.example")) + b"\x00"))
    e = raises(DerError, der.parse_certificate, cert(exts=[san]))
    assert "subjectAltName" in str(e)


def test_nesting_bound():
    v = tlv(0x04, "x")
    for _ in range(der.MAX_DEPTH + 2):
        v = tlv(0x30, v)
    c = cert(subject=name(rdn(tlv(0x30, oid("1.2.3.4") + v))))
    e = raises(DerError, der.parse_certificate, c)
    assert "nesting deeper" in str(e)
    assert c[e.offset] == 0x30


def test_malformed_oids():
    for body, why in ((b"\x80\x01", "non-minimal"), (b"\x55\x84", "ends inside"), (b"", "empty"),
                      (b"\x2a" + b"\xff" * 25 + b"\x01", "longer than")):
        c = cert(subject=name(rdn(tlv(0x30, tlv(0x06, body) + tlv(0x0C, "v")))))
        e = raises(DerError, der.parse_certificate, c)
        assert why in str(e), (body, str(e))
        at = c.find(b"\x06" + bytes((len(body),)) + body) + 2
        assert at <= e.offset <= at + len(body), (e.offset, at)


def test_integer_and_boolean_rules():
    e = raises(DerError, der.parse_certificate, cert(serial=b"\x00\x01"))
    assert "non-minimal INTEGER" in str(e)
    raises(DerError, der.parse_certificate, cert(serial=b"\xff\x80"))
    raises(DerError, der.parse_certificate, cert(serial=b""))
    bc = tlv(0x30, oid("2.5.29.19") + tlv(0x04, tlv(0x30, tlv(0x01, b"\x01"))))
    e = raises(DerError, der.parse_certificate, cert(exts=[bc]))
    assert "BOOLEAN" in str(e)
    dup = tlv(0x30, oid("2.5.29.14") + tlv(0x04, tlv(0x04, "k")))
    e = raises(DerError, der.parse_certificate, cert(exts=[dup, dup]))
    assert "twice" in str(e)


def test_wrong_tags_and_high_tag_numbers():
    e = raises(DerError, der.parse_certificate, b"\x31\x00")
    assert "expected SEQUENCE, found SET" in str(e) and e.offset == 0
    e = raises(DerError, der.parse_certificate, b"\x3f\x81\x01\x00")
    assert "multi-byte tag" in str(e)
    e = raises(DerError, der.parse_crl, LEAF1)
    assert isinstance(e.offset, int)


def test_constructed_attribute_value_is_walked():
    v = tlv(0x30, tlv(0x02, b"\x00\x01"))  # non-minimal INTEGER inside a SEQUENCE value
    c = cert(subject=name(rdn(tlv(0x30, oid("1.2.3.4") + v))))
    raises(DerError, der.parse_certificate, c)


def test_load_crls_pem_and_der():
    crls = x509.load_crls([CRL_PEM, CRL, CRL_PEM.encode()])
    assert len(crls) == 3 and crls[0].revoked == crls[1].revoked
    assert len(x509.load_crls(CRL)) == 1
    raises(DerError, x509.load_crls, [CRL[:-3]])


def test_check_client_revoked():
    crls = x509.load_crls([CRL])
    e = raises(CertRejected, x509.check_client, LEAF2, CA, crls)
    assert e.reason == "revoked" and "1092" in str(e)
    assert x509.check_client(LEAF1, CA, crls).serial == 0x00FFEEDDCCBBAA99887766554433221100
    # a CRL from another issuer does not revoke: issuer names must match
    other = der.parse_crl(CRL)
    other.issuer_der = der.parse_certificate(LEAF1).subject_der
    assert x509.check_client(LEAF2, None, [other]).serial == 4242


def test_check_client_ext_key_usage():
    assert x509.check_client(LEAF1, ext_key_usage="clientAuth")
    assert x509.check_client(LEAF1, ext_key_usage="OID:1.3.6.1.5.5.7.3.2")
    assert x509.check_client(LEAF1, ext_key_usage="1.3.6.1.5.5.7.3.2")
    e = raises(CertRejected, x509.check_client, LEAF1, None, (), "clientAuth,serverAuth")
    assert e.reason == "ext_key_usage" and "1.3.6.1.5.5.7.3.1" in str(e)
    e = raises(CertRejected, x509.check_client, LEAF2, None, (), "clientAuth")
    assert e.reason == "ext_key_usage"
    raises(ConfigError, x509.required_usages, "clientAuthh")
    raises(ConfigError, x509.required_usages, "OID:1")


def test_check_client_validity_and_issuer():
    assert x509.check_client(LEAF1, now=T_2024_02_29_12)
    assert x509.check_client(LEAF1, now=T_2025_02_28_12)
    e = raises(CertRejected, x509.check_client, LEAF1, now=T_2025_02_28_12 + 1)
    assert e.reason == "expired"
    e = raises(CertRejected, x509.check_client, LEAF1, now=T_2024_02_29_12 - 1)
    assert e.reason == "not_yet_valid"
    e = raises(CertRejected, x509.check_client, LEAF1, LEAF2)
    assert e.reason == "wrong_issuer"
