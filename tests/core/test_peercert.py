# Every rule of the peer-certificate mapping spec (docs: peer-cert-mapping.md), each on a
# certificate built for it, plus subject_rfc2253 known answers taken from
# `openssl x509 -noout -subject -nameopt RFC2253` (OpenSSL 3.0) on the same certificates.
import binascii

from gatemq import peercert
from gatemq.errors import ConfigError, DerError
from _check import raises
from test_der import LEAF1, LEAF1_MD5, atv, cert, name, rdn, tlv

CN = "2.5.4.3"
O = "2.5.4.10"


def subj(*pairs, tag=0x0C):
    # One single-valued RDN per (oid, value) pair, in certificate order.
    return cert(subject=name(*[rdn(atv(o, v, tag)) for o, v in pairs]))


def dn(c):
    return peercert.identity(c, "dn")


def cn(c):
    return peercert.identity(c, "cn")


def utf16(s):
    out = bytearray()
    for ch in s:
        cp = ord(ch)
        if cp >= 0x10000:
            cp -= 0x10000
            for u in (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)):
                out += bytes((u >> 8, u & 0xFF))
        else:
            out += bytes((cp >> 8, cp & 0xFF))
    return bytes(out)


def utf32(s):
    out = bytearray()
    for ch in s:
        cp = ord(ch)
        out += bytes((cp >> 24, (cp >> 16) & 0xFF, (cp >> 8) & 0xFF, cp & 0xFF))
    return bytes(out)


def test_spec_example_emq():
    c = subj(("2.5.4.6", "CN"), ("2.5.4.8", "Zhejiang"), ("2.5.4.7", "Hangzhou"), (O, "EMQ"),
             ("2.5.4.11", "Dev"), (CN, "client1"))
    assert dn(c) == b"CN=client1,OU=Dev,O=EMQ,L=Hangzhou,ST=Zhejiang,C=CN"
    assert cn(c) == b"client1"
    assert peercert.subject_rfc2253(c) == "CN=client1,OU=Dev,O=EMQ,L=Hangzhou,ST=Zhejiang,C=CN"


def test_spec_example_several_cns_in_certificate_order():
    c = subj((O, "Org"), (CN, "first"), (CN, "second"))
    assert dn(c) == b"CN=second,CN=first,O=Org"
    assert cn(c) == b"first,second"
    assert peercert.first_cn(c) == b"first"
    # values are not escaped in cn
    assert cn(subj((CN, "a,b"), (CN, " c+d "))) == b"a,b, c+d "


def test_spec_example_utf8():
    c = subj((O, "Müller GmbH"), (CN, "Ünï 中文"))
    assert dn(c) == b"CN=\\C3\\9Cn\\C3\\AF \\E4\\B8\\AD\\E6\\96\\87,O=M\\C3\\BCller GmbH"
    assert cn(c) == "Ünï 中文".encode()


def test_spec_example_specials():
    c = subj((O, 'a,b+c;d<e>f"g\\h=i~j'), (CN, " #lead and trail "))
    assert dn(c) == b'CN=\\ #lead and trail\\ ,O=a\\,b\\+c\\;d\\<e\\>f\\"g\\\\h=i\\7Ej'
    assert peercert.subject_rfc2253(c) == 'CN=\\ #lead and trail\\ ,O=a\\,b\\+c\\;d\\<e\\>f\\"g\\\\h=i~j'


def test_spaces_and_hash():
    assert dn(subj((CN, " "))) == b"CN=\\ "
    assert dn(subj((CN, "  "))) == b"CN=\\ \\ "
    assert dn(subj((CN, "   "))) == b"CN=\\  \\ "
    assert dn(subj((CN, "a b "))) == b"CN=a b\\ "
    assert dn(subj((CN, "#"))) == b"CN=\\#"
    assert dn(subj((CN, "#a#"))) == b"CN=\\#a#"
    assert dn(subj((CN, ""))) == b"CN="
    # OpenSSL treats a one-character value as last only, so a lone "#" stays bare
    assert peercert.subject_rfc2253(subj((CN, "#"))) == "CN=#"
    assert peercert.subject_rfc2253(subj((CN, " "))) == "CN=\\ "
    assert peercert.subject_rfc2253(subj((CN, "  "))) == "CN=\\ \\ "
    assert peercert.subject_rfc2253(subj((CN, "#a#"))) == "CN=\\#a#"


def test_controls_tilde_del_are_hex():
    c = subj((CN, "a\x00b\x1f~\x7fz\n"))
    assert dn(c) == b"CN=a\\00b\\1F\\7E\\7Fz\\0A"
    assert peercert.subject_rfc2253(c) == "CN=a\\00b\\1F~\\7Fz\\0A"


def test_whole_dn_is_printable_ascii():
    c = subj((O, "\x01\x7e\x80\xff ä"), (CN, "x\x9fy"))
    for ch in dn(c):
        assert 0x20 <= ch < 0x7F


def test_string_types_decode_to_utf8():
    text = "Ünï 中文"
    for tag, raw in ((0x1E, utf16(text)), (0x1C, utf32(text))):
        c = cert(subject=name(rdn(atv(CN, raw, tag))))
        assert cn(c) == text.encode()
        assert dn(c) == b"CN=\\C3\\9Cn\\C3\\AF \\E4\\B8\\AD\\E6\\96\\87"
    emoji = cert(subject=name(rdn(atv(CN, utf16("a\U0001F600"), 0x1E))))
    assert cn(emoji) == "a\U0001F600".encode()
    assert dn(emoji) == b"CN=a\\F0\\9F\\98\\80"
    # TeletexString is read as Latin-1
    t61 = cert(subject=name(rdn(atv(O, b"M\xfcller", 0x14))))
    assert dn(t61) == b"O=M\\C3\\BCller"
    assert peercert.subject_rfc2253(t61) == "O=M\\C3\\BCller"
    for tag in (0x13, 0x16, 0x12, 0x1A):  # Printable, IA5, Numeric, Visible: bytes as they are
        assert dn(cert(subject=name(rdn(atv(CN, "12 34", tag))))) == b"CN=12 34"


def test_multi_valued_rdn_keeps_der_order():
    c = cert(subject=name(rdn(atv(O, "Org")), rdn(atv(CN, "cn1"), atv("0.9.2342.19200300.100.1.1", "uid1"))))
    assert dn(c) == b"CN=cn1+UID=uid1,O=Org"
    assert cn(c) == b"cn1"
    # OpenSSL reverses the attributes inside the RDN too
    assert peercert.subject_rfc2253(c) == "UID=uid1+CN=cn1,O=Org"


def test_every_emqx_name():
    pairs = (("2.5.4.4", "SN"), ("2.5.4.5", "SERIALNUMBER"), ("2.5.4.12", "TITLE"),
             ("2.5.4.42", "GIVENNAME"), ("2.5.4.43", "INITIALS"), ("2.5.4.44", "GENERATIONQUALIFIER"),
             ("2.5.4.65", "PSEUDONYM"), ("0.9.2342.19200300.100.1.25", "DC"),
             ("1.2.840.113549.1.9.1", "EMAILADDRESS"), ("0.9.2342.19200300.100.1.1", "UID"),
             ("2.5.4.6", "C"), ("2.5.4.7", "L"), ("2.5.4.8", "ST"), ("2.5.4.11", "OU"))
    for o, nm in pairs:
        assert dn(subj((o, "v"), tag=0x13)) == nm.encode() + b"=v", nm


def test_street_and_unknown_oids_are_dotted():
    c = subj(("2.5.4.9", "Main St"), ("2.5.4.17", "12345"), ("1.3.6.1.4.1.99999.1", "xyz"))
    assert dn(c) == b"1.3.6.1.4.1.99999.1=xyz,2.5.4.17=12345,2.5.4.9=Main St"
    ia5 = cert(subject=name(rdn(atv("1.2.3.4", "x y", 0x16))))
    assert dn(ia5) == b"1.2.3.4=x y"
    # OpenSSL knows street and postalCode, and dumps fields it does not know as DER hex
    assert peercert.subject_rfc2253(c) == "1.3.6.1.4.1.99999.1=#0C0378797A,postalCode=12345,street=Main St"


def test_non_string_values_are_der_hex():
    c = cert(subject=name(rdn(tlv(0x30, b"\x06\x03\x2a\x03\x04" + tlv(0x02, b"\x05"))),
                          rdn(tlv(0x30, b"\x06\x03\x55\x04\x03" + tlv(0x04, "hi")))))
    assert dn(c) == b"CN=#04026869,1.2.3.4=#020105"
    assert cn(c) == b"#04026869"
    seq = cert(subject=name(rdn(tlv(0x30, b"\x06\x03\x2a\x03\x04" + tlv(0x30, tlv(0x0C, "a"))))))
    assert dn(seq) == b"1.2.3.4=#30030C0161"
    # string types outside the spec's list (GeneralString) are hex too
    assert dn(cert(subject=name(rdn(atv(CN, "g", 0x1B))))) == b"CN=#1B0167"
    # a BMPString of odd length cannot be text
    assert dn(cert(subject=name(rdn(atv(CN, b"\x00a\x00", 0x1E))))) == b"CN=#1E03006100"


def test_types_emqx_crashes_on_are_text():
    c = cert(subject=name(rdn(atv(CN, "dev@x", 0x16)), rdn(atv("0.9.2342.19200300.100.1.25", "com")),
                          rdn(atv("2.5.4.5", "SN-1"))))
    assert dn(c) == b"SERIALNUMBER=SN-1,DC=com,CN=dev@x"
    assert cn(c) == b"dev@x"
    u = cert(subject=name(rdn(atv("1.2.840.113549.1.9.1", "jö@x")), rdn(atv("2.5.4.6", "Ü"))))
    assert dn(u) == b"C=\\C3\\9C,EMAILADDRESS=j\\C3\\B6@x"


def test_empty_subject():
    c = cert(subject=name())
    assert dn(c) == b""
    assert cn(c) is None
    assert peercert.first_cn(c) is None
    assert peercert.subject_rfc2253(c) == ""
    # a subject without CN has a dn but no cn
    c = subj((O, "Org"))
    assert dn(c) == b"O=Org" and cn(c) is None


def test_crt_pem_md5():
    assert peercert.identity(LEAF1, "crt") == LEAF1
    pem = peercert.identity(LEAF1, "pem")
    assert b"\n" not in pem and b"-" not in pem and pem.endswith(b"==")
    assert binascii.a2b_base64(pem) == LEAF1
    assert pem[:12] == b"MIICNzCCAd2g"
    assert peercert.identity(LEAF1, "md5") == LEAF1_MD5
    assert peercert.identity(bytearray(LEAF1), "dn") == b"CN=device-1,O=Gatemq Test"
    assert peercert.identity(memoryview(LEAF1), "cn") == b"device-1"
    raises(ConfigError, peercert.identity, LEAF1, "disabled")


def test_broken_certificate_raises_der_error_only():
    for n in range(0, len(LEAF1), 7):
        for mode in ("dn", "cn"):
            raises(DerError, peercert.identity, LEAF1[:n], mode)
        raises(DerError, peercert.subject_rfc2253, LEAF1[:n])


def test_unsafe_text():
    for v in (b"", b"plain", "Ünï 中文".encode(), b"~", b"\xc2\xa0", b"\xf4\x8f\xbf\xbf"):
        assert not peercert.unsafe_text(v), v
    for v in (b"a\x00", b"\x1f", b"\x7f", b"\xc2\x80", b"\xc2\x9f",  # C0, DEL, C1
              b"\xff", b"\xc3", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",  # invalid UTF-8
              b"\xf4\x90\x80\x80", b"\xe4\xb8", b"a\x80"):
        assert peercert.unsafe_text(v), v
    assert peercert.unsafe_text("a\x85b")
    assert not peercert.unsafe_text("aäb")


def test_is_unsafe_checks_decoded_texts():
    ok = subj((O, "Org"), (CN, "dev"))
    assert not peercert.is_unsafe(ok, "cn") and not peercert.is_unsafe(ok, "dn")
    bad_o = subj((O, "O\x01rg"), (CN, "dev"))
    assert not peercert.is_unsafe(bad_o, "cn") and peercert.is_unsafe(bad_o, "dn")
    bad_cn = subj((CN, "de\nv"))
    assert peercert.is_unsafe(bad_cn, "cn") and peercert.is_unsafe(bad_cn, "dn")
    # the check runs on the text: a C1 control hidden in a BMPString, a lone surrogate,
    # invalid UTF-8 in a UTF8String
    c1 = cert(subject=name(rdn(atv(CN, b"\x00a\x00\x85", 0x1E))))
    assert peercert.is_unsafe(c1, "cn")
    lone = cert(subject=name(rdn(atv(CN, b"\xd8\x00\x00a", 0x1E))))
    assert peercert.is_unsafe(lone, "cn")
    assert peercert.is_unsafe(subj((CN, b"\xff")), "cn")
    # Latin-1 0x85 in a TeletexString is U+0085, a C1 control
    assert peercert.is_unsafe(cert(subject=name(rdn(atv(CN, b"a\x85", 0x14)))), "cn")
    assert not peercert.is_unsafe(cert(subject=name(rdn(atv(CN, b"a\xe9", 0x14)))), "cn")
    assert not peercert.is_unsafe(bad_cn, "md5") and not peercert.is_unsafe(bad_cn, "crt")


def test_first_cn_decodes():
    c = cert(subject=name(rdn(atv(CN, utf16("Ü1"), 0x1E)), rdn(atv(CN, "two"))))
    assert peercert.first_cn(c) == "Ü1".encode()


def test_rfc2253_openssl_names_and_types():
    c = cert(subject=name(rdn(atv("2.5.4.42", "Ann")), rdn(atv("0.9.2342.19200300.100.1.25", "org", 0x16)),
                          rdn(atv("1.2.840.113549.1.9.1", "a@b", 0x16)), rdn(atv("2.5.4.5", "42", 0x13)),
                          rdn(atv(CN, utf16("中"), 0x1E)), rdn(atv("2.5.4.97", utf32("xé"), 0x1C))))
    assert peercert.subject_rfc2253(c) == \
        "organizationIdentifier=x\\C3\\A9,CN=\\E4\\B8\\AD,serialNumber=42,emailAddress=a@b,DC=org,GN=Ann"


def test_rfc2253_beyond_what_openssl_loads():
    # OpenSSL refuses to load these, so no TLS peer can present them; the output still follows
    # its rules (dump what is not a string, print UTF8String byte by byte) instead of failing.
    c = cert(subject=name(rdn(tlv(0x30, b"\x06\x03\x55\x04\x03" + tlv(0x02, b"\x07")))))
    assert peercert.subject_rfc2253(c) == "CN=#020107"
    assert peercert.subject_rfc2253(subj((CN, b"a\xffb"))) == "CN=a\\FFb"
