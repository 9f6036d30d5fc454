# The CA: where its files live in the PKI folder, making it once, and loading it to sign.
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from . import files, keys, names
from .errors import CertsError

CA_KEY = "ca.key"
CA_CRT = "ca.crt"
CA_DER = "ca.crt.der"

# Certificates start a little in the past so a device whose clock lags the issuing host by a few
# minutes does not reject (or get rejected with) a certificate that is "not yet valid".
BACKDATE = datetime.timedelta(minutes=5)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def not_after(cert):
    try:
        return cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42
        return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def signed_by(issuer_cert, issuer_key, subject, key, start, end, is_ca, path_length=None,
              key_encipherment=False):
    """The builder for a certificate issued by issuer_cert/issuer_key (a leaf, or an intermediate CA
    when is_ca): validity, basic constraints, key usage and the two key identifiers."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=not is_ca, content_commitment=False,
            key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
            key_cert_sign=is_ca, crl_sign=is_ca, encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
    )


def paths(pki):
    return {"key": os.path.join(pki, CA_KEY), "crt": os.path.join(pki, CA_CRT),
            "der": os.path.join(pki, CA_DER)}


def exists(pki):
    p = paths(pki)
    return os.path.exists(p["key"]) or os.path.exists(p["crt"])


def init_ca(pki, cn="gatemq demo CA", days=3650, rsa_bits=None):
    p = paths(pki)
    for what in ("key", "crt"):
        if os.path.exists(p[what]):
            raise CertsError("a CA already exists in %s (%s); refusing to overwrite it, since every "
                             "certificate it issued would stop verifying. Use another --dir for a "
                             "new CA." % (pki, p[what]))
    if days < 1:
        raise CertsError("--days must be at least 1")
    key = keys.new_key(rsa_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = now() - BACKDATE
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key is written first: a crash between the two leaves no certificate without its key.
    files.write(p["key"], keys.private_bytes(key), private=True, overwrite=False)
    files.write(p["crt"], cert.public_bytes(serialization.Encoding.PEM), overwrite=False)
    files.write(p["der"], cert.public_bytes(serialization.Encoding.DER))
    return p


def load_cert_bytes(data, path):
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise CertsError("%s is not a certificate (PEM or DER): %s" % (path, e))


def load_ca(pki):
    """(key, cert) of the CA in pki, or a CertsError telling the user to run init-ca."""
    p = paths(pki)
    if not os.path.exists(p["crt"]) or not os.path.exists(p["key"]):
        raise CertsError("no CA in %s (need %s and %s); run `gatemq-certs --dir %s init-ca` first"
                         % (pki, CA_CRT, CA_KEY, pki))
    cert = load_cert_bytes(files.read(p["crt"], "CA certificate"), p["crt"])
    key = keys.load_private(files.read(p["key"], "CA key"), p["key"])
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise CertsError("%s does not belong to %s" % (p["key"], p["crt"]))
    return key, cert


# Intermediate CAs (gatemq-certs intermediate) live in pki/intermediates/<name>/.
INTERMEDIATES = "intermediates"


def ca_dir(pki, name=None):
    """The folder of the CA called name: the root (None), or an intermediate's folder."""
    if not name:
        return pki
    if names.safe_filename(name) != name:
        raise CertsError("--ca %r: an intermediate's name is letters, digits, '.', '_' and '-'"
                         % name)
    d = os.path.join(pki, INTERMEDIATES, name)
    if not os.path.exists(os.path.join(d, CA_CRT)):
        have = intermediate_names(pki)
        raise CertsError("no intermediate CA %r in %s (%s); make it with `gatemq-certs --dir %s "
                         "intermediate %s`" % (name, pki, "have: " + ", ".join(have) if have
                                               else "there is none yet", pki, name))
    return d


def intermediate_names(pki):
    d = os.path.join(pki, INTERMEDIATES)
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if os.path.exists(os.path.join(d, n, CA_CRT)))
