# peercert against oracles on random subjects:
# - subject_rfc2253 against `openssl x509 -noout -subject -nameopt RFC2253` (one shell loop for all
#   certificates keeps it to a couple of seconds);
# - the EMQX dn and cn strings against a plain re-statement of the spec's rules written here with
#   Python's own codecs, and the unsafe-text rule against Python's strict UTF-8 decoder.
import datetime
import os
import random
import subprocess
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type

from gatemq import peercert

pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length")

KEY = ec.generate_private_key(ec.SECP256R1())
T = _ASN1Type
# OIDs OpenSSL and/or EMQX know, plus private ones nobody knows.
OIDS = ["2.5.4.3", "2.5.4.4", "2.5.4.5", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.9", "2.5.4.10", "2.5.4.11",
        "2.5.4.12", "2.5.4.13", "2.5.4.15", "2.5.4.17", "2.5.4.41", "2.5.4.42", "2.5.4.43", "2.5.4.44",
        "2.5.4.46", "2.5.4.65", "2.5.4.97", "0.9.2342.19200300.100.1.1", "0.9.2342.19200300.100.1.3",
        "0.9.2342.19200300.100.1.25", "1.2.840.113549.1.9.1", "1.2.840.113549.1.9.2",
        "1.3.6.1.4.1.311.60.2.1.3", "1.3.6.1.4.1.55555.1", "1.3.6.1.4.1.55555.2.9999999", "2.999.77"]
PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
SPECIAL = ' #,+"\\<>;=~'


def rand_value(r, t, astral=True):
    n = r.choice([0, 1, 1, 2, 3, 5, 8, 12])
    if t == T.PrintableString:
        return "".join(r.choice(PRINTABLE) for _ in range(n))
    if t == T.NumericString:
        return "".join(r.choice("0123456789 ") for _ in range(n))
    out = []
    for _ in range(n):
        k = r.random()
        if k < 0.35:
            out.append(r.choice(SPECIAL))
        elif k < 0.6:
            out.append(chr(r.randrange(0x20, 0x7F)))
        elif k < 0.7:
            out.append(chr(r.choice([r.randrange(0, 0x20), 0x7F])))
        elif t in (T.IA5String, T.VisibleString):
            out.append(chr(r.randrange(0x21, 0x7F)))
        elif k < 0.8:
            out.append(chr(r.randrange(0x80, 0x100)))
        elif k < 0.93:
            out.append(chr(r.choice([r.randrange(0x100, 0xD800), r.randrange(0xE000, 0xFFFE)])))
        elif astral or t != T.BMPString:
            out.append(chr(r.randrange(0x10000, 0x10FFFF)))
    return "".join(out)


def rand_subject(r, types, astral_bmp=True):
    rdns = []
    for _ in range(r.randrange(0, 7)):
        attrs = []
        for _ in range(1 if r.random() < 0.75 else r.randrange(2, 4)):
            t = r.choice(types)
            attrs.append(x509.NameAttribute(x509.ObjectIdentifier(r.choice(OIDS)), rand_value(r, t, astral_bmp),
                                            _type=t, _validate=False))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def make(subject):
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(KEY.public_key())
         .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
         .sign(KEY, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.DER)


def _openssl_loop(d, names):
    script = ('for f in "$@"; do openssl x509 -inform DER -noout -subject -nameopt RFC2253 '
              '-in "$f" 2>/dev/null || echo "!unreadable"; done')
    return subprocess.Popen(["sh", "-c", script, "sh"] + [os.path.join(d, n) for n in names],
                            stdout=subprocess.PIPE)


def openssl_subjects(blobs, jobs=2):
    # One shell loop per core: openssl starts in ~15 ms, which dominates.
    with tempfile.TemporaryDirectory() as d:
        names = []
        for i, b in enumerate(blobs):
            names.append("%04d.der" % i)
            with open(os.path.join(d, names[-1]), "wb") as f:
                f.write(b)
        step = (len(names) + jobs - 1) // jobs
        procs = [_openssl_loop(d, names[i:i + step]) for i in range(0, len(names), step)]
        out = b"".join(p.communicate(timeout=120)[0] for p in procs)
    lines = out.decode("latin-1").split("\n")[:-1]
    assert len(lines) == len(blobs)
    return [ln[len("subject="):] if ln.startswith("subject=") else None for ln in lines]


def test_openssl_refuses_what_we_skip():
    # The oracle below leaves out VisibleString and UTF-16 surrogate pairs because OpenSSL does not
    # load names holding them; check that this is still so, or the oracle would be missing cases.
    vis = make(x509.Name([x509.NameAttribute(x509.ObjectIdentifier("2.5.4.3"), "v", _type=T.VisibleString)]))
    bmp = make(x509.Name([x509.NameAttribute(x509.ObjectIdentifier("2.5.4.3"), "\U0001F600", _type=T.BMPString)]))
    ok = make(x509.Name([x509.NameAttribute(x509.ObjectIdentifier("2.5.4.3"), "ok")]))
    assert openssl_subjects([vis, bmp, ok], jobs=1) == [None, None, "CN=ok"]
    # ours still prints them, by the same rules
    assert peercert.subject_rfc2253(vis) == "CN=v"
    assert peercert.subject_rfc2253(bmp) == "CN=\\F0\\9F\\98\\80"


def test_subject_rfc2253_matches_openssl():
    r = random.Random(3)
    types = [T.UTF8String, T.PrintableString, T.IA5String, T.T61String, T.BMPString, T.UniversalString,
             T.NumericString]
    blobs = [make(rand_subject(r, types, astral_bmp=False)) for _ in range(300)]
    want = openssl_subjects(blobs)
    for blob, w in zip(blobs, want):
        assert w is not None, x509.load_der_x509_certificate(blob).subject
        assert peercert.subject_rfc2253(blob) == w, (x509.load_der_x509_certificate(blob).subject, w)


# ---------------------------------------------------------------------------------------------
# The spec's dn rules, restated plainly

EMQX_NAMES = {"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L",
              "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "TITLE", "2.5.4.42": "GIVENNAME",
              "2.5.4.43": "INITIALS", "2.5.4.44": "GENERATIONQUALIFIER", "2.5.4.65": "PSEUDONYM",
              "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "EMAILADDRESS",
              "0.9.2342.19200300.100.1.1": "UID"}


def spec_text(a):
    # cryptography reads each type back to str; undo that to the value's DER bytes, then apply
    # the spec's conversion to UTF-8.
    t = a._type
    if t in (T.UTF8String, T.PrintableString, T.IA5String, T.NumericString, T.VisibleString):
        return a.value.encode("utf-8")
    if t == T.T61String:
        return a.value.encode("utf-8").decode("latin-1").encode("utf-8")
    if t in (T.BMPString, T.UniversalString):
        return a.value.encode("utf-8")
    return None


def spec_hex(a):
    raw = a.value if isinstance(a.value, bytes) else a.value.encode("utf-8")
    assert len(raw) < 128
    return "#" + ("%02X%02X" % (a._type.value, len(raw))) + raw.hex().upper()


def spec_escape(v):
    out = []
    for i, c in enumerate(v):
        if (i == 0 and c in b" #") or (i == len(v) - 1 and c == 0x20) or c in b'"+,;<>\\':
            out.append("\\" + chr(c))
        elif c < 0x20 or c >= 0x7E:
            out.append("\\%02X" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def spec_dn(name):
    rdns = []
    for rdn in reversed(name.rdns):
        parts = []
        for a in rdn:
            oid = a.oid.dotted_string
            txt = spec_text(a)
            parts.append(EMQX_NAMES.get(oid, oid) + "=" + (spec_hex(a) if txt is None else spec_escape(txt)))
        rdns.append("+".join(parts))
    return ",".join(rdns).encode()


def spec_cn(name):
    cns = [spec_hex(a).encode() if spec_text(a) is None else spec_text(a)
           for rdn in name.rdns for a in rdn if a.oid.dotted_string == "2.5.4.3"]
    return b",".join(cns) if cns else None


def spec_unsafe(v):
    try:
        s = v.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in s)


def test_dn_cn_and_safety_match_the_spec_rules():
    r = random.Random(4)
    types = [T.UTF8String, T.PrintableString, T.IA5String, T.T61String, T.BMPString, T.UniversalString,
             T.VisibleString, T.NumericString, T.OctetString]
    for _ in range(600):
        blob = make(rand_subject(r, types))
        name = x509.load_der_x509_certificate(blob).subject
        dn = peercert.identity(blob, "dn")
        assert dn == spec_dn(name), name
        assert all(0x20 <= c < 0x7F for c in dn)
        assert peercert.identity(blob, "cn") == spec_cn(name)
        texts = [spec_text(a) for rdn in name.rdns for a in rdn]
        cn_texts = [spec_text(a) for rdn in name.rdns for a in rdn if a.oid.dotted_string == "2.5.4.3"]
        assert peercert.is_unsafe(blob, "dn") == any(spec_unsafe(t) for t in texts if t is not None)
        assert peercert.is_unsafe(blob, "cn") == any(spec_unsafe(t) for t in cn_texts if t is not None)


def test_unsafe_text_matches_strict_decoder_on_random_bytes():
    r = random.Random(5)
    alphabet = [0x00, 0x1F, 0x20, 0x41, 0x7E, 0x7F, 0x80, 0x85, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3,
                0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x8F, 0x90, 0xA0, 0x9C]
    for _ in range(20000):
        v = bytes(r.choice(alphabet) for _ in range(r.randrange(0, 6)))
        assert peercert.unsafe_text(v) == spec_unsafe(v), v
