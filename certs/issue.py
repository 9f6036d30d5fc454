# Leaf certificates signed by the CA: servers (SANs, serverAuth) and devices (clientAuth).
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import ca, files, index, keys
from .errors import CertsError


def _dns(name):
    if not name or name != name.strip():
        raise CertsError("--host %r: give a DNS name such as broker.local" % name)
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise CertsError("--host %r is not a valid DNS name" % name)
    if ascii_name.replace("*.", "", 1).strip(".-") == "" or " " in ascii_name:
        raise CertsError("--host %r is not a valid DNS name" % name)
    return x509.DNSName(ascii_name)


def _ip(text):
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        raise CertsError("--ip %r is not an IPv4 or IPv6 address" % text)


def _email(text):
    if not text or "@" not in text or text != text.strip() or " " in text:
        raise CertsError("--san-email %r: give an address such as ops@acme.example" % text)
    return x509.RFC822Name(text)


def _uri(text):
    if not text or ":" not in text or " " in text or not text.split(":", 1)[0].isalpha():
        raise CertsError("--uri %r: give a URI with a scheme, such as urn:dev:sensor-0042 or "
                         "spiffe://acme/sensor-0042" % text)
    return x509.UniformResourceIdentifier(text)


def san_list(hosts=(), ips=(), emails=(), uris=()):
    """subjectAltName entries in a fixed order: DNS names, IPs, emails, URIs."""
    return ([_dns(h) for h in hosts] + [_ip(i) for i in ips] + [_email(e) for e in emails]
            + [_uri(u) for u in uris])


def make_leaf(ca_key, ca_cert, subject, days, rsa_bits=None, eku=None, hosts=(), ips=(),
              emails=(), uris=(), key=None, sans=None):
    """A new (key, cert). eku: an ExtendedKeyUsageOID or None for no EKU extension.

    key: reuse this key instead of making one; sans: ready-made GeneralName list (renew)."""
    if days < 1:
        raise CertsError("--days must be at least 1")
    if key is None:
        key = keys.new_key(rsa_bits)
    start = ca.now() - ca.BACKDATE
    end = start + ca.BACKDATE + datetime.timedelta(days=days)
    # A leaf outliving its CA fails verification from the CA's expiry on anyway, so cap it there.
    ca_end = ca.not_after(ca_cert)
    if end > ca_end:
        end = ca_end
    # RSA keys do the TLS key exchange on old TLS 1.2 suites by encryption, so they need
    # keyEncipherment; EC keys only sign.
    rsa_key = keys.is_rsa(key)
    b = ca.signed_by(ca_cert, ca_key, subject, key, start, end, False, key_encipherment=rsa_key)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku if isinstance(eku, list) else [eku]),
                            critical=False)
    if sans is None:
        sans = san_list(hosts, ips, emails, uris)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def write_pair(pki, key, cert, key_path, crt_path, overwrite=False, chain=()):
    """Write key and cert as PEM plus .der copies; returns the paths written.

    pki: the folder of the CA that signed it (its issued.txt records it). chain: the issuing
    intermediate CA certificate(s): then NAME.chain.crt holds the certificate followed by them."""
    out = {}
    if not overwrite:
        for p in (key_path, crt_path, key_path + ".der", crt_path + ".der"):
            if os.path.exists(p):
                raise CertsError("%s already exists; refusing to overwrite it (pass --force to "
                                 "replace it, or choose another --name)" % p)
    out["key"] = files.write(key_path, keys.private_bytes(key), private=True)
    out["key_der"] = files.write(key_path + ".der", keys.private_bytes(key, der=True), private=True)
    out["crt"] = files.write(crt_path, cert.public_bytes(serialization.Encoding.PEM))
    out["crt_der"] = files.write(crt_path + ".der", cert.public_bytes(serialization.Encoding.DER))
    if chain:
        out["chain"] = files.write(chain_path(crt_path), cert.public_bytes(serialization.Encoding.PEM)
                                   + b"".join(c.public_bytes(serialization.Encoding.PEM)
                                              for c in chain))
    index.record_issued(pki, cert, crt_path)
    return out


def chain_path(crt_path):
    base = crt_path[:-4] if crt_path.endswith(".crt") else crt_path
    return base + ".chain.crt"


def server(pki, hosts, ips, name="server", days=825, rsa_bits=None, out_dir=None, force=False):
    if not hosts and not ips:
        raise CertsError("a server certificate needs at least one --host NAME or --ip ADDR "
                         "(the names clients connect to)")
    ca_key, ca_cert = ca.load_ca(pki)
    cn = hosts[0] if hosts else ips[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    key, cert = make_leaf(ca_key, ca_cert, subject, days, rsa_bits,
                          ExtendedKeyUsageOID.SERVER_AUTH, hosts, ips)
    base = os.path.join(out_dir or pki, name)
    return write_pair(pki, key, cert, base + ".key", base + ".crt", overwrite=force)


def client(pki, subject, name, days=1825, rsa_bits=None, eku=True, out_dir=None, force=False,
           issuer=None, hosts=(), ips=(), emails=(), uris=()):
    """issuer: the name of an intermediate CA (gatemq-certs intermediate) to sign with instead of
    the root; the files still go to out_dir or pki, with NAME.chain.crt (device + intermediate)."""
    signer = ca.ca_dir(pki, issuer)
    ca_key, ca_cert = ca.load_ca(signer)
    key, cert = make_leaf(ca_key, ca_cert, subject, days, rsa_bits,
                          ExtendedKeyUsageOID.CLIENT_AUTH if eku else None, hosts, ips, emails, uris)
    base = os.path.join(out_dir or pki, name)
    return write_pair(signer, key, cert, base + ".key", base + ".crt", overwrite=force,
                      chain=[ca_cert] if issuer else ())
