# The certificate checks of an ssl listener against a sloppy CA and a broken CRL file, on both
# runtimes (GATEMQ_TEST_RUNTIME=micropython runs them against the MicroPython port, whose verify
# callback makes these checks itself): a CRL whose issuer name is encoded unlike the
# certificates' issuer, a stale CRL, a crlfile that is broken at start or breaks while the broker
# runs, anyExtendedKeyUsage, and the crt/pem/md5 values of a client that sends a chain.
import base64
import datetime
import hashlib
import os
import socket
import ssl
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import rawmqtt
from conftest import require_gatemq
from tlsutil import PKI, Events, client_context, now, ssl_config, ssl_port, tls_client

ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
PRINTABLE = x509.name._ASN1Type.PrintableString


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.root = p.ca("root")
    p.int1 = p.ca("int1", parent=p.root)
    p.server = p.leaf(p.root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
    p.good = p.leaf(p.root, "good", [(NameOID.COMMON_NAME, "good")])
    p.revoked = p.leaf(p.root, "revoked", [(NameOID.COMMON_NAME, "revoked")])
    p.chained = p.leaf(p.int1, "chained", [(NameOID.COMMON_NAME, "chained")])
    p.any_eku = p.leaf(p.root, "anyeku", [(NameOID.COMMON_NAME, "anyeku")], eku=(ANY_EKU,))
    p.both_eku = p.leaf(p.root, "botheku", [(NameOID.COMMON_NAME, "botheku")],
                        eku=(ANY_EKU, ExtendedKeyUsageOID.CLIENT_AUTH))
    return p


def write_crl(pki, path, revoked=(), issuer=None, last=None, next_=None, pem=True):
    # A CRL signed by the root, with any issuer name and dates.
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer or pki.root.cert.subject)
         .last_update(last or now() - datetime.timedelta(minutes=1))
         .next_update(next_ or now() + datetime.timedelta(days=7)))
    for r in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(r.serial)
                                      .revocation_date(now() - datetime.timedelta(seconds=30)).build())
    c = b.sign(pki.root.key_obj, hashes.SHA256())
    with open(path + ".tmp", "wb") as f:
        f.write(c.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER))
    os.replace(path + ".tmp", path)
    return path


def crl_broker(make_broker, pki, path, extra=""):
    return make_broker(ssl_config(pki.server, pki.root, 'enable_crl_check = true\n  crlfile = "%s"' % path,
                                  extra="mqtt.peer_cert_as_username = cn\n" + extra))


def refused(b, pki, dev, reason):
    # The handshake (TLS 1.2) or the first read after it (TLS 1.3) fails, no MQTT byte comes back,
    # and the broker logs the reason with the client's port.
    mark = b.mark()
    raw = socket.create_connection(("127.0.0.1", ssl_port(b)), timeout=5)
    port = raw.getsockname()[1]
    try:
        s = client_context(pki.root.crt, dev.chain, dev.key).wrap_socket(raw, server_hostname="127.0.0.1")
    except (ssl.SSLError, OSError):
        data = b""
    else:
        try:
            s.sendall(rawmqtt.connect("x", version=5))
            data = s.recv(100)
        except (ssl.SSLError, OSError):
            data = b""
        s.close()
    raw.close()
    assert data == b"", "the broker answered a refused client: %r" % data
    line = b.wait_log_all(["rejected", "127.0.0.1:%d" % port], timeout=5, start=mark)
    assert "rejected: %s" % reason in line, line
    return line


def connects(b, pki, dev, ev):
    c = tls_client(b, pki.root, dev, client_id="")
    e = ev.connected()
    c.disconnect()
    return e


def test_crl_with_the_issuer_in_another_string_type_and_case_still_revokes(make_broker, pki, tmp_path):
    # The CA's certificates say O=gatemq tests, CN=root in UTF8String; this CRL says
    # O=GATEMQ  TESTS, CN=Root in PrintableString. OpenSSL and EMQX take that as the same issuer.
    issuer = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GATEMQ  TESTS", PRINTABLE),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Root", PRINTABLE)])
    path = write_crl(pki, str(tmp_path / "crl.pem"), [pki.revoked], issuer=issuer)
    b = crl_broker(make_broker, pki, path)
    ev = Events(b)
    refused(b, pki, pki.revoked, "revoked")
    assert connects(b, pki, pki.good, ev)["username"] == "good"
    ev.close()


def test_stale_crl_refuses_every_client_of_that_ca(make_broker, pki, tmp_path):
    # Past nextUpdate, as OpenSSL (X509_V_ERR_CRL_HAS_EXPIRED) and Mosquitto do.
    path = write_crl(pki, str(tmp_path / "crl.der"), [], pem=False,
                     last=now() - datetime.timedelta(days=10), next_=now() - datetime.timedelta(days=1))
    b = crl_broker(make_broker, pki, path)
    line = refused(b, pki, pki.good, "crl_expired")
    assert "crlfile" in line
    # Clients of a CA the CRL is not about are not affected.
    ev = Events(b)
    assert connects(b, pki, pki.chained, ev)["username"] == "chained"
    # A fresh CRL written while the broker runs lets them in again.
    write_crl(pki, path, [], pem=False)
    assert connects(b, pki, pki.good, ev)["username"] == "good"
    ev.close()


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"])
def test_broken_crlfile_at_start_stops_the_broker(make_broker, pki, tmp_path, content):
    # Starting without the revocations the operator asked for would let revoked devices in.
    path = str(tmp_path / "crl.pem")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(RuntimeError) as e:
        crl_broker(make_broker, pki, path)
    assert "exited" in str(e.value) and "crlfile" in str(e.value) and "crl.pem" in str(e.value)


def test_missing_crlfile_at_start_stops_the_broker(make_broker, pki, tmp_path):
    with pytest.raises(RuntimeError) as e:
        crl_broker(make_broker, pki, str(tmp_path / "nowhere.pem"))
    assert "exited" in str(e.value) and "nowhere.pem" in str(e.value)


def test_crlfile_broken_while_running_keeps_the_last_good_crl(make_broker, pki, tmp_path):
    path = write_crl(pki, str(tmp_path / "crl.pem"), [pki.revoked])
    b = crl_broker(make_broker, pki, path)
    ev = Events(b)
    refused(b, pki, pki.revoked, "revoked")
    for content in (b"-----BEGIN X509 CRL-----\nMIIB\n", b"", b"\x30\x82\x01\x00\x02"):
        mark = b.mark()
        with open(path, "wb") as f:
            f.write(content)
        os.utime(path, (1, 1 + len(content)))  # a new stamp even within the same second
        refused(b, pki, pki.revoked, "revoked")
        b.wait_log_all(["crl.pem", "keeping the previous"], start=mark)
        assert connects(b, pki, pki.good, ev)["username"] == "good"
    mark = b.mark()
    os.unlink(path)
    refused(b, pki, pki.revoked, "revoked")
    b.wait_log_all(["cannot read crlfile", "crl.pem"], start=mark)
    assert b.alive()
    ev.close()


def test_any_extended_key_usage_does_not_stand_for_client_auth(make_broker, pki):
    # EMQX's verify_peer_ext_key_usage wants the listed usage itself in the extension.
    b = make_broker(ssl_config(pki.server, pki.root, 'verify_peer_ext_key_usage = "clientAuth"',
                               extra="mqtt.peer_cert_as_username = cn"))
    refused(b, pki, pki.any_eku, "ext_key_usage")
    ev = Events(b)
    assert connects(b, pki, pki.both_eku, ev)["username"] == "botheku"
    ev.close()


def test_crt_pem_md5_of_a_client_that_sends_its_chain_are_the_leaf_only(make_broker, pki):
    b = make_broker(ssl_config(pki.server, pki.root, "",
                               extra="mqtt.peer_cert_as_username = pem\nmqtt.peer_cert_as_clientid = md5"))
    assert open(pki.chained.chain, "rb").read().count(b"BEGIN CERTIFICATE") == 2
    ev = Events(b)
    e = connects(b, pki, pki.chained, ev)
    assert e["username"] == base64.b64encode(pki.chained.der).decode()
    assert e["clientid"] == hashlib.md5(pki.chained.der).hexdigest()
    ev.close()


# ---- certificates whose subject is not DER, signed by the trusted CA ---------------------------

def _tlv(tag, body, long_len=False):
    n = len(body)
    if long_len or n >= 0x80:  # long_len: a non-minimal long form, which DER forbids
        ln = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
        if long_len:
            ln = b"\x00" + ln
        return bytes((tag, 0x80 | len(ln))) + ln + body
    return bytes((tag, n)) + body


def _utc(t):
    return _tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())


def signed_leaf(pki, label, subject_der):
    # A certificate with this exact subject encoding, signed by the root: what a sloppy CA that
    # signs whatever bytes it is given would hand out.
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    alg = _tlv(0x30, bytes.fromhex("06082a8648ce3d040302"))
    tbs = _tlv(0x30, _tlv(0xA0, b"\x02\x01\x02") + b"\x02\x02\x10\x01" + alg
               + pki.root.cert.subject.public_bytes()
               + _tlv(0x30, _utc(now() - datetime.timedelta(hours=1)) + _utc(now() + datetime.timedelta(days=1)))
               + subject_der
               + key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    sig = pki.root.key_obj.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + sig))
    base = os.path.join(pki.folder, label)
    with open(base + ".crt", "wb") as f:  # `cryptography` refuses to load it, so no tlsutil.Issued
        f.write(ssl.DER_cert_to_PEM_cert(der).encode())
    with open(base + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return types.SimpleNamespace(crt=base + ".crt", chain=base + ".crt", key=base + ".key", der=der)


def test_a_subject_that_is_not_der_is_refused_with_a_reason(make_broker, pki):
    # OpenSSL reads BER lengths and checks the signature over the bytes as sent, so this
    # certificate passes its handshake. The mapping must not make an identity of it, and the
    # log must say why rather than "internal error".
    cn = _tlv(0x30, _tlv(0x31, _tlv(0x30, bytes.fromhex("0603550403") + _tlv(0x0C, b"dev-ber", long_len=True))))
    dev = signed_leaf(pki, "ber", cn)
    b = make_broker(ssl_config(pki.server, pki.root, "", extra="mqtt.peer_cert_as_username = cn"))
    mark = b.mark()
    raw = socket.create_connection(("127.0.0.1", ssl_port(b)), timeout=5)
    data = b""
    try:
        s = client_context(pki.root.crt, dev.chain, dev.key).wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(rawmqtt.connect("x", version=5))
        data = s.recv(100)
    except (ssl.SSLError, OSError):
        pass
    raw.close()
    assert data == b""
    if b.runtime == "micropython":  # its verify callback parses every leaf: refused in the handshake
        line = b.wait_log_all(["rejected: bad_certificate", "non-minimal length"], start=mark)
    else:
        line = b.wait_log_all(["before CONNACK", "not valid DER", "non-minimal length"], start=mark)
    assert not [ln for ln in b.log_lines[mark:] if "internal error" in ln], line
