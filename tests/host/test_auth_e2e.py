# Issue 5, end to end: real paho clients over mutual TLS against the broker process, with the
# certificate CN as username, then password_based and JWT in the chain, and the acl.conf
# `${cert_common_name}` rule, on both ports. Certificates and tokens are made with `cryptography`.
import base64
import datetime
import ipaddress
import json
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from clients import Client, V311, V5
from gatemq import auth, pwhash


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _issue(ca_key, ca_name, cn, path, server=False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=1)))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    (path / (cn + ".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(path / (cn + ".key"), key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(_name("test-ca")).issuer_name(_name("test-ca"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _issue(ca_key, _name("test-ca"), "server", d, server=True)
    for cn in ("devA", "devB", "devJ"):
        _issue(ca_key, _name("test-ca"), cn, d)
    jwt_key = ec.generate_private_key(ec.SECP256R1())
    (d / "jwt.pem").write_bytes(jwt_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    algo = {"name": "sha256", "salt_position": "suffix"}
    users = [auth.format_user(u, pwhash.hash_password(algo, "s-" + u, pw), "s-" + u, False)
             for u, pw in (("devA", "pw-A"), ("devB", "pw-B"))]
    (d / "users").write_text("\n".join(users) + "\n")
    (d / "acl.conf").write_text(open("docs/acl.conf.example").read())
    return d, jwt_key


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def es256(key, claims, header=None):
    h = b64(json.dumps(header or {"alg": "ES256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign((h + "." + p).encode(), ec.ECDSA(hashes.SHA256())))
    return h + "." + p + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def hs256(secret, claims, alg="HS256"):
    h = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    m = hmac.HMAC(secret, hashes.SHA256())
    m.update((h + "." + p).encode())
    return h + "." + p + "." + b64(m.finalize())


@pytest.fixture(params=["cpython", "micropython"])
def mtls(request, pki, make_broker):
    d, jwt_key = pki
    conf = """
listeners.ssl.mtls.bind = "127.0.0.1:0"
listeners.ssl.mtls {
  ssl_options {
    certfile = "%(d)s/server.pem"
    keyfile = "%(d)s/server.key"
    cacertfile = "%(d)s/ca.pem"
    verify = verify_peer
    fail_if_no_peer_cert = true
  }
}
mqtt.peer_cert_as_username = cn
authentication = [
  { mechanism = password_based, backend = built_in_database, user_file = "%(d)s/users",
    password_hash_algorithm { name = sha256, salt_position = suffix } },
  { mechanism = jwt, algorithm = "public-key", public_key = "%(d)s/jwt.pem",
    verify_claims { sub = "${clientid}" } }
]
authorization { no_match = deny, deny_action = ignore, sources = [ { type = file, path = "%(d)s/acl.conf" } ] }
""" % {"d": d}
    b = make_broker(conf, runtime=request.param)
    port = b.ports[("ssl", "mtls")]
    clients = []

    def connect(cn, client_id, password=None, version=V5, expect_ok=True):
        c = Client(port, client_id=client_id, version=version, username="ignored-by-cert-mapping",
                   password=password)
        c.c.tls_set(ca_certs=str(d / "ca.pem"), certfile=str(d / (cn + ".pem")), keyfile=str(d / (cn + ".key")))
        clients.append(c)
        c.connect(expect_ok=expect_ok)
        return c

    yield b, connect, jwt_key, d
    for c in clients:
        c.close()


def test_cert_username_needs_the_right_password(mtls):
    b, connect, _, _ = mtls
    assert connect("devA", "a-1", "pw-A").rc.value == 0
    bad = connect("devA", "a-2", "pw-B", expect_ok=False)
    assert bad.rc.value == 0x86
    bad3 = connect("devA", "a-3", "nope", version=V311, expect_ok=False)
    assert bad3.rc.is_failure and bad3.rc.value == 0x86  # paho maps 3.1.1 code 4 to 0x86
    b.wait_log("wrong password for user 'devA'")
    assert not any("pw-B" in line or "nope" in line for line in b.log_lines)


def test_jwt_for_one_client_id_is_refused_for_another(mtls):
    b, connect, key, _ = mtls
    tok = es256(key, {"sub": "j-1", "exp": int(time.time()) + 300})
    assert connect("devJ", "j-1", tok).rc.value == 0
    assert connect("devJ", "j-2", tok, expect_ok=False).rc.value == 0x86
    b.wait_log("does not match this client")
    assert not any(tok in line for line in b.log_lines)


def test_every_bad_token_is_refused(mtls):
    b, connect, key, d = mtls
    now = int(time.time())
    other = ec.generate_private_key(ec.SECP256R1())
    good = es256(key, {"sub": "j", "exp": now + 300})
    h, p, s = good.split(".")
    cases = [
        ("alg none", b64(b'{"alg":"none"}') + "." + p + ".", "alg"),
        ("confusion", hs256((d / "jwt.pem").read_bytes(), {"sub": "j", "exp": now + 300}), "alg"),
        ("wrong key", es256(other, {"sub": "j", "exp": now + 300}), "signature"),
        ("expired", es256(key, {"sub": "j", "exp": now - 100}), "expired"),
        ("base64", h + "." + p + "." + s[:-2] + "*!", "base64url"),
        ("json", b64(b"{oops") + "." + p + "." + s, "JSON"),
        ("der signature", h + "." + p + "." + b64(b"\x30\x06\x02\x01\x01\x02\x01\x01"), "64 bytes"),
    ]
    for what, tok, reason in cases:
        start = len(b.log_lines)
        c = connect("devJ", "j", tok, expect_ok=False)
        assert c.rc.value == 0x86, what
        b.wait_log(reason, start=start)  # the refusal's own log line names the reason
        assert not any(tok in line for line in b.log_lines), what


def test_device_isolation_by_certificate_cn(mtls):
    b, connect, _, _ = mtls
    a = connect("devA", "a", "pw-A")
    bb = connect("devB", "b", "pw-B")
    assert bb.subscribe("devices/devB/#", qos=1) == [1]
    assert a.subscribe("devices/devA/#", qos=1) == [1]
    # A may not read B's topics: 0x87 in MQTT 5
    assert a.subscribe("devices/devB/#", qos=1) == [0x87]
    assert a.subscribe("devices/+/temp", qos=0) == [0x87]
    # nor write them: the broker denies the PUBLISH and B receives nothing
    info = a.publish("devices/devB/cmd", b"evil", qos=1, wait=False)
    info.wait_for_publish(5)
    b.wait_log("publish of 'devices/devB/cmd' by client 'a' denied")
    bb.expect_none(0.5)
    # its own topics work
    a.publish("devices/devA/temp", b"21", qos=1)
    assert a.expect().payload == b"21"
    bb.publish("devices/devB/temp", b"22", qos=1)
    assert bb.expect().payload == b"22"


def test_denied_subscribe_codes_in_both_versions(mtls):
    b, connect, _, _ = mtls
    v5 = connect("devA", "a5", "pw-A")
    v3 = connect("devA", "a3", "pw-A", version=V311)
    assert v5.subscribe("test/nosubscribe") == [0x87]
    assert v3.subscribe("test/nosubscribe") == [0x80]
    assert v3.subscribe("devices/devA/x") == [0]
