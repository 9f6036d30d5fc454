# Client-certificate identity, byte for byte as EMQX 5 maps it (docs/peer-cert-mapping.md).
#
#   identity(der, mode)      mode in cn|dn|crt|pem|md5 -> bytes, or None when there is no value
#   subject_rfc2253(der)     the subject as `openssl x509 -noout -subject -nameopt RFC2253` prints it
#   unsafe_text(text)        True for invalid UTF-8 or C0/C1 control characters (the EMQX 6 rule)
#   is_unsafe(der, mode)     that rule applied to the CN or DN texts of a certificate
#   first_cn(der)            the first commonName as UTF-8 (Mosquitto's use_identity_as_username)
#
# Only the certificate headers up to the subject are read: the mapping runs once per connection
# on a certificate the TLS layer has already verified, and must stay cheap on a microcontroller.
import binascii
import hashlib

from gatemq import der as _der
from gatemq.errors import ConfigError

MODES = ("cn", "dn", "crt", "pem", "md5")

_CN = _der.oid_bytes("2.5.4.3")

# The names EMQX prints in a dn, as "arc name" pairs under a prefix; every other OID
# (streetAddress too) is printed dotted.
_EMQX_SRC = (
    ("2.5.4.", "3 CN 4 SN 5 SERIALNUMBER 6 C 7 L 8 ST 10 O 11 OU 12 TITLE 42 GIVENNAME 43 INITIALS "
     "44 GENERATIONQUALIFIER 65 PSEUDONYM"),
    ("0.9.2342.19200300.100.1.", "25 DC 1 UID"),
    ("1.2.840.113549.1.9.", "1 EMAILADDRESS"),
)

# OpenSSL's short names for name attributes (OBJ_nid2sn), as "arc name" pairs under a prefix.
# Kept as text and searched per attribute: no table on the heap (a dict of them cost ~20 KB on a
# board that loads bytecode into RAM), and the mapping runs once per connection.
_OSSL_SN_SRC = (
    ("2.5.4.", "3 CN 4 SN 5 serialNumber 6 C 7 L 8 ST 9 street 10 O 11 OU 12 title 13 description "
     "14 searchGuide 15 businessCategory 16 postalAddress 17 postalCode 18 postOfficeBox "
     "19 physicalDeliveryOfficeName 20 telephoneNumber 21 telexNumber 22 teletexTerminalIdentifier "
     "23 facsimileTelephoneNumber 24 x121Address 25 internationaliSDNNumber 26 registeredAddress "
     "27 destinationIndicator 28 preferredDeliveryMethod 29 presentationAddress "
     "30 supportedApplicationContext 31 member 32 owner 33 roleOccupant 34 seeAlso 35 userPassword "
     "36 userCertificate 37 cACertificate 38 authorityRevocationList 39 certificateRevocationList "
     "40 crossCertificatePair 41 name 42 GN 43 initials 44 generationQualifier "
     "45 x500UniqueIdentifier 46 dnQualifier 47 enhancedSearchGuide 48 protocolInformation "
     "49 distinguishedName 50 uniqueMember 51 houseIdentifier 52 supportedAlgorithms "
     "53 deltaRevocationList 54 dmdName 65 pseudonym 72 role 97 organizationIdentifier 98 c3 "
     "99 n3 100 dnsName"),
    ("0.9.2342.19200300.100.1.", "1 UID 2 textEncodedORAddress 3 mail 4 info 5 favouriteDrink "
     "6 roomNumber 7 photo 8 userClass 9 host 10 manager 11 documentIdentifier 12 documentTitle "
     "13 documentVersion 14 documentAuthor 15 documentLocation 20 homeTelephoneNumber "
     "21 secretary 22 otherMailbox 23 lastModifiedTime 24 lastModifiedBy 25 DC 26 aRecord "
     "27 pilotAttributeType27 28 mXRecord 29 nSRecord 30 sOARecord 31 cNAMERecord "
     "37 associatedDomain 38 associatedName 39 homePostalAddress 40 personalTitle "
     "41 mobileTelephoneNumber 42 pagerTelephoneNumber 43 friendlyCountryName 44 uid "
     "45 organizationalStatus 46 janetMailbox 47 mailPreferenceOption 48 buildingName "
     "49 dSAQuality 50 singleLevelQuality 51 subtreeMinimumQuality 52 subtreeMaximumQuality "
     "53 personalSignature 54 dITRedirect 55 audio 56 documentPublisher"),
    ("1.2.840.113549.1.9.", "1 emailAddress 2 unstructuredName 3 contentType 4 messageDigest "
     "5 signingTime 6 countersignature 7 challengePassword 8 unstructuredAddress "
     "9 extendedCertificateAttributes 14 extReq 15 SMIME-CAPS 16 SMIME 20 friendlyName "
     "21 localKeyID"),
    ("1.3.6.1.4.1.311.60.2.1.", "1 jurisdictionL 2 jurisdictionST 3 jurisdictionC"),
)


def _short_name(src, oid):
    # The name src gives the dotted oid, as bytes, or None. Arcs are digits and names never are,
    # so an arc matches only at the start of a word.
    for prefix, pairs in src:
        if oid.startswith(prefix) and oid.find(".", len(prefix)) < 0:
            key = oid[len(prefix):] + " "
            i = pairs.find(key)
            while i > 0 and pairs[i - 1] != " ":
                i = pairs.find(key, i + 1)
            if i < 0:
                return None
            i += len(key)
            j = pairs.find(" ", i)
            return pairs[i:].encode() if j < 0 else pairs[i:j].encode()
    return None


# ---------------------------------------------------------------------------------------------
# Value text: every string type as UTF-8 bytes

_RAW_TAGS = (_der.UTF8_STRING, _der.PRINTABLE_STRING, _der.IA5_STRING, _der.NUMERIC_STRING,
             _der.VISIBLE_STRING)


def _put(out, cp):
    # UTF-8 encoding of one code point. Lone UTF-16 surrogates are encoded like any other code
    # point, which yields invalid UTF-8 that unsafe_text() then flags.
    if cp < 0x80:
        out.append(cp)
    elif cp < 0x800:
        out.append(0xC0 | (cp >> 6))
        out.append(0x80 | (cp & 0x3F))
    elif cp < 0x10000:
        out.append(0xE0 | (cp >> 12))
        out.append(0x80 | ((cp >> 6) & 0x3F))
        out.append(0x80 | (cp & 0x3F))
    else:
        out.append(0xF0 | (cp >> 18))
        out.append(0x80 | ((cp >> 12) & 0x3F))
        out.append(0x80 | ((cp >> 6) & 0x3F))
        out.append(0x80 | (cp & 0x3F))


def value_text(b, t, vs, ve):
    # The value's text as UTF-8 bytes, or None when the value is not a string type we decode
    # (or is a BMP/Universal string of impossible length), which callers print as #hex.
    if t in _RAW_TAGS:
        return b[vs:ve]
    if t == _der.TELETEX_STRING:  # read as Latin-1
        out = bytearray()
        for i in range(vs, ve):
            _put(out, b[i])
        return bytes(out)
    if t == _der.BMP_STRING:  # UTF-16BE
        if (ve - vs) & 1:
            return None
        out = bytearray()
        i = vs
        while i < ve:
            u = (b[i] << 8) | b[i + 1]
            i += 2
            if 0xD800 <= u < 0xDC00 and i < ve:
                lo = (b[i] << 8) | b[i + 1]
                if 0xDC00 <= lo < 0xE000:
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 2
            _put(out, u)
        return bytes(out)
    if t == _der.UNIVERSAL_STRING:  # UTF-32BE
        if (ve - vs) & 3:
            return None
        out = bytearray()
        for i in range(vs, ve, 4):
            cp = (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]
            if cp > 0x10FFFF:
                return None
            _put(out, cp)
        return bytes(out)
    return None


_text = value_text


def _hex_tlv(b, ts, ve):
    return b"#" + binascii.hexlify(b[ts:ve]).upper()


# ---------------------------------------------------------------------------------------------
# Escaping, per dialect: bytes below 0x20 and from `high` up become \XX, the RFC 4514 specials get
# a backslash; a leading space or "#" and a trailing space are escaped too.

_EMQX = 0x7E  # EMQX escapes "~" as well
_OSSL = 0x7F
_SPECIALS = b'"+,;<>\\'


def _escape(v, high, single_first):
    # single_first: whether a one-character value is escaped as a first character (EMQX) or
    # only as a last one (OpenSSL, whose last-character flag replaces the first-character flag).
    n = len(v)
    out = bytearray()
    if n and (v[0] == 0x20 or v[0] == 0x23) and (n > 1 or single_first):
        out.append(0x5C)
        lead = True
    else:
        lead = False
    for i in range(n):
        c = v[i]
        if c < 0x20 or c >= high:
            out += b"\\%02X" % c
            continue
        if c in _SPECIALS or (c == 0x20 and i == n - 1 and not (lead and n == 1)):
            out.append(0x5C)
        out.append(c)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Public API


def _subject(der):
    b = der if isinstance(der, bytes) else bytes(der)
    s, e = _der.subject_span(b)
    return b, _der.name_entries(b, s, e)


def _oid_name(b, os_, oe, src):
    oid = _der.oid_str(b, os_, oe)
    return _short_name(src, oid) or oid.encode()


def _dn(b, rdns):
    parts = []
    for i in range(len(rdns) - 1, -1, -1):
        attrs = []
        for os_, oe, t, vs, ve, ts in rdns[i]:
            txt = _text(b, t, vs, ve)
            val = _hex_tlv(b, ts, ve) if txt is None else _escape(txt, _EMQX, True)
            attrs.append(_oid_name(b, os_, oe, _EMQX_SRC) + b"=" + val)
        parts.append(attrs[0] if len(attrs) == 1 else b"+".join(attrs))
    return b",".join(parts)


def _cns(b, rdns):
    out = []
    for rdn in rdns:
        for os_, oe, t, vs, ve, ts in rdn:
            if b[os_:oe] == _CN:
                txt = _text(b, t, vs, ve)
                out.append(_hex_tlv(b, ts, ve) if txt is None else txt)
    return out


def identity(der, mode):
    if mode == "dn":
        b, rdns = _subject(der)
        return _dn(b, rdns)
    if mode == "cn":
        b, rdns = _subject(der)
        cns = _cns(b, rdns)
        return b",".join(cns) if cns else None
    if mode == "crt":
        return bytes(der)
    if mode == "pem":
        return binascii.b2a_base64(der)[:-1]
    if mode == "md5":
        return binascii.hexlify(hashlib.md5(der).digest())
    raise ConfigError("peer certificate mapping %r: expected one of cn, dn, crt, pem, md5" % (mode,))


def name_text(name_der):
    # Any Name TLV (an issuer, a CRL's issuer) as a dn string, for messages an operator reads.
    b = bytes(name_der)
    s, e = _der.expect(b, 0, len(b), _der.SEQUENCE)
    return _dn(b, _der.name_entries(b, s, e)).decode()


def first_cn(der):
    b, rdns = _subject(der)
    cns = _cns(b, rdns)
    return cns[0] if cns else None


def subject_rfc2253(der):
    b, rdns = _subject(der)
    parts = []
    # OpenSSL walks the entries in reverse, multi-valued RDNs included.
    for i in range(len(rdns) - 1, -1, -1):
        rdn = rdns[i]
        attrs = []
        for j in range(len(rdn) - 1, -1, -1):
            os_, oe, t, vs, ve, ts = rdn[j]
            oid = _der.oid_str(b, os_, oe)
            nm = _short_name(_OSSL_SN_SRC, oid)
            if nm is None:  # unknown fields are dumped whole
                attrs.append(oid.encode() + b"=" + _hex_tlv(b, ts, ve))
                continue
            if t == _der.UTF8_STRING:
                txt = b[vs:ve]  # printed byte by byte, not decoded
            elif t in _OSSL_ONE_BYTE or t == _der.BMP_STRING or t == _der.UNIVERSAL_STRING:
                txt = _text(b, _der.TELETEX_STRING if t in _OSSL_ONE_BYTE else t, vs, ve)
            else:
                txt = None
            attrs.append(nm + b"=" + (_hex_tlv(b, ts, ve) if txt is None else _escape(txt, _OSSL, False)))
        parts.append(b"+".join(attrs))
    return b",".join(parts).decode()


# Tags OpenSSL prints one byte per character (each byte a Latin-1 code point).
_OSSL_ONE_BYTE = (0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B)


def unsafe_text(v):
    # True when v (UTF-8 bytes or str) is not valid UTF-8 or holds a C0 or C1 control code point
    # (U+0000-U+001F, U+007F-U+009F). Hand-written: MicroPython's decoder is not strict.
    if isinstance(v, str):
        v = v.encode()
    n = len(v)
    i = 0
    while i < n:
        c = v[i]
        if c < 0x80:
            if c < 0x20 or c == 0x7F:
                return True
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k = 1
            cp = c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            k = 2
            cp = c & 0x0F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            cp = c & 0x07
        else:
            return True
        if i + k >= n:
            return True
        for j in range(i + 1, i + k + 1):
            d = v[j]
            if d & 0xC0 != 0x80:
                return True
            cp = (cp << 6) | (d & 0x3F)
        if (k == 2 and (cp < 0x800 or 0xD800 <= cp < 0xE000)) or (k == 3 and not 0x10000 <= cp <= 0x10FFFF):
            return True
        if cp <= 0x9F:
            return True
        i += k + 1
    return False


def is_unsafe(der, mode):
    # The safety rule on a certificate: for cn the CN texts, for dn every attribute's text.
    if mode not in ("cn", "dn"):
        return False
    b, rdns = _subject(der)
    for rdn in rdns:
        for os_, oe, t, vs, ve, ts in rdn:
            if mode == "cn" and b[os_:oe] != _CN:
                continue
            txt = _text(b, t, vs, ve)
            if txt is not None and unsafe_text(txt):
                return True
    return False
