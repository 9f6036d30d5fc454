# Certificates for the TLS tests, made with `cryptography` independently of gatemq-certs: a root CA,
# intermediates, leaves with any subject (attribute types and string tags of our choosing), any
# extended key usage and validity, CRLs, encrypted keys. Files are written under one folder.
#
#   pki = PKI(tmp_path)
#   root = pki.ca("root")
#   server = pki.leaf(root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
#   dev = pki.leaf(root, "dev1", [(NameOID.COMMON_NAME, "dev1")])
#   dev.crt, dev.key, dev.chain (leaf + intermediates), dev.der, root.crt
#   pki.crl(root, [dev], path)
#
# Brokers and clients over TLS: ssl_config(server, root, ...), tls_client(broker, root, dev, ...),
# raw_tls(broker, root, dev), Events(broker).connected() -> the $SYS connected event's payload.
#
# And the expected mapped values, computed here from the DER (not with gatemq.peercert):
#   expected_cn(cert), expected_dn(cert), pem_value(der), md5_value(der)
import base64
import datetime
import hashlib
import json
import os
import queue
import ssl
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clients import Client, V5
from rawmqtt import RawClient

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def name(attrs):
    """attrs: [(oid, value)] or [(oid, value, _ASN1Type)] in certificate order, one RDN each;
    an item that is a list is one multi-valued RDN."""
    rdns = []
    for a in attrs:
        items = a if isinstance(a, list) else [a]
        rdns.append(x509.RelativeDistinguishedName(
            [x509.NameAttribute(i[0], i[1], *(i[2:])) for i in items]))
    return x509.Name(rdns)


class Issued:
    def __init__(self, key, cert, parent, folder, label):
        self.key_obj = key
        self.cert = cert
        self.parent = parent
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        base = os.path.join(folder, label)
        self.crt = base + ".crt"
        self.key = base + ".key"
        self.chain = base + ".chain.crt"
        with open(self.crt, "wb") as f:
            f.write(self.pem)
        with open(self.key, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(self.key, 0o600)
        # The leaf followed by every intermediate up to (not including) the root: what a device sends.
        with open(self.chain, "wb") as f:
            f.write(self.pem)
            p = parent
            while p is not None and p.parent is not None:
                f.write(p.pem)
                p = p.parent

    @property
    def serial(self):
        return self.cert.serial_number

    def encrypted_key(self, password, path):
        with open(path, "wb") as f:
            f.write(self.key_obj.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password.encode())))
        return path


def server_pki(folder, device_cn=None):
    """A PKI with .root (a CA) and .server (its localhost/127.0.0.1 server certificate), to which a
    test's fixture adds its own CAs and devices. With device_cn, also .dev: a client certificate
    under root with that CN, the one device most TLS tests need."""
    p = PKI(folder)
    p.root = p.ca("root")
    p.server = p.leaf(p.root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
    if device_cn is not None:
        p.dev = p.leaf(p.root, "dev", [(NameOID.COMMON_NAME, device_cn)])
    return p


class PKI:
    def __init__(self, folder):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)

    def ca(self, label, parent=None, cn=None, path_len=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name([(NameOID.ORGANIZATION_NAME, "gatemq tests"), (NameOID.COMMON_NAME, cn or label)])
        issuer = parent.cert.subject if parent else subject
        signer = parent.key_obj if parent else key
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now() - datetime.timedelta(days=1))
             .not_valid_after(now() + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if parent:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key_obj.public_key()),
                                critical=False)
        return Issued(key, b.sign(signer, hashes.SHA256()), parent, self.folder, label)

    def leaf(self, ca, label, subject, eku=(CLIENT_AUTH,), server=False, not_before=None, not_after=None,
             serial=None):
        """subject: [(oid, value[, type])] (see name()) or an x509.Name. eku=None leaves the extension out."""
        key = ec.generate_private_key(ec.SECP256R1())
        if server:
            eku = (SERVER_AUTH,)
        b = (x509.CertificateBuilder()
             .subject_name(subject if isinstance(subject, x509.Name) else name(subject))
             .issuer_name(ca.cert.subject).public_key(key.public_key())
             .serial_number(serial or x509.random_serial_number())
             .not_valid_before(not_before or now() - datetime.timedelta(minutes=5))
             .not_valid_after(not_after or now() + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key_obj.public_key()),
                            critical=False))
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if server:
            import ipaddress
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return Issued(key, b.sign(ca.key_obj, hashes.SHA256()), ca, self.folder, label)

    def crl(self, ca, revoked, path, der=False):
        """Writes a CRL by ca revoking the certificates (Issued) or serials in revoked."""
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
             .last_update(now() - datetime.timedelta(minutes=1))
             .next_update(now() + datetime.timedelta(days=7)))
        for r in revoked:
            serial = r.serial if isinstance(r, Issued) else r
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(now() - datetime.timedelta(seconds=30)).build())
        c = b.sign(ca.key_obj, hashes.SHA256())
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM))
        os.replace(tmp, path)
        return path


def client_context(ca_file, crt=None, key=None, password=None, minimum=None, maximum=None, ciphers=None):
    """An ssl.SSLContext for a test client: trusts ca_file, presents crt/key if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca_file)
    if crt:
        ctx.load_cert_chain(crt, key, password)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


# ---- expected mapped values, from the spec's rules, computed from cryptography's view ----------

DN_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "TITLE", "2.5.4.42": "GIVENNAME",
    "2.5.4.43": "INITIALS", "2.5.4.44": "GENERATIONQUALIFIER", "2.5.4.65": "PSEUDONYM",
    "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "EMAILADDRESS",
    "0.9.2342.19200300.100.1.1": "UID",
}


def _escape(text):
    raw = text.encode("utf-8")
    out = []
    for i, b in enumerate(raw):
        ch = chr(b)
        if (i == 0 and ch in " #") or (i == len(raw) - 1 and ch == " "):
            out.append("\\" + ch)
        elif ch in '"+,;<>\\':
            out.append("\\" + ch)
        elif b < 0x20 or b >= 0x7E:
            out.append("\\%02X" % b)
        else:
            out.append(ch)
    return "".join(out)


def expected_dn(cert):
    """The spec's dn string for string-valued subjects (the tests use no other kind)."""
    rdns = []
    for rdn in reversed(list(cert.subject.rdns)):
        rdns.append("+".join("%s=%s" % (DN_NAMES.get(a.oid.dotted_string, a.oid.dotted_string), _escape(a.value))
                             for a in rdn))
    return ",".join(rdns)


def expected_cn(cert):
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return ",".join(cns) if cns else None


def pem_value(der):
    return base64.b64encode(der).decode("ascii")


def md5_value(der):
    return hashlib.md5(der).hexdigest()


# ---- brokers and clients over TLS -------------------------------------------------------------


def ssl_config(server, ca, ssl_extra="", extra="", name="default"):
    """A broker config with listeners.ssl.<name> on a free port using server/ca (tlsutil.Issued)."""
    return """
listeners.ssl.%(name)s.bind = "127.0.0.1:0"
listeners.ssl.%(name)s.ssl_options {
  certfile = "%(crt)s"
  keyfile = "%(key)s"
  cacertfile = "%(ca)s"
  verify = verify_peer
  fail_if_no_peer_cert = true
  %(ssl_extra)s
}
# The dashboard's fixed port would collide between brokers running side by side.
dashboard.enable = false
%(extra)s
""" % {"name": name, "crt": server.crt, "key": server.key, "ca": ca.crt, "ssl_extra": ssl_extra,
       "extra": extra}


def ssl_port(broker, name="default"):
    return broker.ports[("ssl", name)]


def tls_client(broker, ca, dev=None, client_id="", version=V5, connect=True, name="default", **kw):
    """A paho client (clients.Client) on the ssl listener presenting dev's chain (or no certificate)."""
    c = Client(ssl_port(broker, name), client_id, version, **kw)
    c.c.tls_set_context(client_context(ca.crt, dev.chain if dev else None, dev.key if dev else None))
    if connect:
        c.connect()
    return c


def raw_tls(broker, ca, dev=None, version=5, name="default", timeout=5.0):
    """A rawmqtt.RawClient whose socket is TLS with dev's certificate: the handshake happens here."""
    r = RawClient(ssl_port(broker, name), version=version, timeout=timeout)
    ctx = client_context(ca.crt, dev.chain if dev else None, dev.key if dev else None)
    r.sock = ctx.wrap_socket(r.sock, server_hostname="127.0.0.1")
    return r


class Events:
    """Subscribed on the plain listener to every client event in $SYS."""

    def __init__(self, broker, label="sys-watch"):
        # A username too, for brokers with use_username_as_clientid.
        self.c = Client(broker.port, label, V5, username=label)
        self.c.connect()
        assert self.c.subscribe("$SYS/brokers/+/clients/#") == [0]

    def connected(self, timeout=5.0, match=None):
        """The payload (dict) of the next connected event (whose clientid satisfies match, if given),
        with its topic under "_topic"."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no connected event in %.1fs" % timeout)
            try:
                m = self.c.messages.get(timeout=left)
            except queue.Empty:
                continue
            if not m.topic.endswith("/connected"):
                continue
            ev = json.loads(m.payload)
            if ev["clientid"] == "sys-watch" or (match is not None and not match(ev["clientid"])):
                continue
            ev["_topic"] = m.topic
            return ev

    def none(self, timeout=0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.c.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return
            if m.topic.endswith("/connected"):
                raise AssertionError("unexpected connected event %s %s" % (m.topic, m.payload))

    def close(self):
        self.c.disconnect()
