# What `make run` needs on first run: a demo CA, a server certificate for this machine's loopback
# names and two device certificates. Idempotent: only what is missing (or was signed by a CA that
# has since been replaced) is made, so running it on every start is cheap and keeps old files.
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from . import ca, crl, files, issue
from .errors import CertsError

SERVER_HOSTS = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")
DEVICES = ("device1", "device2")
ORG = "gatemq demo"


def _pair_paths(pki, name):
    base = os.path.join(pki, name)
    return {"key": base + ".key", "key_der": base + ".key.der",
            "crt": base + ".crt", "crt_der": base + ".crt.der"}


def _current(paths, ca_cert):
    """True when all four files exist and the certificate was signed by ca_cert."""
    if not all(os.path.exists(p) for p in paths.values()):
        return False
    try:
        cert = ca.load_cert_bytes(files.read(paths["crt"], "certificate"), paths["crt"])
        cert.verify_directly_issued_by(ca_cert)
    except (CertsError, ValueError, TypeError, InvalidSignature):
        return False
    return True


def _crl_current(path, ca_cert):
    if not os.path.exists(path):
        return False
    try:
        c = x509.load_pem_x509_crl(files.read(path, "CRL"))
    except ValueError:
        return False
    return c.is_signature_valid(ca_cert.public_key())


def ensure(pki):
    """Create what is missing under pki; returns {"ca": ..., "server": {...}, "clients": ...}."""
    made = []
    if not ca.exists(pki):
        ca.init_ca(pki, cn="gatemq demo CA")
        made.append("ca")
    ca_key, ca_cert = ca.load_ca(pki)
    server = _pair_paths(pki, "server")
    if not _current(server, ca_cert):
        issue.server(pki, list(SERVER_HOSTS), list(SERVER_IPS), name="server", force=True)
        made.append("server")
    clients = {}
    for dev in DEVICES:
        clients[dev] = _pair_paths(pki, dev)
        if not _current(clients[dev], ca_cert):
            subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                                 x509.NameAttribute(NameOID.COMMON_NAME, dev)])
            issue.client(pki, subject, dev, force=True)
            made.append(dev)
    crl_path = os.path.join(pki, "crl.pem")
    if not _crl_current(crl_path, ca_cert):
        crl.make_crl(pki, crl_path)
        made.append("crl")
    p = ca.paths(pki)
    return {"dir": pki, "ca": p["crt"], "ca_der": p["der"], "ca_key": p["key"],
            "server": server, "clients": clients, "crl": crl_path, "made": made}
