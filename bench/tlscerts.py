"""Throwaway PKI for the mutual-TLS scenarios: a CA, a server certificate for
127.0.0.1/localhost and a few client certificates, all EC P-256 like the
gatemq-certs defaults.  The same files feed every broker in the run."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gatemq bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _save(folder, stem, key, cert):
    _write(os.path.join(folder, stem + ".crt.pem"), cert.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(folder, stem + ".crt.der"), cert.public_bytes(serialization.Encoding.DER))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write(os.path.join(folder, stem + ".key.pem"), pem)
    _write(os.path.join(folder, stem + ".key.der"), der)


def _cert(subject, issuer, key, signer, ca, sans=(), eku=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(signer, hashes.SHA256())


def make(folder, clients=8):
    """Write ca.*, server.* and client0..N-1.* (PEM and DER) into folder."""
    os.makedirs(folder, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("gatemq bench CA")
    ca = _cert(ca_name, ca_name, ca_key, ca_key, True)
    _save(folder, "ca", ca_key, ca)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    _save(folder, "server", key, _cert(_name("localhost"), ca_name, key, ca_key, False, sans,
                                       ExtendedKeyUsageOID.SERVER_AUTH))
    for i in range(clients):
        key = ec.generate_private_key(ec.SECP256R1())
        _save(folder, "client%d" % i, key, _cert(_name("device-%04d" % i), ca_name, key, ca_key, False,
                                                 (), ExtendedKeyUsageOID.CLIENT_AUTH))
    return folder
