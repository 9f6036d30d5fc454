# JWT and key loading checked against the `cryptography` package as the oracle: tokens it signs
# (RS256 with 2048/3072-bit keys, ES256, HS256) must verify, and every tampering, wrong key or
# algorithm swap must be refused with AuthError and nothing else.
import base64
import datetime
import json

import pytest
from hypothesis import given, settings, strategies as st
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatemq import config, jwt, pubkey
from gatemq.errors import AuthError


def verifier(read_file=None, **settings):
    # A Verifier of a jwt authenticator whose settings went through the config schema.
    text = ", ".join("%s = %s" % (k, json.dumps(v)) for k, v in settings.items())
    cfg = config.load("authentication = [{mechanism = jwt, %s}]" % text)["authentication"][0]
    return jwt.Verifier(cfg, read_file)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(alg, claims, sign, header=None):
    h = b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    return h + "." + p + "." + b64(sign((h + "." + p).encode()))


def rs_signer(key):
    return lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256())


def es_signer(key):
    def sign(m):
        r, s = decode_dss_signature(key.sign(m, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign


def hs_signer(secret):
    def sign(m):
        h = hmac.HMAC(secret, hashes.SHA256())
        h.update(m)
        return h.finalize()
    return sign


def pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def der(key):
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def cert(key, fmt):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-issuer")])
    now = datetime.datetime(2024, 1, 1)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
         .sign(key, hashes.SHA256()))
    return c.public_bytes(fmt)


@pytest.fixture(scope="module")
def keys():
    return {"rsa2048": rsa.generate_private_key(65537, 2048), "rsa3072": rsa.generate_private_key(65537, 3072),
            "ec": ec.generate_private_key(ec.SECP256R1()), "ec2": ec.generate_private_key(ec.SECP256R1()),
            "rsa_other": rsa.generate_private_key(65537, 2048)}


@pytest.mark.parametrize("name,alg", [("rsa2048", "RS256"), ("rsa3072", "RS256"), ("ec", "ES256")])
@pytest.mark.parametrize("form", ["pem", "der", "cert_pem", "cert_der"])
def test_public_key_tokens_verify_in_every_key_form(keys, name, alg, form):
    k = keys[name]
    data = {"pem": lambda: pem(k), "der": lambda: der(k),
            "cert_pem": lambda: cert(k, serialization.Encoding.PEM),
            "cert_der": lambda: cert(k, serialization.Encoding.DER)}[form]()
    files = {"/key": data}
    v = verifier(files.__getitem__, algorithm="public-key", public_key="/key")
    assert v.alg == alg
    signer = rs_signer(k) if alg == "RS256" else es_signer(k)
    claims = {"sub": "dev-1", "n": 42, "exp": 4102444800}
    assert v.verify(token(alg, claims, signer)) == claims


def test_pkcs1_rsa_public_key_pem(keys):
    k = keys["rsa2048"]
    data = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    v = verifier(algorithm="public-key", public_key=data.decode())
    assert v.verify(token("RS256", {"a": 1}, rs_signer(k))) == {"a": 1}


def test_wrong_keys_and_confusion_are_refused(keys):
    rsa_v = verifier(algorithm="public-key", public_key=pem(keys["rsa2048"]).decode())
    ec_v = verifier(algorithm="public-key", public_key=pem(keys["ec"]).decode())
    with pytest.raises(AuthError, match="signature"):
        rsa_v.verify(token("RS256", {"a": 1}, rs_signer(keys["rsa_other"])))
    with pytest.raises(AuthError, match="signature"):
        ec_v.verify(token("ES256", {"a": 1}, es_signer(keys["ec2"])))
    # HS256 keyed with the verifier's own public key, in PEM and in DER
    for secret in (pem(keys["rsa2048"]), der(keys["rsa2048"])):
        with pytest.raises(AuthError, match="alg"):
            rsa_v.verify(token("HS256", {"a": 1}, hs_signer(secret)))
    with pytest.raises(AuthError, match="alg"):
        ec_v.verify(token("ES256", {"a": 1}, es_signer(keys["ec"]), header={"alg": "none"}))
    # an RS256 token whose header claims ES256 to an EC verifier: wrong length signature
    with pytest.raises(AuthError):
        ec_v.verify(token("ES256", {"a": 1}, rs_signer(keys["rsa2048"])))


def test_hs256_against_cryptography_hmac():
    for secret in (b"s", b"x" * 64, b"y" * 200):
        v = verifier(algorithm="hmac-based", secret=base64.b64encode(secret).decode(),
                     secret_base64_encoded=True)
        assert v.verify(token("HS256", {"k": len(secret)}, hs_signer(secret))) == {"k": len(secret)}


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_tokens_only_ever_raise_autherror(data):
    secret = b"fuzz-secret"
    good = token("HS256", {"sub": "x", "exp": 4102444800}, hs_signer(secret))
    v = verifier(secret="fuzz-secret")
    raw = bytearray(good.encode())
    n = data.draw(st.integers(1, 4))
    for _ in range(n):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    mutated = bytes(raw)
    if mutated == good.encode():
        return
    try:
        claims = v.verify(mutated)
    except AuthError:
        return
    # A mutation that still verifies can only be one base64 decoders treat as the same bytes.
    assert claims == {"sub": "x", "exp": 4102444800}


def test_ecdsa_signature_values_out_of_range_are_refused(keys):
    k = pubkey.load(pem(keys["ec"]))
    assert not k.verify_sha256(b"m", bytes(64))
    assert not k.verify_sha256(b"m", pubkey.N.to_bytes(32, "big") + (1).to_bytes(32, "big"))
    assert not k.verify_sha256(b"m", b"\x01" * 63)
