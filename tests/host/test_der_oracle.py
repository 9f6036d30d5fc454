# gatemq.der against `cryptography` on randomly generated certificates and CRLs: random subjects
# and issuers with every string type, every extension the parser reads, RSA and EC keys, validity
# on both sides of 2050 (UTCTime and GeneralizedTime). Every parsed field must equal what
# cryptography reads from the same bytes.
import base64
import datetime
import hashlib
import ipaddress
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatemq import der, peercert

# empty attribute values are part of the test on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length")

UTC = datetime.timezone.utc
KEYS = [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=3, key_size=1024), ed25519.Ed25519PrivateKey.generate()]
CURVES = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34"}
NAME_OIDS = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
             NameOID.LOCALITY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.STREET_ADDRESS,
             NameOID.SERIAL_NUMBER, NameOID.DOMAIN_COMPONENT, NameOID.EMAIL_ADDRESS, NameOID.USER_ID,
             NameOID.TITLE, NameOID.GIVEN_NAME, NameOID.PSEUDONYM, x509.ObjectIdentifier("1.3.6.1.4.1.55555.7"),
             x509.ObjectIdentifier("2.999.1234567890123")]
STRING_TYPES = [_ASN1Type.UTF8String, _ASN1Type.PrintableString, _ASN1Type.IA5String, _ASN1Type.T61String,
                _ASN1Type.BMPString, _ASN1Type.UniversalString, _ASN1Type.VisibleString,
                _ASN1Type.NumericString, _ASN1Type.OctetString]
PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
EKUS = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING,
        ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.OCSP_SIGNING,
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.3.1")]


def rand_text(r, t):
    n = r.randrange(0, 12)
    if t == _ASN1Type.PrintableString:
        return "".join(r.choice(PRINTABLE) for _ in range(n))
    if t == _ASN1Type.NumericString:
        return "".join(r.choice("0123456789 ") for _ in range(n))
    if t in (_ASN1Type.IA5String, _ASN1Type.VisibleString):
        return "".join(chr(r.randrange(0x20, 0x7F)) for _ in range(n))
    pool = [(0x20, 0x7F), (0xA0, 0x100), (0x100, 0xD800), (0xE000, 0xFFFE)]
    if t != _ASN1Type.BMPString:
        pool.append((0x10000, 0x10FFFF))
    out = []
    for _ in range(n):
        lo, hi = r.choice(pool)
        out.append(chr(r.randrange(lo, hi)))
    return "".join(out)


def rand_name(r):
    rdns = []
    for _ in range(r.randrange(0, 6)):
        attrs = []
        for _ in range(1 if r.random() < 0.8 else r.randrange(2, 4)):
            oid = r.choice(NAME_OIDS)
            t = r.choice(STRING_TYPES)
            attrs.append(x509.NameAttribute(oid, rand_text(r, t), _type=t, _validate=False))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def raw_value(attr):
    # The value bytes as they sit in the DER (cryptography encodes str values this way).
    t = attr._type
    if t == _ASN1Type.BMPString:
        return attr.value.encode("utf-16-be")
    if t == _ASN1Type.UniversalString:
        return attr.value.encode("utf-32-be")
    return attr.value.encode("utf-8")


def expect_name(name):
    return [[(a.oid.dotted_string, a._type.value, raw_value(a)) for a in rdn] for rdn in name.rdns]


def got_name(rdns):
    return [[(o, t, v) for o, t, v, tlv in rdn] for rdn in rdns]


def rand_time(r):
    return datetime.datetime(1950, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=r.randrange(0, 150 * 365 * 86400))


def rand_extensions(r, b, key):
    if r.random() < 0.7:
        ca = r.random() < 0.5
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=r.choice([None, 0, 3, 200]) if ca else None),
                            critical=r.random() < 0.5)
    if r.random() < 0.7:
        f = [r.random() < 0.5 for _ in range(9)]
        ka = f[4]
        b = b.add_extension(x509.KeyUsage(f[0], f[1], f[2], f[3], ka, f[5], f[6], f[7] and ka, f[8] and ka),
                            critical=True)
    if r.random() < 0.7:
        b = b.add_extension(x509.ExtendedKeyUsage(r.sample(EKUS, r.randrange(1, len(EKUS)))), critical=False)
    if r.random() < 0.7:
        names = []
        for _ in range(r.randrange(1, 6)):
            k = r.randrange(4)
            if k == 0:
                names.append(x509.DNSName("h%d.example.com" % r.randrange(1000)))
            elif k == 1:
                names.append(x509.IPAddress(ipaddress.ip_address(r.randrange(1 << 32) if r.random() < 0.5
                                                                 else ipaddress.IPv6Address(r.randrange(1 << 128)))))
            elif k == 2:
                names.append(x509.UniformResourceIdentifier("urn:dev:%d" % r.randrange(1000)))
            else:
                names.append(x509.RFC822Name("d%d@example.com" % r.randrange(1000)))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if r.random() < 0.7:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if r.random() < 0.7:
        b = b.add_extension(x509.AuthorityKeyIdentifier(r.randbytes(r.randrange(1, 30)), None, None), critical=False)
    if r.random() < 0.7:
        dps = [x509.DistributionPoint([x509.UniformResourceIdentifier("http://crl%d.example.com/c.crl" % i)],
                                      None, None, None) for i in range(r.randrange(1, 3))]
        b = b.add_extension(x509.CRLDistributionPoints(dps), critical=False)
    return b


def make_cert(r):
    key = r.choice(KEYS)
    nb = rand_time(r)
    b = (x509.CertificateBuilder().subject_name(rand_name(r)).issuer_name(rand_name(r))
         .public_key(key.public_key()).serial_number(r.randrange(1, 1 << 159))
         .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(seconds=r.randrange(1, 80 * 365 * 86400))))
    b = rand_extensions(r, b, key)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(key, algo), key


def ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


KU_NAMES = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]


def check_cert(cert, key):
    blob = cert.public_bytes(serialization.Encoding.DER)
    c = der.parse_certificate(blob)
    assert c.version == 3
    assert c.serial == cert.serial_number
    assert c.signature_algorithm == cert.signature_algorithm_oid.dotted_string
    assert got_name(c.subject) == expect_name(cert.subject)
    assert got_name(c.issuer) == expect_name(cert.issuer)
    assert c.subject_der == cert.subject.public_bytes()
    assert c.issuer_der == cert.issuer.public_bytes()
    assert c.not_before == int(cert.not_valid_before_utc.timestamp())
    assert c.not_after == int(cert.not_valid_after_utc.timestamp())
    assert c.tbs == cert.tbs_certificate_bytes
    assert c.signature == cert.signature
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        assert c.key_algorithm == der.RSA_ENCRYPTION
        assert (c.rsa_n, c.rsa_e) == (pub.public_numbers().n, pub.public_numbers().e)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        assert c.key_algorithm == der.EC_PUBLIC_KEY and c.ec_curve == CURVES[pub.curve.name]
        assert c.public_key == pub.public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)
    else:
        assert c.key_algorithm == "1.3.101.112"
        assert c.public_key == pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert sorted(c.extensions) == sorted(e.oid.dotted_string for e in cert.extensions)
    for e in cert.extensions:
        assert c.extensions[e.oid.dotted_string][0] == e.critical
    bc = ext(cert, x509.BasicConstraints)
    assert c.basic_constraints == (None if bc is None else (bc.ca, bc.path_length))
    ku = ext(cert, x509.KeyUsage)
    if ku is None:
        assert c.key_usage is None
    else:
        want = set()
        for i, n in enumerate(KU_NAMES):
            try:
                on = getattr(ku, n)
            except ValueError:  # encipher/decipher_only without key_agreement
                on = False
            if on:
                want.add(der._KEY_USAGE[i])
        assert c.key_usage == want
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert c.ext_key_usage == (None if eku is None else [o.dotted_string for o in eku])
    san = ext(cert, x509.SubjectAlternativeName)
    want = []
    for g in (san or []):
        if isinstance(g, x509.DNSName):
            want.append(("dns", g.value))
        elif isinstance(g, x509.IPAddress):
            want.append(("ip", g.value.packed))
        elif isinstance(g, x509.UniformResourceIdentifier):
            want.append(("uri", g.value))
        else:
            want.append(("email", g.value))
    assert c.subject_alt_names == want
    ski = ext(cert, x509.SubjectKeyIdentifier)
    assert c.subject_key_id == (None if ski is None else ski.digest)
    aki = ext(cert, x509.AuthorityKeyIdentifier)
    assert c.authority_key_id == (None if aki is None else aki.key_identifier)
    dps = ext(cert, x509.CRLDistributionPoints)
    assert c.crl_distribution_points == [n.value for dp in (dps or []) for n in dp.full_name]
    # the opaque modes are plain functions of the bytes
    assert peercert.identity(blob, "md5") == hashlib.md5(blob).hexdigest().encode()
    assert peercert.identity(blob, "pem") == base64.b64encode(blob)
    assert peercert.identity(blob, "crt") == blob


def test_random_certificates_match_cryptography():
    r = random.Random(1)
    for _ in range(150):
        cert, key = make_cert(r)
        check_cert(cert, key)


def test_random_crls_match_cryptography():
    r = random.Random(2)
    key = KEYS[0]
    for _ in range(40):
        last = rand_time(r)
        b = x509.CertificateRevocationListBuilder().issuer_name(rand_name(r)).last_update(last)
        b = b.next_update(last + datetime.timedelta(days=r.randrange(1, 40000)))
        for _ in range(r.randrange(0, 8)):
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(r.randrange(1, 1 << 159))
                                          .revocation_date(rand_time(r)).build())
        crl = b.sign(key, hashes.SHA256())
        blob = crl.public_bytes(serialization.Encoding.DER)
        got = der.parse_crl(blob)
        assert got.issuer_der == crl.issuer.public_bytes()
        assert got_name(got.issuer) == expect_name(crl.issuer)
        assert got.this_update == int(crl.last_update_utc.timestamp())
        assert got.next_update == int(crl.next_update_utc.timestamp())
        assert sorted(got.revoked) == sorted((rc.serial_number, int(rc.revocation_date_utc.timestamp()))
                                             for rc in crl)
        assert got.tbs == crl.tbs_certlist_bytes and got.signature == crl.signature
        pem = crl.public_bytes(serialization.Encoding.PEM)
        assert der.pem_to_der(pem, "X509 CRL", first=True) == blob
