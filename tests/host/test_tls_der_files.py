# One config for both ports: an ssl listener whose certificate, key and CA files are DER (what a
# board's config names, see firmware/gatemq.conf) serves mutual TLS on the CPython port too,
# whatever form the DER key takes (PKCS#8, SEC1 for EC, PKCS#1 for RSA).
import datetime
import ipaddress
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import require_gatemq
from tlsutil import Events, now, server_pki, ssl_config, tls_client

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    return server_pki(tmp_path_factory.mktemp("pki"), device_cn="der-device")


def der_files(pki, folder, key_obj, key_format, cert):
    crt, key, ca = (os.path.join(folder, n) for n in ("server.crt.der", "server.key.der", "ca.crt.der"))
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(DER))
    with open(key, "wb") as f:
        f.write(key_obj.private_bytes(DER, key_format, serialization.NoEncryption()))
    with open(ca, "wb") as f:
        f.write(pki.root.cert.public_bytes(DER))
    return crt, key, ca


def rsa_server(pki):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(pki.root.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(minutes=5))
            .not_valid_after(now() + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(pki.root.key_obj, hashes.SHA256()))
    return key, cert


@pytest.mark.parametrize("form", ["ec-pkcs8", "ec-sec1", "rsa-pkcs1"])
def test_der_certificate_key_and_ca_serve_mutual_tls(make_broker, pki, tmp_path, form):
    if form == "rsa-pkcs1":
        key_obj, cert = rsa_server(pki)
        key_format = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        key_obj, cert = pki.server.key_obj, pki.server.cert
        key_format = (serialization.PrivateFormat.PKCS8 if form == "ec-pkcs8"
                      else serialization.PrivateFormat.TraditionalOpenSSL)
    crt, key, ca = der_files(pki, str(tmp_path), key_obj, key_format, cert)
    text = ssl_config(pki.server, pki.root, extra='listeners.tcp.default.bind = "127.0.0.1:0"\n'
                                                  'mqtt.peer_cert_as_username = cn\n')
    text = (text.replace(pki.server.crt, crt).replace(pki.server.key, key).replace(pki.root.crt, ca))
    b = make_broker(text)
    events = Events(b)
    c = tls_client(b, pki.root, pki.dev, client_id="d1")
    try:
        ev = events.connected(match=lambda cid: cid == "d1")
        assert ev["username"] == "der-device"
    finally:
        c.disconnect()
        events.close()
