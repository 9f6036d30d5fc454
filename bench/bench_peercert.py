# Cost of the certificate identity mapping on a typical device certificate (EC P-256, six-attribute
# subject, SAN/KU/EKU/SKI/AKI), beside cryptography's parse + rfc4514_string in the same process.
# Usage: .venv/bin/python bench/bench_peercert.py  (prints µs per call; nothing is asserted)
import datetime
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatemq import der, peercert


def device_cert():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    A = x509.NameAttribute
    subject = x509.Name([A(NameOID.COUNTRY_NAME, "CN"), A(NameOID.STATE_OR_PROVINCE_NAME, "Zhejiang"),
                         A(NameOID.LOCALITY_NAME, "Hangzhou"), A(NameOID.ORGANIZATION_NAME, "EMQ"),
                         A(NameOID.ORGANIZATIONAL_UNIT_NAME, "Dev"), A(NameOID.COMMON_NAME, "client1")])
    issuer = x509.Name([A(NameOID.ORGANIZATION_NAME, "EMQ"), A(NameOID.COMMON_NAME, "EMQ Device CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now)
         .not_valid_after(now + datetime.timedelta(days=825))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("client1.devices.example.com")]), critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
         .sign(ca_key, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.DER)


def per_call_us(fn, n):
    # µs per call of fn(): the best of five rounds of n calls, after one to warm up (bench/run.py
    # times its peercert row with it too).
    fn()
    best = None
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = (time.perf_counter() - t) / n * 1e6
        best = dt if best is None or dt < best else best
    return best


def main():
    blob = device_cert()
    n = 20000
    ours = per_call_us(lambda: peercert.identity(blob, "dn"), n)
    theirs = per_call_us(lambda: x509.load_der_x509_certificate(blob).subject.rfc4514_string(), n)
    print("device certificate: %d bytes, dn = %s" % (len(blob), peercert.identity(blob, "dn").decode()))
    print("peercert.identity(der, 'dn')                               %7.2f µs" % ours)
    print("cryptography load_der_x509_certificate().subject.rfc4514   %7.2f µs" % theirs)
    print("ratio ours / cryptography                                  %7.2f" % (ours / theirs))
    print("peercert.identity(der, 'cn')                               %7.2f µs"
          % per_call_us(lambda: peercert.identity(blob, "cn"), n))
    print("peercert.subject_rfc2253(der)                              %7.2f µs"
          % per_call_us(lambda: peercert.subject_rfc2253(blob), n))
    print("der.parse_certificate(der) (every field)                   %7.2f µs"
          % per_call_us(lambda: der.parse_certificate(blob), n // 10))


if __name__ == "__main__":
    main()
