# Strict DER reader for X.509 certificates and CRLs (RFC 5280, X.690 DER rules).
#
# Everything works on offsets into one bytes object: no element is copied until a value is
# returned, so parsing allocates little more than the values themselves. Every fault in the input
# raises DerError with the byte offset of the offending element; nothing else escapes. The reader
# follows the certificate schema, so recursion depth is fixed by the schema; the only open-ended
# structures (attribute values, algorithm parameters) are walked with an explicit depth bound.
import binascii

from gatemq.errors import DerError
from gatemq.civil import days_from_civil, days_in_month  # noqa: F401  (days_from_civil re-exported)

MAX_DEPTH = 24  # nesting bound for open-ended values; real certificates stay far below it
_MAX_ARC_BYTES = 20  # a 140-bit OID arc is more than UUID arcs (2.25.x) need

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
NUMERIC_STRING = 0x12
PRINTABLE_STRING = 0x13
TELETEX_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
VISIBLE_STRING = 0x1A
UNIVERSAL_STRING = 0x1C
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31

_TAG_NAMES = {
    BOOLEAN: "BOOLEAN", INTEGER: "INTEGER", BIT_STRING: "BIT STRING", OCTET_STRING: "OCTET STRING",
    NULL: "NULL", OID: "OBJECT IDENTIFIER", SEQUENCE: "SEQUENCE", SET: "SET",
    UTC_TIME: "UTCTime", GENERALIZED_TIME: "GeneralizedTime",
}


def _tag_name(tag):
    n = _TAG_NAMES.get(tag)
    return n if n else "tag 0x%02X" % tag


# ---------------------------------------------------------------------------------------------
# TLV primitives


def header(b, off, end):
    # One element's header at off, inside a container ending at end.
    # Returns (tag, content_start, content_end).
    if off >= end:
        raise DerError("expected an element, found the end of its container", off)
    tag = b[off]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tag numbers do not occur in certificates", off)
    if off + 1 >= end:
        raise DerError("element header is cut short (no length byte)", off)
    n = b[off + 1]
    p = off + 2
    if n < 0x80:
        ln = n
    elif n == 0x80:
        raise DerError("indefinite length is not allowed in DER", off + 1)
    else:
        k = n & 0x7F
        if k > 4:
            raise DerError("length field of %d bytes is too large" % k, off + 1)
        if p + k > end:
            raise DerError("length field is cut short", off + 1)
        if b[p] == 0:
            raise DerError("non-minimal length (leading zero byte)", off + 1)
        ln = 0
        for i in range(p, p + k):
            ln = (ln << 8) | b[i]
        if ln < 0x80:
            raise DerError("non-minimal length (long form used for %d)" % ln, off + 1)
        p += k
    if ln > end - p:
        raise DerError("length %d runs past the end of the data (%d bytes left)" % (ln, end - p), off + 1)
    return tag, p, p + ln


def expect(b, off, end, tag):
    # The element at off must carry tag; returns (content_start, content_end).
    t, s, e = header(b, off, end)
    if t != tag:
        raise DerError("expected %s, found %s" % (_tag_name(tag), _tag_name(t)), off)
    return s, e


def walk(b, off, end, depth):
    # Checks that [off, end) is a well-formed run of DER elements (any tags), nested at most
    # MAX_DEPTH deep. Used for values whose shape the schema leaves open.
    while off < end:
        t, s, e = header(b, off, end)
        if t & 0x20:
            if depth >= MAX_DEPTH:
                raise DerError("nesting deeper than %d levels" % MAX_DEPTH, off)
            walk(b, s, e, depth + 1)
        elif t == OID:
            oid_str(b, s, e)
        elif t == INTEGER:
            integer(b, s, e)
        elif t == BOOLEAN:
            boolean(b, s, e)
        off = e


def integer(b, s, e):
    # Two's complement INTEGER content (int.from_bytes has no `signed` on MicroPython).
    if s == e:
        raise DerError("empty INTEGER", s)
    if e - s > 1:
        c0 = b[s]
        c1 = b[s + 1]
        if (c0 == 0 and c1 < 0x80) or (c0 == 0xFF and c1 >= 0x80):
            raise DerError("non-minimal INTEGER encoding", s)
    v = int.from_bytes(bytes(b[s:e]), "big")
    if b[s] & 0x80:
        v -= 1 << (8 * (e - s))
    return v


def boolean(b, s, e):
    if e - s != 1:
        raise DerError("BOOLEAN must be one byte", s)
    if b[s] == 0xFF:
        return True
    if b[s] == 0:
        return False
    raise DerError("BOOLEAN must be 0x00 or 0xFF in DER", s)


def bit_string(b, s, e):
    # Returns (content_start, content_end) of the bits; unused bits must be zero.
    if s == e:
        raise DerError("empty BIT STRING", s)
    unused = b[s]
    if unused > 7 or (unused and e - s == 1):
        raise DerError("BIT STRING has a bad unused-bits count %d" % unused, s)
    if unused and b[e - 1] & ((1 << unused) - 1):
        raise DerError("BIT STRING unused bits are not zero", e - 1)
    return s + 1, e


def oid_str(b, s, e):
    # Dotted decimal form of OBJECT IDENTIFIER content.
    if s == e:
        raise DerError("empty OBJECT IDENTIFIER", s)
    if b[e - 1] & 0x80:
        raise DerError("OBJECT IDENTIFIER ends inside a sub-identifier", e - 1)
    arcs = []
    v = 0
    start = s
    for i in range(s, e):
        c = b[i]
        if i == start:
            if c == 0x80:
                raise DerError("OBJECT IDENTIFIER sub-identifier has a non-minimal leading 0x80", i)
        elif i - start >= _MAX_ARC_BYTES:
            raise DerError("OBJECT IDENTIFIER sub-identifier longer than %d bytes" % _MAX_ARC_BYTES, start)
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            arcs.append(v)
            v = 0
            start = i + 1
    first = arcs[0]
    if first < 40:
        head = "0.%d" % first
    elif first < 80:
        head = "1.%d" % (first - 40)
    else:
        head = "2.%d" % (first - 80)
    if len(arcs) == 1:
        return head
    return head + "." + ".".join([str(a) for a in arcs[1:]])


def oid_bytes(dotted):
    # DER content of a dotted OID; used to build lookup tables at import time.
    parts = [int(p) for p in dotted.split(".")]
    arcs = [parts[0] * 40 + parts[1]] + parts[2:]
    out = bytearray()
    for a in arcs:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        chunk.reverse()
        out.extend(bytes(chunk))
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Time


def _digits(b, s, n):
    v = 0
    for i in range(s, s + n):
        c = b[i]
        if c < 0x30 or c > 0x39:
            raise DerError("time has a non-digit character", i)
        v = v * 10 + c - 0x30
    return v


def time_value(b, off, end):
    # A Time (UTCTime or GeneralizedTime) element at off -> (epoch seconds, content_end).
    # RFC 5280 profile: seconds present, "Z" zone, no fractions.
    t, s, e = header(b, off, end)
    if t == UTC_TIME:
        if e - s != 13 or b[e - 1] != 0x5A:
            raise DerError("UTCTime must be YYMMDDHHMMSSZ", s)
        y = _digits(b, s, 2)
        y += 1900 if y >= 50 else 2000
        p = s + 2
    elif t == GENERALIZED_TIME:
        if e - s != 15 or b[e - 1] != 0x5A:
            raise DerError("GeneralizedTime must be YYYYMMDDHHMMSSZ", s)
        y = _digits(b, s, 4)
        p = s + 4
    else:
        raise DerError("expected a time, found %s" % _tag_name(t), off)
    mo = _digits(b, p, 2)
    d = _digits(b, p + 2, 2)
    h = _digits(b, p + 4, 2)
    mi = _digits(b, p + 6, 2)
    sec = _digits(b, p + 8, 2)
    if not 1 <= mo <= 12:
        raise DerError("time has month %d" % mo, p)
    if not 1 <= d <= days_in_month(y, mo):
        raise DerError("time has day %d in month %d" % (d, mo), p + 2)
    if h > 23 or mi > 59 or sec > 59:
        raise DerError("time of day %02d:%02d:%02d is out of range" % (h, mi, sec), p + 4)
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec, e


# ---------------------------------------------------------------------------------------------
# Names


def name_entries(b, s, e, depth=3):
    # RDNSequence content -> list of RDNs, each a list of
    # (oid_start, oid_end, value_tag, value_start, value_end, tlv_start) offsets.
    rdns = []
    off = s
    while off < e:
        rs, re_ = expect(b, off, e, SET)
        if rs == re_:
            raise DerError("empty RelativeDistinguishedName", off)
        rdn = []
        a = rs
        while a < re_:
            as_, ae = expect(b, a, re_, SEQUENCE)
            os_, oe = expect(b, as_, ae, OID)
            t, vs, ve = header(b, oe, ae)
            if ve != ae:
                raise DerError("attribute has bytes after its value", ve)
            if t & 0x20:
                if depth >= MAX_DEPTH:
                    raise DerError("nesting deeper than %d levels" % MAX_DEPTH, oe)
                walk(b, vs, ve, depth + 1)
            rdn.append((os_, oe, t, vs, ve, oe))
            a = ae
        rdns.append(rdn)
        off = re_
    return rdns


def name(b, s, e):
    # RDNSequence content -> list of RDNs of (oid, string_tag, value_bytes, tlv_bytes).
    out = []
    for rdn in name_entries(b, s, e):
        r = []
        for os_, oe, t, vs, ve, ts in rdn:
            r.append((oid_str(b, os_, oe), t, bytes(b[vs:ve]), bytes(b[ts:ve])))
        out.append(r)
    return out


def subject_span(b):
    # Fast path for the identity mapping: walks the certificate headers only as far as the
    # subject and returns the (start, end) of the subject's RDNSequence content.
    n = len(b)
    cs, ce = expect(b, 0, n, SEQUENCE)
    if ce != n:
        raise DerError("%d trailing bytes after the certificate" % (n - ce), ce)
    ts, te = expect(b, cs, ce, SEQUENCE)
    t, s, e = header(b, ts, te)
    if t == 0xA0:
        t, s, e = header(b, e, te)
    if t != INTEGER:
        raise DerError("expected the serial number INTEGER, found %s" % _tag_name(t), s)
    off = e
    for _ in range(3):  # signature algorithm, issuer, validity
        s, off = expect(b, off, te, SEQUENCE)
    return expect(b, off, te, SEQUENCE)


# ---------------------------------------------------------------------------------------------
# Certificates

_KEY_USAGE = ("digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
              "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly")

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"

_EXT_BASIC = oid_bytes("2.5.29.19")
_EXT_KU = oid_bytes("2.5.29.15")
_EXT_EKU = oid_bytes("2.5.29.37")
_EXT_SAN = oid_bytes("2.5.29.17")
_EXT_SKI = oid_bytes("2.5.29.14")
_EXT_AKI = oid_bytes("2.5.29.35")
_EXT_CRLDP = oid_bytes("2.5.29.31")


class Certificate:
    # Fields (see parse_certificate): version (1..3), serial, signature_algorithm, issuer,
    # issuer_der, not_before, not_after, subject, subject_der, key_algorithm, rsa_n, rsa_e,
    # ec_curve, public_key, extensions (dict OID -> (critical, raw value)), basic_constraints
    # ((ca, pathlen) or None), key_usage (set of names or None), ext_key_usage (list of OIDs or
    # None), subject_alt_names (list of (kind, value)), subject_key_id, authority_key_id,
    # crl_distribution_points (list of URIs), tbs, signature.
    pass


class Crl:
    # Fields: version, signature_algorithm, issuer, issuer_der, this_update, next_update (or None),
    # revoked (list of (serial, epoch seconds)), tbs, signature.
    pass


def _algorithm(b, off, end):
    # AlgorithmIdentifier at off -> (oid, params_start, params_end, element_end).
    s, e = expect(b, off, end, SEQUENCE)
    os_, oe = expect(b, s, e, OID)
    walk(b, oe, e, 3)
    return oid_str(b, os_, oe), oe, e, e


def _signed(der, r):
    # Outer SEQUENCE { tbs, algorithm, BIT STRING } shared by certificates and CRLs: fills r's
    # signature_algorithm, signature, tbs and version (1 until the TBS says otherwise) and returns
    # the bytes and the TBS contents' bounds.
    b = der if isinstance(der, bytes) else bytes(der)
    n = len(b)
    cs, ce = expect(b, 0, n, SEQUENCE)
    if ce != n:
        raise DerError("%d trailing bytes after the outer SEQUENCE" % (n - ce), ce)
    ts, te = expect(b, cs, ce, SEQUENCE)
    alg, _, _, off = _algorithm(b, te, ce)
    ss, se = expect(b, off, ce, BIT_STRING)
    if se != ce:
        raise DerError("unexpected element after the signature", se)
    ss, se = bit_string(b, ss, se)
    r.signature_algorithm = alg
    r.signature = bytes(b[ss:se])
    r.tbs = b[cs:te]
    r.version = 1
    return b, ts, te


def _issuer(r, b, p, te):
    # The TBS's signature AlgorithmIdentifier and the issuer Name that follows it, into r.
    r.tbs_signature_algorithm, _, _, p = _algorithm(b, p, te)
    at = p
    s, p = expect(b, p, te, SEQUENCE)
    r.issuer = name(b, s, p)
    r.issuer_der = b[at:p]
    return p


def _end(b, off, end, what):
    if off != end:
        raise DerError("unexpected bytes at the end of %s" % what, off)


def _ia5(b, s, e):
    for i in range(s, e):
        if b[i] > 0x7F:
            raise DerError("IA5String holds a non-ASCII byte", i)
    return bytes(b[s:e]).decode()


def _general_names(b, s, e, out):
    # GeneralNames content -> appends (kind, value) for the kinds a broker uses.
    off = s
    while off < e:
        t, vs, ve = header(b, off, e)
        if t == 0x81:
            out.append(("email", _ia5(b, vs, ve)))
        elif t == 0x82:
            out.append(("dns", _ia5(b, vs, ve)))
        elif t == 0x86:
            out.append(("uri", _ia5(b, vs, ve)))
        elif t == 0x87:
            if ve - vs not in (4, 16):
                raise DerError("iPAddress must be 4 or 16 bytes", vs)
            out.append(("ip", bytes(b[vs:ve])))
        elif t & 0x20:
            walk(b, vs, ve, 6)
        off = ve


def _spki(c, b, off, end):
    s, e = expect(b, off, end, SEQUENCE)
    alg, ps, pe, p = _algorithm(b, s, e)
    ks, ke = expect(b, p, e, BIT_STRING)
    _end(b, ke, e, "SubjectPublicKeyInfo")
    ks, ke = bit_string(b, ks, ke)
    c.key_algorithm = alg
    c.public_key = bytes(b[ks:ke])
    c.rsa_n = c.rsa_e = c.ec_curve = None
    if alg == RSA_ENCRYPTION:
        if b[ks - 1] != 0:
            raise DerError("RSA key BIT STRING has unused bits", ks - 1)
        rs, re_ = expect(b, ks, ke, SEQUENCE)
        _end(b, re_, ke, "RSA public key")
        ns, ne = expect(b, rs, re_, INTEGER)
        es, ee = expect(b, ne, re_, INTEGER)
        _end(b, ee, re_, "RSA public key")
        c.rsa_n = integer(b, ns, ne)
        c.rsa_e = integer(b, es, ee)
    elif alg == EC_PUBLIC_KEY:
        cs, ce = expect(b, ps, pe, OID)
        _end(b, ce, pe, "EC parameters")
        c.ec_curve = oid_str(b, cs, ce)
    return e


def _extension(c, b, oid, s, e):
    if oid == _EXT_BASIC:
        bs, be = expect(b, s, e, SEQUENCE)
        _end(b, be, e, "basicConstraints")
        ca = False
        pathlen = None
        p = bs
        if p < be and b[p] == BOOLEAN:
            vs, p = expect(b, p, be, BOOLEAN)
            ca = boolean(b, vs, p)
            if not ca:
                raise DerError("basicConstraints encodes the default cA FALSE", vs)
        if p < be:
            vs, p = expect(b, p, be, INTEGER)
            pathlen = integer(b, vs, p)
        _end(b, p, be, "basicConstraints")
        c.basic_constraints = (ca, pathlen)
    elif oid == _EXT_KU:
        ks, ke = expect(b, s, e, BIT_STRING)
        _end(b, ke, e, "keyUsage")
        ks, ke = bit_string(b, ks, ke)
        usage = set()
        for i in range(min(ke - ks, 2) * 8):
            if b[ks + (i >> 3)] & (0x80 >> (i & 7)) and i < len(_KEY_USAGE):
                usage.add(_KEY_USAGE[i])
        c.key_usage = usage
    elif oid == _EXT_EKU:
        ls, le = expect(b, s, e, SEQUENCE)
        _end(b, le, e, "extendedKeyUsage")
        eku = []
        p = ls
        while p < le:
            os_, p = expect(b, p, le, OID)
            eku.append(oid_str(b, os_, p))
        c.ext_key_usage = eku
    elif oid == _EXT_SAN:
        ls, le = expect(b, s, e, SEQUENCE)
        _end(b, le, e, "subjectAltName")
        _general_names(b, ls, le, c.subject_alt_names)
    elif oid == _EXT_SKI:
        ks, ke = expect(b, s, e, OCTET_STRING)
        _end(b, ke, e, "subjectKeyIdentifier")
        c.subject_key_id = bytes(b[ks:ke])
    elif oid == _EXT_AKI:
        ls, le = expect(b, s, e, SEQUENCE)
        _end(b, le, e, "authorityKeyIdentifier")
        p = ls
        while p < le:
            t, vs, ve = header(b, p, le)
            if t == 0x80:
                c.authority_key_id = bytes(b[vs:ve])
            elif t & 0x20:
                walk(b, vs, ve, 6)
            p = ve
    elif oid == _EXT_CRLDP:
        ls, le = expect(b, s, e, SEQUENCE)
        _end(b, le, e, "cRLDistributionPoints")
        p = ls
        while p < le:
            ds, p = expect(b, p, le, SEQUENCE)
            q = ds
            while q < p:
                t, vs, ve = header(b, q, p)
                if t == 0xA0:  # distributionPoint
                    t2, ns, ne = header(b, vs, ve)
                    _end(b, ne, ve, "DistributionPointName")
                    if t2 == 0xA0:  # fullName
                        names = []
                        _general_names(b, ns, ne, names)
                        for kind, v in names:
                            if kind == "uri":
                                c.crl_distribution_points.append(v)
                    elif t2 & 0x20:
                        walk(b, ns, ne, 8)
                elif t & 0x20:
                    walk(b, vs, ve, 7)
                q = ve


def _extensions(c, b, s, e):
    ls, le = expect(b, s, e, SEQUENCE)
    _end(b, le, e, "extensions")
    p = ls
    while p < le:
        xs, p = expect(b, p, le, SEQUENCE)
        os_, oe = expect(b, xs, p, OID)
        q = oe
        critical = False
        if q < p and b[q] == BOOLEAN:
            bs, q = expect(b, q, p, BOOLEAN)
            critical = boolean(b, bs, q)
        vs, ve = expect(b, q, p, OCTET_STRING)
        _end(b, ve, p, "extension")
        oid = bytes(b[os_:oe])
        key = oid_str(b, os_, oe)
        if key in c.extensions:
            raise DerError("extension %s appears twice" % key, xs)
        c.extensions[key] = (critical, bytes(b[vs:ve]))
        _extension(c, b, oid, vs, ve)


def parse_certificate(der):
    c = Certificate()
    b, p, te = _signed(der, c)
    t, s, e = header(b, p, te)
    if t == 0xA0:
        vs, ve = expect(b, s, e, INTEGER)
        _end(b, ve, e, "version")
        v = integer(b, vs, ve)
        if v not in (1, 2):
            raise DerError("unsupported certificate version %d" % (v + 1), vs)
        c.version = v + 1
        p = e
    ss, p = expect(b, p, te, INTEGER)
    c.serial = integer(b, ss, p)
    p = _issuer(c, b, p, te)
    vs, ve = expect(b, p, te, SEQUENCE)
    c.not_before, q = time_value(b, vs, ve)
    c.not_after, q = time_value(b, q, ve)
    _end(b, q, ve, "validity")
    at = p = ve
    s, p = expect(b, p, te, SEQUENCE)
    c.subject = name(b, s, p)
    c.subject_der = b[at:p]
    p = _spki(c, b, p, te)
    c.extensions = {}
    c.basic_constraints = None
    c.key_usage = None
    c.ext_key_usage = None
    c.subject_alt_names = []
    c.subject_key_id = None
    c.authority_key_id = None
    c.crl_distribution_points = []
    for want in (0x81, 0x82, 0xA3):  # issuerUniqueID, subjectUniqueID, extensions
        if p < te and b[p] == want:
            t, s, e = header(b, p, te)
            if want == 0xA3:
                if c.version != 3:
                    raise DerError("extensions in a version %d certificate" % c.version, p)
                _extensions(c, b, s, e)
            p = e
    _end(b, p, te, "TBSCertificate")
    return c


def parse_crl(der):
    r = Crl()
    b, p, te = _signed(der, r)
    if p < te and b[p] == INTEGER:
        vs, p = expect(b, p, te, INTEGER)
        v = integer(b, vs, p)
        if v != 1:
            raise DerError("unsupported CRL version %d" % (v + 1), vs)
        r.version = 2
    p = _issuer(r, b, p, te)
    r.this_update, p = time_value(b, p, te)
    r.next_update = None
    if p < te and b[p] in (UTC_TIME, GENERALIZED_TIME):
        r.next_update, p = time_value(b, p, te)
    r.revoked = []
    if p < te and b[p] == SEQUENCE:
        ls, p = expect(b, p, te, SEQUENCE)
        q = ls
        while q < p:
            es, q = expect(b, q, p, SEQUENCE)
            ss, se = expect(b, es, q, INTEGER)
            when, x = time_value(b, se, q)
            if x < q:
                xs, xe = expect(b, x, q, SEQUENCE)
                walk(b, xs, xe, 5)
                x = xe
            _end(b, x, q, "revoked certificate entry")
            r.revoked.append((integer(b, ss, se), when))
    if p < te and b[p] == 0xA0:
        s, e = expect(b, p, te, 0xA0)
        xs, xe = expect(b, s, e, SEQUENCE)
        _end(b, xe, e, "CRL extensions")
        walk(b, xs, xe, 4)
        p = e
    _end(b, p, te, "TBSCertList")
    return r


# ---------------------------------------------------------------------------------------------
# PEM armour

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def pem_to_der(data, label=None, first=False):
    # PEM text (str or bytes) -> list of DER blobs of the blocks whose label matches
    # (any label when label is None); with first=True, the first such blob.
    # Offsets in errors count bytes of the PEM text.
    if isinstance(data, str):
        data = data.encode()
    else:
        data = bytes(data)
    out = []
    pos = 0
    while True:
        i = data.find(b"-----BEGIN ", pos)
        if i < 0:
            break
        j = data.find(b"-----", i + 11)
        if j < 0:
            raise DerError("PEM BEGIN line is not closed with -----", i)
        lab = data[i + 11:j]
        endline = b"-----END " + lab + b"-----"
        k = data.find(endline, j + 5)
        if k < 0:
            raise DerError("PEM block has no matching END line", i)
        body = data[j + 5:k]
        pos = k + len(endline)
        if label is not None and lab != (label.encode() if isinstance(label, str) else label):
            continue
        clean = bytearray()
        for n in range(len(body)):
            c = body[n]
            if c in b" \t\r\n":
                continue
            if c == 0x3A:  # "Proc-Type:" style headers mean an encrypted or legacy block
                raise DerError("PEM headers (encrypted blocks) are not supported", j + 5 + n)
            if c not in _B64:
                raise DerError("PEM body holds a non-base64 character", j + 5 + n)
            clean.append(c)
        if len(clean) % 4:
            raise DerError("PEM body length is not a multiple of 4 base64 characters", j + 5)
        try:
            blob = binascii.a2b_base64(bytes(clean))
        except Exception:
            raise DerError("PEM body is not valid base64", j + 5)
        out.append(blob)
        if first:
            return blob
    if first:
        raise DerError("no PEM block%s found" % ("" if label is None else " labelled " + str(label)), 0)
    return out
