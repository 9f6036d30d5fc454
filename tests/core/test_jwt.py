# JWT verification on both Pythons: RFC 7515 HS256 vector, RS256/ES256 tokens made by the
# `cryptography` package (kept here as fixed vectors), and every refusal case of issue 5.
import json
import binascii

from gatemq import config, jwt
from gatemq import pwhash
from gatemq import pubkey
from gatemq.errors import AuthError, ConfigError
from _check import raises

RSA_PUB = '-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCrFb5zLmbCMtY5l8r1GIsQK8cx\n8eBkVKOsXz9uytR6daQJwH0o25QmKQWYL+hBWdnkTQl4LBU0ccQnbd1TN6Gt4jro\nxrJSaZiFFTqEYVVbfx+hIFw9aWAkUNEoo7KlxxZHXxtw6YOG/SbUrcQa5Z5Rimjm\niTASWgZjZs4JF3p+bQIDAQAB\n-----END PUBLIC KEY-----\n'
RS256_TOKEN = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYxIiwiZXhwIjoyMDAwMDAwMDAwLCJhY2wiOnsicHViIjpbImRldmljZXMvZGV2MS8jIl19fQ.Clih3W_d62__sdLS0Zjm3xG5EBzfpQmcsXl1Pko4LiiHphqecI0F146H2ZtiVpe0qFZJZgv49U59cwej8oT4OK9Jm00JMQiXmzh0-A5LA28oUEMmJqmsiJzYu3R5pNCvZnGm0mUzgmdVCqVehTg4SUNM4azG5rfHQop7v4WIB_c'
EC_PUB = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6oTr5COHOGsHwfOEnC6IdsyGmiyr\n/UGgHr/mLFStA0RVGGZE4qz6BLVosh2qh4YfbXXVRzoK2yj9P9AQsLwgaw==\n-----END PUBLIC KEY-----\n'
ES256_TOKEN = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYxIiwiZXhwIjoyMDAwMDAwMDAwLCJhY2wiOnsicHViIjpbImRldmljZXMvZGV2MS8jIl19fQ.uKcpuIBls_1HV3RR35VlRcw-nGKUcUSYayO9HDGeMjpFOKNgFU1v5Ogb1SSWlLbiwqpCzcESXEDhhN5uksu2QQ'

# RFC 7515 appendix A.1: the key is given base64url-encoded; here in standard base64 for
# secret_base64_encoded, as EMQX decodes it.
RFC_KEY_B64 = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ+EstJQLr/T+1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="
RFC_TOKEN = ("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
             ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
             ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")


def b64(obj):
    if not isinstance(obj, bytes):
        obj = json.dumps(obj).encode()
    return jwt.b64url_encode(obj).decode()


def verifier(settings, read_file=None):
    # A Verifier of a jwt authenticator whose settings (HOCON text) went through the config schema.
    cfg = config.load("authentication = [{mechanism = jwt, %s}]" % settings)["authentication"][0]
    return jwt.Verifier(cfg, read_file)


def public_key(pem):
    return "algorithm = public-key, public_key = " + json.dumps(pem)


def load_error(text):
    return str(raises(ConfigError, config.load, text, "g.conf"))


def hs256(claims, secret, header=None):
    h = b64(header or {"alg": "HS256", "typ": "JWT"})
    p = b64(claims)
    sig = pwhash.hmac_sha256(secret, (h + "." + p).encode())
    return h + "." + p + "." + b64(sig)


def test_rfc7515_hs256_vector_with_base64_secret():
    v = verifier('algorithm = hmac-based, secret = "%s", secret_base64_encoded = true' % RFC_KEY_B64)
    claims = v.verify(RFC_TOKEN.encode())
    assert claims["iss"] == "joe"
    assert claims["http://example.com/is_root"] is True
    # the same secret taken literally is another key
    v2 = verifier('algorithm = hmac-based, secret = "%s"' % RFC_KEY_B64)
    assert "signature" in str(raises(AuthError, v2.verify, RFC_TOKEN))


def test_hs256_roundtrip_and_wrong_secret():
    tok = hs256({"sub": "a"}, b"s3cret")
    assert verifier('secret = "s3cret"').verify(tok) == {"sub": "a"}
    assert "signature" in str(raises(AuthError, verifier('secret = "other"').verify, tok))


def test_rs256_vector_verifies_and_tampering_fails():
    v = verifier(public_key(RSA_PUB))
    claims = v.verify(RS256_TOKEN)
    assert claims["sub"] == "dev1" and claims["acl"] == {"pub": ["devices/dev1/#"]}
    h, p, s = RS256_TOKEN.split(".")
    forged = h + "." + b64({"sub": "dev2", "exp": 2000000000}) + "." + s
    assert "signature" in str(raises(AuthError, v.verify, forged))


def test_es256_vector_verifies_and_wrong_key_fails():
    v = verifier(public_key(EC_PUB))
    assert v.verify(ES256_TOKEN)["sub"] == "dev1"
    # the RS256 token's signature is not accepted by an EC key: its alg is wrong
    assert "alg" in str(raises(AuthError, v.verify, RS256_TOKEN))


def test_alg_none_is_refused():
    v = verifier('secret = "k"')
    tok = b64({"alg": "none"}) + "." + b64({"sub": "a"}) + "."
    assert "alg" in str(raises(AuthError, v.verify, tok))
    v = verifier(public_key(RSA_PUB))
    assert "alg" in str(raises(AuthError, v.verify, tok))


def test_algorithm_confusion_hs256_with_public_key_as_secret_is_refused():
    # The classic attack: sign HS256 with the server's public key PEM as the HMAC secret.
    v = verifier(public_key(RSA_PUB))
    tok = hs256({"sub": "dev1", "exp": 2000000000}, RSA_PUB.encode())
    assert "alg" in str(raises(AuthError, v.verify, tok))


def test_broken_encodings_are_refused():
    v = verifier('secret = "k"')
    good = hs256({"sub": "a"}, b"k")
    h, p, s = good.split(".")
    assert "3" in str(raises(AuthError, v.verify, "abc"))
    assert "base64url" in str(raises(AuthError, v.verify, h + "." + p + "." + s + "*"))
    assert "base64url" in str(raises(AuthError, v.verify, h + "=." + p + "." + s))
    assert "base64url" in str(raises(AuthError, v.verify, "a" + h + "." + p + "." + s))
    bad_json = b64(b"{not json") + "." + p + "." + s
    assert "JSON" in str(raises(AuthError, v.verify, bad_json))
    arr = b64([1, 2]) + "." + p + "." + s
    assert "object" in str(raises(AuthError, v.verify, arr))
    assert "UTF-8" in str(raises(AuthError, v.verify, b"\xff\xfe"))
    # a correctly signed token whose payload is not JSON
    h2 = b64({"alg": "HS256"})
    p2 = b64(b"[[[")
    tok = h2 + "." + p2 + "." + b64(pwhash.hmac_sha256(b"k", (h2 + "." + p2).encode()))
    assert "JSON" in str(raises(AuthError, v.verify, tok))


def test_es256_der_signature_is_refused():
    # JWS wants raw r||s (64 bytes); a DER ECDSA-Sig-Value is a different encoding.
    h, p, s = ES256_TOKEN.split(".")
    raw = jwt.b64url_decode(s)
    r, ss = raw[:32], raw[32:]
    def der_int(b):
        b = b.lstrip(b"\x00")
        if b[0] & 0x80:
            b = b"\x00" + b
        return b"\x02" + bytes([len(b)]) + b
    body = der_int(r) + der_int(ss)
    der = b"\x30" + bytes([len(body)]) + body
    v = verifier(public_key(EC_PUB))
    assert "64 bytes" in str(raises(AuthError, v.verify, h + "." + p + "." + b64(der)))


def test_exp_nbf_with_leeway():
    assert jwt.check_times({"exp": 1000}, 999) == 1000
    assert "expired" in str(raises(AuthError, jwt.check_times, {"exp": 1000}, 1000))
    assert jwt.check_times({"exp": 1000}, 1004, 5) == 1000
    assert "expired" in str(raises(AuthError, jwt.check_times, {"exp": 1000}, 1005, 5))
    assert "before" in str(raises(AuthError, jwt.check_times, {"nbf": 1000}, 990))
    assert jwt.check_times({"nbf": 1000}, 990, 10) is None
    assert "number" in str(raises(AuthError, jwt.check_times, {"exp": "soon"}, 0))
    assert jwt.check_times({}, 5) is None


def test_key_loading_from_file_and_mismatch():
    files = {"/k.pem": RSA_PUB.encode(), "/e.pem": EC_PUB.encode(), "/junk": b"not a key"}
    # the key's kind picks the algorithm
    assert verifier(public_key("/k.pem"), files.__getitem__).alg == "RS256"
    assert verifier(public_key("/e.pem"), files.__getitem__).alg == "ES256"
    # a port may read the PEM as text
    assert verifier(public_key("/k"), lambda p: RSA_PUB).alg == "RS256"
    # what a key file holds is not the schema's to check: the Verifier refuses it
    e = str(raises(ConfigError, verifier, public_key("/junk"), files.__getitem__))
    assert e.startswith("jwt.public_key: "), e
    assert "cannot read" in str(raises(ConfigError, verifier, public_key("/x"), files.__getitem__))
    e = str(raises(ConfigError, verifier, 'secret = "abcde", secret_base64_encoded = true'))
    assert "not base64" in e, e


def test_missing_secret_or_key_and_unknown_algorithm_are_config_errors_at_their_key():
    e = load_error("authentication = [{mechanism = jwt, algorithm = hmac-based}]")
    assert e.startswith("g.conf:1:49: authentication.1.secret: expected a value when algorithm = hmac-based"), e
    e = load_error("authentication = [{mechanism = jwt, algorithm = RS256}]")
    assert e.startswith("g.conf:1:49: authentication.1.algorithm: expected one of hmac-based|public-key"), e


def test_der_key_and_bad_point():
    label, der = pubkey.pem_to_der(EC_PUB)
    assert label == "PUBLIC KEY"
    k = pubkey.load(der)
    assert k.kind == "EC" and pubkey.on_curve(k.x, k.y)
    bad = bytearray(der)
    bad[-1] ^= 1  # no longer on the curve
    assert "curve" in str(raises(AuthError, pubkey.load, bytes(bad)))
